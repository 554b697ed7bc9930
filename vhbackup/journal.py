"""Reading a systemd unit's journal: the lines of its last invocation, and the line that says what went wrong.

Used by ``vhbackup notify --unit`` (the OnFailure= handler), which sends
those lines in its alert, and by nothing that a run depends on: the
journal is read only after a unit failed.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from vhbackup import log as vlog
from vhbackup import proc, state
from vhbackup.errors import VhError

log = logging.getLogger("vhbackup")

JOURNAL_LINES = 200


def invocation_id(unit: str) -> str:
    """The unit's last InvocationID, or "" when systemd does not know it."""
    try:
        result = proc.run(["systemctl", "show", "-p", "InvocationID", "--value", unit],
                          missing_hint="apt install systemd", timeout=30)
    except VhError as exc:
        log.warning("cannot ask systemd for the invocation of %s: %s", unit, exc)
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _plain(value) -> str:
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return str(value.timestamp())
    return str(value)


def read_journal(unit: str, invocation: str, limit: int = JOURNAL_LINES) -> list[dict]:
    """The unit's last ``limit`` journal entries of one invocation, oldest first, as plain strings.

    With an invocation id: everything its processes logged plus systemd's
    own lines about it ("Main process exited, code=killed, ..."). Without
    one: vhbackup's lines of the unit, from its last "run started" on.
    """
    from systemd import journal

    reader = journal.Reader()
    try:
        if invocation:
            reader.add_match(_SYSTEMD_INVOCATION_ID=invocation)
            reader.add_disjunction()
            reader.add_match(INVOCATION_ID=invocation)
        else:
            reader.this_boot()
            reader.add_match(_SYSTEMD_UNIT=unit, SYSLOG_IDENTIFIER=vlog.SYSLOG_IDENTIFIER)
        reader.seek_tail()
        entries = []
        while len(entries) < limit:
            entry = reader.get_previous()
            if not entry:
                break
            entries.append({k: _plain(v) for k, v in entry.items()})
    finally:
        reader.close()
    entries.reverse()
    if not invocation:
        starts = [i for i, e in enumerate(entries) if e.get("MESSAGE_ID") == vlog.RUN_STARTED]
        if starts:
            entries = entries[starts[-1]:]
    return entries


def already_delivered(state_dir: str, entries: list[dict]) -> set[str]:
    """Notifiers that already delivered this invocation's failure alert (journal lines or the run's record)."""
    delivered = {e.get("VHBACKUP_NOTIFIER") for e in entries
                 if e.get("MESSAGE_ID") == vlog.ALERT_SENT and e.get("VHBACKUP_EVENT") == "failure"}
    run_ids = {e.get("VHBACKUP_RUN_ID") for e in entries} - {None}
    actions = {e.get("VHBACKUP_ACTION") for e in entries} & set(state.ALERTED_ACTIONS)
    for action in actions:
        record = state.read_lenient(state.last_run_path(state_dir, action))
        alert = (record.get("details") or {}).get("alert") or {}
        if record.get("run_id") in run_ids and alert.get("event") == "failure":
            delivered.update(alert.get("delivered") or ())
    return delivered - {None}


def already_pinged(state_dir: str, action: str, entries: list[dict]) -> set[str]:
    """The monitors the failed invocation's run pinged ``fail`` itself (its record names a run in ``entries``)."""
    run_ids = {e.get("VHBACKUP_RUN_ID") for e in entries} - {None}
    record = state.read_lenient(state.last_run_path(state_dir, action)) if action in state.ALERTED_ACTIONS else {}
    pinged = (record.get("details") or {}).get("monitor") or {}
    if record.get("run_id") in run_ids and pinged.get("event") == "fail":
        return set(pinged.get("sent") or ())
    return set()


def entry_line(entry: dict) -> str:
    stamp = ""
    if entry.get("__REALTIME_TIMESTAMP"):
        try:
            stamp = datetime.fromtimestamp(float(entry["__REALTIME_TIMESTAMP"])).strftime("%H:%M:%S ")
        except ValueError:
            pass
    who = entry.get("SYSLOG_IDENTIFIER") or entry.get("_COMM") or ""
    return f"{stamp}{who + ': ' if who else ''}{entry.get('MESSAGE', '')}"


def error_line(unit: str, entries: list[dict]) -> str:
    """The most telling line: vhbackup's last error, else the last error of anyone, else systemd's verdict."""
    def priority(e: dict) -> int:
        try:
            return int(e.get("PRIORITY", 6))
        except ValueError:
            return 6
    ours = [e for e in entries if e.get("SYSLOG_IDENTIFIER") == vlog.SYSLOG_IDENTIFIER and priority(e) <= 3]
    anyone = [e for e in entries if priority(e) <= 3]
    systemd = [e for e in entries if e.get("INVOCATION_ID") and e.get("MESSAGE")]
    exited = [e for e in systemd if "Main process exited" in e["MESSAGE"]]
    for group in (ours, anyone, exited, systemd):
        if group:
            return group[-1].get("MESSAGE", "")
    return f"{unit} failed and left no error line in the journal; see 'journalctl -u {unit}'"


def last_field(entries: list[dict], name: str) -> str | None:
    """The newest value of a VHBACKUP_* field among the entries."""
    return next((e[name] for e in reversed(entries) if e.get(name)), None)
