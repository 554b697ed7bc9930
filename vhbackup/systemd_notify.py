"""sd_notify for ``systemctl status``: what the run is doing, and more time while it progresses.

Silent (and free) when ``NOTIFY_SOCKET`` is unset: outside systemd, and in
units whose ``NotifyAccess=`` does not let vhbackup speak. A notification
that cannot be sent is dropped: progress reporting never fails a run.

``status()`` is for step changes ("dumping hub (2/3)") and always sends.
``progress()`` is for restic's progress stream, which arrives many times a
second: it sends at most once per ``PROGRESS_INTERVAL`` seconds, and while
the byte count still grows it also sends ``EXTEND_TIMEOUT_USEC`` (see
``extend_timeout``), so that a backup that keeps moving is not killed by
the unit's ``TimeoutStartSec=``, while a stalled one still is, at most
``EXTEND_WINDOW`` seconds after it stopped moving.
"""

from __future__ import annotations

import os
import time

#: Minimum seconds between two progress notifications.
PROGRESS_INTERVAL = 1.0
#: How long each EXTEND_TIMEOUT_USEC lets a progressing run go on past its
#: unit's start timeout: a run that makes no progress for this long is killed.
EXTEND_WINDOW = 3600.0

_notifier = None
_notifier_socket: str | None = None
_last_progress = 0.0
_last_done = -1


def _get():
    """A notifier connected to the current NOTIFY_SOCKET, or None."""
    global _notifier, _notifier_socket
    address = os.environ.get("NOTIFY_SOCKET") or None
    if address != _notifier_socket:
        if _notifier is not None and _notifier.socket is not None:
            _notifier.socket.close()
        _notifier, _notifier_socket = None, address
        if address:
            import sdnotify
            _notifier = sdnotify.SystemdNotifier()
    return _notifier


def send(*assignments: str) -> bool:
    """Send ``KEY=value`` lines in one datagram (UTF-8); True when it went out."""
    notifier = _get()
    if notifier is None or notifier.socket is None:
        return False
    try:
        notifier.socket.sendall("\n".join(assignments).encode("utf-8", "replace"))
    except OSError:
        return False
    return True


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def status(text: str) -> None:
    """Show ``text`` in ``systemctl status`` now."""
    send(f"STATUS={_one_line(text)}")


def extend_timeout(seconds: float) -> None:
    """Ask systemd for ``seconds`` more before the unit's start timeout fires (systemd >= 236)."""
    send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")


def progress(text: str, done: int | None = None) -> None:
    """Throttled ``STATUS=``; with ``done`` (bytes so far) growing, also extend the timeout."""
    global _last_progress, _last_done
    now = time.monotonic()
    if now - _last_progress < PROGRESS_INTERVAL:
        return
    _last_progress = now
    lines = [f"STATUS={_one_line(text)}"]
    if done is not None:
        if done > _last_done >= 0:
            lines.append(f"EXTEND_TIMEOUT_USEC={int(EXTEND_WINDOW * 1_000_000)}")
        _last_done = done
    send(*lines)


def reset() -> None:
    """Forget progress state (a new step starts counting from zero)."""
    global _last_progress, _last_done
    _last_progress, _last_done = 0.0, -1
