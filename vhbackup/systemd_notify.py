"""sd_notify progress for ``systemctl status``; silent when NOTIFY_SOCKET is unset."""

from __future__ import annotations

import os

_notifier = None


def _get():
    global _notifier
    if _notifier is None and os.environ.get("NOTIFY_SOCKET"):
        import sdnotify
        _notifier = sdnotify.SystemdNotifier()
    return _notifier


def status(text: str) -> None:
    notifier = _get()
    if notifier is not None:
        notifier.notify(f"STATUS={text}")
