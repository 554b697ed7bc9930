"""vhbackup notify: the systemd OnFailure= handler, the hourly health alert, and a test message.

``--unit UNIT`` is what ``vhbackup-notify@%n.service`` runs when a vhbackup
unit fails. It reads that unit's journal lines of its last invocation and
sends a failure alert with them, so that even a crash before vhbackup's own
error handling is reported. When the failed run already delivered its own
failure alert (its ``ALERT_SENT`` lines are in that invocation's journal, or
its state record names the notifiers that delivered), only the notifiers that
did not deliver are tried, so no alert arrives twice.

``--check`` evaluates the health (as ``vhbackup status`` does) and alerts
when it is not OK: no successful backup for more than ``checks.max_age``,
low free space, ... It alerts once per condition level and repeats at most
every ``CHECK_REPEAT`` seconds; a failure that its own run already reported
is not reported again.

``--test`` sends a test message through every configured notifier.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from datetime import datetime
from typing import Callable

from vhbackup import alerts, proc, state
from vhbackup import log as vlog
from vhbackup.context import Context
from vhbackup.errors import EXIT_FAILURE, EXIT_OK, UsageError, VhError

NAME = "notify"
HELP = "send alerts: for a failed systemd unit (--unit), when health is not OK (--check), or a test (--test)"
OPENS_REPOSITORY = False  # an alert about a missing or broken password file must still go out

log = logging.getLogger("vhbackup")

UNIT_NAME = re.compile(r"^[A-Za-z0-9_.:@\\-]{1,255}$")
JOURNAL_LINES = 200
CHECK_REPEAT = 24 * 3600.0
CHECK_STATE = "last-check-alert.json"
RUN_ACTIONS = alerts.ALERTED_ACTIONS

#: (unit) -> invocation id or "" ; (unit, invocation id, limit) -> journal entries as plain dicts
InvocationLookup = Callable[[str], str]
JournalReader = Callable[[str, str, int], list[dict]]


def add_arguments(parser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--unit", metavar="UNIT",
                      help="alert that this systemd unit failed, with its journal lines (OnFailure= handler)")
    what.add_argument("--check", action="store_true",
                      help="alert if the health check is not OK (no recent backup, low space, ...)")
    what.add_argument("--test", action="store_true", help="send a test message through every notifier")


def run(ctx: Context, args) -> int:
    if args.test:
        return send_test(ctx)
    if args.check:
        return check(ctx)
    return unit_failed(ctx, args.unit)


# --- --test ---------------------------------------------------------------------------

def send_test(ctx: Context) -> int:
    policy = ctx.policy
    if not alerts.configured_names(policy):
        raise VhError(f"no notifier is configured; add notify.email or notify.webhook to {policy.source}")
    event = alerts.Event(
        kind="test", host=policy.host, action="test", title="test message",
        what="a test of vhbackup's alerts (vhbackup notify --test)",
        facts={"notify.on": ", ".join(policy.notify.on) or "nothing"}, policy=policy.source,
        next_steps=("nothing: if you read this, alerts from this host reach you",),
    )
    results = alerts.deliver(policy, event)
    for result in results:
        print(f"{result.notifier}: {'sent' if result.ok else 'FAILED: ' + (result.error or '?')}")
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILURE


# --- --unit ---------------------------------------------------------------------------

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


def _already_delivered(policy, entries: list[dict]) -> set[str]:
    """Notifiers that already delivered this invocation's failure alert."""
    delivered = {e.get("VHBACKUP_NOTIFIER") for e in entries
                 if e.get("MESSAGE_ID") == vlog.ALERT_SENT and e.get("VHBACKUP_EVENT") == "failure"}
    run_ids = {e.get("VHBACKUP_RUN_ID") for e in entries} - {None}
    actions = {e.get("VHBACKUP_ACTION") for e in entries} & set(RUN_ACTIONS)
    for action in actions:
        record = _read(state.last_run_path(policy.state_dir, action))
        alert = (record.get("details") or {}).get("alert") or {}
        if record.get("run_id") in run_ids and alert.get("event") == "failure":
            delivered.update(alert.get("delivered") or ())
    return delivered - {None}


def _journal_line(entry: dict) -> str:
    stamp = ""
    if entry.get("__REALTIME_TIMESTAMP"):
        try:
            stamp = datetime.fromtimestamp(float(entry["__REALTIME_TIMESTAMP"])).strftime("%H:%M:%S ")
        except ValueError:
            pass
    who = entry.get("SYSLOG_IDENTIFIER") or entry.get("_COMM") or ""
    return f"{stamp}{who + ': ' if who else ''}{entry.get('MESSAGE', '')}"


def _error_line(unit: str, entries: list[dict]) -> str:
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


def unit_failed(ctx: Context, unit: str, lookup: InvocationLookup = invocation_id,
                reader: JournalReader = read_journal) -> int:
    policy = ctx.policy
    if not UNIT_NAME.match(unit) or unit.startswith("-"):
        raise UsageError(f"not a systemd unit name: {unit!r}")
    if not alerts.wanted(policy, "failure"):
        log.info("%s failed; notify.on does not include 'failure', so no alert is sent", unit)
        return EXIT_OK
    configured = alerts.configured_names(policy)
    if not configured:
        log.warning("%s failed, but no notifier is configured (notify.email or notify.webhook in %s)",
                    unit, policy.source)
        return EXIT_OK
    invocation = lookup(unit)
    try:
        entries = reader(unit, invocation, JOURNAL_LINES)
    except Exception as exc:  # noqa: BLE001 - a journal problem must not stop the alert
        log.warning("cannot read the journal of %s: %s; alerting without its lines", unit, exc)
        entries = []
    delivered = _already_delivered(policy, entries)
    remaining = [name for name in configured if name not in delivered]
    run_id = next((e["VHBACKUP_RUN_ID"] for e in reversed(entries) if e.get("VHBACKUP_RUN_ID")), None)
    if not remaining:
        log.info("the failure of %s (run %s) was already reported by %s; not sending it again",
                 unit, run_id or "?", ", ".join(sorted(delivered)))
        return EXIT_OK
    action = next((e["VHBACKUP_ACTION"] for e in reversed(entries) if e.get("VHBACKUP_ACTION")), None)
    action = action or _action_of(unit)
    error = _error_line(unit, entries)
    event = alerts.Event(
        kind="failure", host=policy.host, title=f"{unit} failed", action=action or "unit",
        what=f"systemd unit {unit} failed" + (f" (vhbackup {action} run {run_id})" if run_id else ""),
        error=error, run_id=run_id, unit=unit,
        log_lines=tuple(_journal_line(e) for e in entries[-alerts.TAIL_LINES:]),
        next_steps=(f"systemctl status {unit}", f"journalctl -u {unit} -n 200",
                    *alerts.next_steps(action or "", policy, error)),
        facts={"invocation_id": invocation or "unknown"}, policy=policy.source,
    )
    results = alerts.deliver(policy, event, only=remaining)
    return EXIT_OK if any(r.ok for r in results) else EXIT_FAILURE


def _action_of(unit: str) -> str | None:
    match = re.match(r"^vhbackup-([a-z]+)(@.*)?\.service$", unit)
    return match.group(1) if match else None


# --- --check --------------------------------------------------------------------------

def _check_state_path(policy) -> str:
    return os.path.join(policy.state_dir, CHECK_STATE)


def _read(path: str) -> dict:
    try:
        data = state.read_json(path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _newest_reported_failure(policy) -> float | None:
    """When the newest failed run that delivered its own alert ended, if it is the newest run at all."""
    records = [_read(state.last_run_path(policy.state_dir, a)) for a in RUN_ACTIONS]
    records = [r for r in records if r.get("started")]
    if not records:
        return None
    newest = max(records, key=lambda r: r["started"])
    alert = (newest.get("details") or {}).get("alert") or {}
    if newest.get("status") == "failure" and alert.get("delivered"):
        return float(alert.get("time") or newest["started"])
    return None


def check(ctx: Context, now: float | None = None, evaluate: Callable | None = None) -> int:
    from vhbackup import health

    policy = ctx.policy
    now = time.time() if now is None else now
    result = (evaluate or health.evaluate)(policy, now=now)
    path = _check_state_path(policy)
    previous = _read(path)
    if result.level == "OK":
        if previous.get("level", "OK") != "OK":
            state.write_json_atomic(path, {"level": "OK", "time": now, "summary": result.summary})
            if alerts.wanted(policy, "success") and alerts.configured_names(policy):
                alerts.deliver(policy, _check_event(policy, result, "success", "health is OK again", now))
        log.info("%s", result.summary)
        return EXIT_OK
    if previous.get("level") == result.level and now - float(previous.get("time", 0)) < CHECK_REPEAT:
        log.info("%s (already alerted at %s)", result.summary,
                 datetime.fromtimestamp(float(previous["time"])).strftime("%Y-%m-%d %H:%M"))
        return EXIT_OK
    reported = _newest_reported_failure(policy) if result.level == "CRITICAL" else None
    if reported is not None and now - reported < CHECK_REPEAT:
        log.info("%s (the failed run already sent its alert)", result.summary)
        state.write_json_atomic(path, {"level": result.level, "time": reported, "summary": result.summary})
        return EXIT_OK
    kind = "failure" if result.level == "CRITICAL" else "warning"
    if not alerts.wanted(policy, kind) or not alerts.configured_names(policy):
        log.info("%s (no alert: notify.on or the notifiers do not ask for one)", result.summary)
        return EXIT_OK
    title = f"health {result.level}"
    results = alerts.deliver(policy, _check_event(policy, result, kind, title, now))
    if any(r.ok for r in results):
        state.write_json_atomic(path, {"level": result.level, "time": now, "summary": result.summary})
        return EXIT_OK
    return EXIT_FAILURE


def _check_event(policy, result, kind: str, title: str, now: float) -> alerts.Event:
    facts = {}
    for key, value in (result.facts or {}).items():
        if isinstance(value, (str, int, float, bool)):
            facts[key] = value
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            facts[key] = "; ".join(value)
    return alerts.Event(
        kind=kind, host=policy.host, title=title, action="check", what="vhbackup health check",
        error=result.summary if kind != "success" else None, exit_code=result.code, time=now,
        facts=facts, policy=policy.source,
        next_steps=("vhbackup status", "systemctl list-timers 'vhbackup*'",
                    "journalctl -u vhbackup-backup.service -n 100") if kind != "success" else (),
    )
