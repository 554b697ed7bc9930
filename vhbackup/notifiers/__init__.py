"""One module per notifier, each with the same three names.

``NAME`` (the policy key under ``notify:``), ``describe(settings) -> str``
(where it goes, safe to log: no password, no URL token) and
``send(settings, event) -> None`` (deliver once within ``settings.timeout``,
raise on any failure). ``alerts`` decides what is sent and when.
"""

from __future__ import annotations

from types import ModuleType

from vhbackup.notifiers import smtp_email, webhook
from vhbackup.policy import Notify

NOTIFIERS: tuple[ModuleType, ...] = (smtp_email, webhook)


def configured(notify: Notify) -> list[tuple[ModuleType, object]]:
    """The notifiers the policy sets up, each with its settings, in a fixed order."""
    out = []
    for module in NOTIFIERS:
        settings = getattr(notify, module.NAME)
        if settings is not None:
            out.append((module, settings))
    return out
