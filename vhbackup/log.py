"""Logging to a terminal or to the journal.

Under systemd (``JOURNAL_STREAM`` names our stderr) every record goes to
journald with ``SYSLOG_IDENTIFIER=vhbackup`` and upper-case structured
fields: the run's context (``VHBACKUP_RUN_ID``, ``VHBACKUP_ACTION``) plus
whatever a call passes as ``extra={"fields": {...}}``. Otherwise records are
plain lines on stderr. ``journal.send`` drops messages silently when no
journal is listening, so the journal is used only when stderr really is it.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable

log = logging.getLogger("vhbackup")

SYSLOG_IDENTIFIER = "vhbackup"

# Fixed MESSAGE_IDs, explained by the journal catalog systemd/vhbackup.catalog
# (installed to /usr/lib/systemd/catalog/; tests/unit/test_units.py keeps them in step).
RUN_STARTED = "10266f83ea7d4775880902925f703de3"
RUN_FINISHED = "1b1ef7801f8d4c8f8024bf0b2604e524"
RUN_FAILED = "5895374ced7641448422485ca408873d"
SNAPSHOT_SAVED = "9d9d6d7b16c04511b49ee4e090ac47b2"
ALERT_SENT = "b802837b5b764a839252da9355d54f64"

_context: dict[str, str] = {}


def bind(**fields: str) -> None:
    """Attach fields (e.g. run_id='...') to every following record: VHBACKUP_RUN_ID=..."""
    for key, value in fields.items():
        _context[f"VHBACKUP_{key.upper()}"] = str(value)


def fields(message_id: str | None = None, **values) -> dict:
    """``extra=`` for one record: ``log.info(..., extra=fields(SNAPSHOT_SAVED, snapshot_id=x))``."""
    out = {f"VHBACKUP_{k.upper()}": ",".join(v) if isinstance(v, (list, tuple)) else str(v)
           for k, v in values.items() if v is not None}
    if message_id:
        out["MESSAGE_ID"] = message_id
    return {"fields": out}


def stderr_is_journal() -> bool:
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return st.st_dev == dev and st.st_ino == ino


_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class JournalHandler(logging.Handler):
    """Send each record to journald with vhbackup's structured fields."""

    def __init__(self, sender: Callable[..., None] | None = None):
        super().__init__()
        if sender is None:
            from systemd import journal
            sender = journal.send
        self.sender = sender

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = dict(_context)
            data.update(getattr(record, "fields", {}))
            self.sender(self.format(record), PRIORITY=str(_PRIORITY.get(record.levelno, 6)),
                        SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER, **data)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


class _TerminalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"vhbackup: error: {message}"
        if record.levelno >= logging.WARNING:
            return f"vhbackup: warning: {message}"
        return message


def setup(verbose: bool = False, quiet: bool = False, journal: bool | None = None) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    log.handlers.clear()
    log.propagate = False
    log.setLevel(level)
    use_journal = stderr_is_journal() if journal is None else journal
    handler: logging.Handler = JournalHandler() if use_journal else logging.StreamHandler(sys.stderr)
    if not use_journal:
        handler.setFormatter(_TerminalFormatter())
    log.addHandler(handler)
