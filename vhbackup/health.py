"""Is the backup healthy? Judged from the state records alone (Nagios/Icinga conventions).

``evaluate`` reads ``state_dir`` and nothing else: no restic, no repository,
no disks (free space is what the last backup measured). ``status`` prints
its summary; the alerts use it for "no backup for more than max_age".

OK 0; WARNING 1: the last backup was partial, or free space was below
``checks.min_free_space``; CRITICAL 2: the last backup failed, the last
successful one is older than ``checks.max_age``, or the last verify or drill
failed; UNKNOWN 3: no backup recorded yet, or the state cannot be read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from vhbackup import state
from vhbackup.policy import Policy
from vhbackup.quantities import format_duration, format_size

OK, WARNING, CRITICAL, UNKNOWN = "OK", "WARNING", "CRITICAL", "UNKNOWN"
CODES = {OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3}


@dataclass(frozen=True)
class Health:
    level: str
    code: int
    summary: str
    facts: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"level": self.level, "code": self.code, "summary": self.summary, **self.facts}


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _ago(timestamp: float, now: float) -> str:
    return f"{format_duration(max(0.0, now - timestamp))} ago"


def _health(level: str, text: str, facts: dict) -> Health:
    facts = {**facts, "problems": facts.get("problems", [])}
    return Health(level, CODES[level], f"{level}: {' '.join(text.split())}", facts)


def _run_facts(record: dict | None) -> dict | None:
    if record is None:
        return None
    keys = ("run_id", "status", "exit_code", "started", "started_iso", "finished", "duration", "error",
            "snapshot_ids", "bytes_added", "bytes_total", "services", "databases")
    return {k: record.get(k) for k in keys}


def evaluate(policy: Policy, now: float | None = None) -> Health:
    now = time.time() if now is None else now
    state_dir = policy.state_dir
    checks = policy.checks
    facts: dict = {"host": policy.host, "state_dir": state_dir, "checked_at": now,
                   "max_age_seconds": checks.max_age, "min_free_space_bytes": checks.min_free_space}
    try:
        last = state.read_record(state.last_run_path(state_dir, "backup"))
        success = state.read_record(state.last_success_path(state_dir, "backup"))
        others = {a: state.read_record(state.last_run_path(state_dir, a)) for a in ("verify", "drill")}
        if last is not None:
            float(last["started"]), float(last.get("duration", 0))
        if success is not None:
            float(success["started"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return _health(UNKNOWN, f"cannot read the backup state in {state_dir}: {reason}", facts)
    facts.update(last_backup=_run_facts(last), last_success=_run_facts(success),
                 last_verify=_run_facts(others["verify"]), last_drill=_run_facts(others["drill"]))
    if last is None:
        return _health(UNKNOWN, f"no backup recorded yet in {state_dir}; run 'vhbackup backup'", facts)

    critical: list[str] = []
    warning: list[str] = []
    started = float(last["started"])
    if last.get("status") == "failure":
        head = (f"last backup {_when(started)} ({_ago(started, now)}) failed after "
                f"{format_duration(float(last.get('duration', 0)))}: {last.get('error') or 'unknown error'}")
    else:
        head = (f"last backup {_when(started)} ({_ago(started, now)}), {last.get('status')}, "
                f"{format_size(int(last.get('bytes_total') or 0))}, "
                f"{format_duration(float(last.get('duration', 0)))}")
    if last.get("status") not in ("success", "partial"):
        critical.append("the last backup failed")
    if success is None:
        critical.append("no successful backup recorded")
        facts["age_seconds"] = None
    else:
        age = now - float(success["started"])
        facts["age_seconds"] = age
        if age > checks.max_age:
            critical.append(f"last successful backup {_when(float(success['started']))} is "
                            f"{format_duration(age)} old, more than checks.max_age {format_duration(checks.max_age)}")
    for action, record in others.items():
        if record is not None and record.get("status") == "failure":
            critical.append(f"last {action} {_when(float(record.get('started', 0)))} failed: "
                            f"{record.get('error') or 'unknown error'}")
    if last.get("status") == "partial":
        warning.append("some files could not be read and are missing from the snapshot (see the journal)")
    free_space = (last.get("details") or {}).get("free_space") or {}
    facts["free_space"] = free_space
    for what, fs in sorted(free_space.items()):
        free = fs.get("free_bytes") if isinstance(fs, dict) else None
        if isinstance(free, int) and free < checks.min_free_space:
            warning.append(f"only {format_size(free)} free for the {what} ({fs.get('path')}), less than "
                           f"checks.min_free_space {format_size(checks.min_free_space)}")

    problems = [p for p in critical if p != "the last backup failed"] + warning
    facts["problems"] = critical + warning
    level = CRITICAL if critical else WARNING if warning else OK
    text = head + "".join(f"; {p}" for p in problems)
    return _health(level, text, facts)
