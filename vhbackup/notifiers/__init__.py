"""One module per notifier, each with the same three names.

``NAME`` (the policy key under ``notify:``), ``describe(settings) -> str``
(where it goes, safe to log: no password, no URL token) and
``send(settings, event) -> None`` (deliver once within ``settings.timeout``,
raise on any failure). ``alerts`` decides what is sent and when.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from vhbackup.policy import Notify

#: policy key under ``notify:`` -> module. Imported only when configured:
#: smtplib, ssl and urllib would otherwise add ~35 ms to every start-up.
MODULES = {"email": "smtp_email", "webhook": "webhook"}


def configured(notify: Notify) -> list[tuple[ModuleType, object]]:
    """The notifiers the policy sets up, each with its settings, in a fixed order."""
    out = []
    for key, module_name in MODULES.items():
        settings = getattr(notify, key)
        if settings is not None:
            out.append((import_module(f"vhbackup.notifiers.{module_name}"), settings))
    return out
