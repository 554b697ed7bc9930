"""Is the backup healthy? Judged from the state records alone (Nagios/Icinga conventions).

``evaluate`` reads ``state_dir`` and nothing else: no restic, no repository,
no password, no disks (free space is what the last backup measured). Its
cost does not grow with the number of runs recorded.

Every file set and database of the policy is judged by its own history
(``items.json``): the newest attempt and the newest good backup of
``files:<service>`` and ``db:<name>``. So a failed database dump followed
by a successful ``--files-only`` run is still CRITICAL, and names the
database.

- OK 0.
- WARNING 1: an item's newest backup was partial (unreadable files, an
  absent path), an item has no backup yet (new in the policy), free space
  was below ``checks.min_free_space``, a verify or drill could not run
  because the repository was busy, the last prune failed.
- CRITICAL 2: an item's newest attempt failed; an item's newest good
  backup is older than ``checks.max_age``; a run ended without recording
  its outcome (killed, crashed, state_dir full); a record lies in the
  future (clock skew: its age cannot be trusted); the last verify or drill
  failed; state_dir is read-only.
- UNKNOWN 3: no backup recorded yet, or the state cannot be read.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime

from vhbackup import state
from vhbackup.errors import EXIT_LOCKED
from vhbackup.policy import Policy
from vhbackup.quantities import format_duration, format_size

OK, WARNING, CRITICAL, UNKNOWN = "OK", "WARNING", "CRITICAL", "UNKNOWN"
CODES = {OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3}
#: How far in the future a recorded time may lie before the clock is not trusted.
CLOCK_SKEW = 300.0


@dataclass(frozen=True)
class Health:
    level: str
    code: int
    summary: str
    facts: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"level": self.level, "code": self.code, "summary": self.summary, **self.facts}


def unknown(text: str, facts: dict | None = None) -> Health:
    return _health(UNKNOWN, text, facts or {})


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


def _read(state_dir: str) -> dict:
    """Every record status needs; ValueError/OSError/KeyError/TypeError when one is unreadable."""
    records = {"copies": state.read_object(state.copies_path(state_dir)) or {},
               "last": state.read_object(state.last_run_path(state_dir, "backup")),
               "success": state.read_object(state.last_success_path(state_dir, "backup")),
               "items": state.read_items(state_dir),
               "markers": {a: state.read_object(state.running_path(state_dir, a)) for a in state.ACTIONS}}
    for action in ("verify", "drill", "prune"):
        records[action] = state.read_object(state.last_run_path(state_dir, action))
    records["spot"] = state.read_lenient(state.spot_path(state_dir))
    for record in (records["last"], records["success"], records["verify"], records["drill"], records["prune"]):
        if record is not None:
            float(record["started"]), float(record.get("duration") or 0)
    return records


def _items_now(policy: Policy, records: dict) -> dict:
    """items.json, completed from an older last-success record (0.1.0 kept no items) and a dead run's marker."""
    items = dict(records["items"])
    success = records["success"]
    if success is not None:
        for item in _record_items(policy, success):
            if item not in items:
                entry = {"run_id": success.get("run_id"), "time": success["started"], "status": success["status"]}
                items[item] = {"last": entry, "good": entry}
    marker = records["markers"].get("backup")
    if marker is not None and not state.marker_alive(marker):
        items = state.merge_items(items, state.interrupted_record(marker, policy.host))
    return items


def _record_items(policy: Policy, record: dict) -> list[str]:
    """The items a record without per-item outcomes covered (its services and databases lists)."""
    return [f"files:{s}" for s in record.get("services") or ()] + [f"db:{d}" for d in record.get("databases") or ()]


def evaluate(policy: Policy, now: float | None = None) -> Health:
    now = time.time() if now is None else now
    state_dir = policy.state_dir
    checks = policy.checks
    facts: dict = {"host": policy.host, "state_dir": state_dir, "checked_at": now,
                   "max_age_seconds": checks.max_age, "min_free_space_bytes": checks.min_free_space}
    try:
        records = _read(state_dir)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return unknown(f"cannot read the backup state in {state_dir}: {reason}", facts)
    last = records["last"]
    facts.update(last_backup=_run_facts(last), last_success=_run_facts(records["success"]),
                 last_verify=_run_facts(records["verify"]), last_drill=_run_facts(records["drill"]))
    markers = {a: m for a, m in records["markers"].items() if m is not None}
    if last is None and "backup" not in markers:
        return unknown(f"no backup recorded yet in {state_dir}; run 'vhbackup backup'", facts)

    critical: list[str] = []
    warning: list[str] = []
    head = _head(last, markers.get("backup"), now)
    for action, marker in sorted(markers.items()):
        if not state.marker_alive(marker):
            critical.append(f"{action} run {marker.get('run_id') or '?'} started "
                            f"{_when(float(marker.get('started') or 0))} ended without recording its outcome "
                            f"(killed, crashed, or state_dir could not be written)")
    success = records["success"]
    if last is not None and last.get("status") not in ("success", "partial"):
        critical.append("")  # the head line says it
    if success is None:
        critical.append("no successful backup recorded")
        facts["age_seconds"] = None
    else:
        age = now - float(success["started"])
        facts["age_seconds"] = age
        if age > checks.max_age:
            critical.append(f"last successful backup {_when(float(success['started']))} is {format_duration(age)} "
                            f"old, more than checks.max_age {format_duration(checks.max_age)}")
    items = _items_now(policy, records)
    facts["items"] = {}
    head_run = (last or {}).get("run_id")
    for item in policy.items():
        level, problem, item_facts = _judge_item(item, items.get(item), now, checks.max_age, head_run)
        facts["items"][item] = item_facts
        if level == CRITICAL:
            critical.append(problem)
        elif level == WARNING:
            warning.append(problem)
    try:
        repo_critical, repo_warning = _judge_repositories(policy, records, facts, now)
    except (OSError, ValueError) as exc:
        return unknown(f"cannot read the backup state in {state_dir}: {getattr(exc, 'strerror', None) or exc}",
                       facts)
    critical += repo_critical
    warning += repo_warning
    if last is not None and last.get("status") == "partial" and not warning:
        warning.append(last.get("error") or "some files could not be read and are missing from the snapshot "
                                            "(see the journal)")
    for action in ("verify", "drill"):
        record = records[action]
        if record is not None and record.get("status") == "failure":
            repo = (record.get("details") or {}).get("repository")
            text = (f"last {action}{f' of repository {repo}' if repo else ''} {_when(float(record['started']))} "
                    f"failed: {record.get('error') or 'unknown error'}")
            (warning if record.get("exit_code") == EXIT_LOCKED else critical).append(text)
    prune = records["prune"]
    if prune is not None and prune.get("status") == "failure":
        warning.append(f"last prune {_when(float(prune['started']))} failed: {prune.get('error') or 'unknown error'} "
                       f"(the retention policy is not applied; the repository keeps growing)")
    spot = records["spot"]
    facts["last_spot"] = {k: spot.get(k) for k in ("run_id", "started", "level", "problems")} if spot else None
    if spot.get("level") in ("WARNING", "CRITICAL"):  # kept until a spot check passes, whatever runs between
        text = f"spot check {_when(float(spot.get('started') or 0))}: " + "; ".join(spot.get("problems") or ["?"])
        (critical if spot["level"] == "CRITICAL" else warning).append(text)
    for record in (last, records["verify"], records["drill"]):
        if record is not None and float(record["started"]) > now + CLOCK_SKEW:
            critical.append(f"a run is recorded at {_when(float(record['started']))}, in the future: the clock "
                            f"was wrong then or is wrong now, so the backup's age cannot be trusted")
            break
    free_space = ((last or {}).get("details") or {}).get("free_space") or {}
    facts["free_space"] = free_space
    for what, fs in sorted(free_space.items()):
        free = fs.get("free_bytes") if isinstance(fs, dict) else None
        if isinstance(free, int) and free < checks.min_free_space:
            warning.append(f"only {format_size(free)} free for the {what} ({fs.get('path')}), less than "
                           f"checks.min_free_space {format_size(checks.min_free_space)}")
    writable = _state_dir_problem(state_dir)
    if writable:
        critical.append(writable)
    problems = list(dict.fromkeys(p for p in critical + warning if p))
    facts["problems"] = ["the last backup failed" if not p else p for p in critical] + warning
    level = CRITICAL if critical else WARNING if warning else OK
    if len(policy.repositories) > 1 or policy.repository.append_only:
        head += "; repositories: " + ", ".join(
            f"{name} {r['role']}{' ' + r['status'] if r['role'] == 'copy' else ''}"
            f"{' (append-only, pruned elsewhere)' if r['append_only'] else ''}"
            for name, r in facts["repositories"].items())
    return _health(level, head + "".join(f"; {p}" for p in problems), facts)


# --- several repositories (issue 10) ---------------------------------------------------

def _judge_repositories(policy: Policy, records: dict, facts: dict, now: float) -> tuple[list[str], list[str]]:
    """Each repository's facts; a copy behind the primary by more than checks.max_age is CRITICAL, named.

    A copy's time is that of the newest run it received (or, before its
    first success, of its first attempt); the primary's that of its newest
    good backup. A copy whose last attempt failed but is not that far behind
    is a WARNING. Append-only repositories say who prunes them.
    """
    critical: list[str] = []
    warning: list[str] = []
    success = records["success"]
    primary_time = float(success["started"]) if success is not None else None
    facts["repositories"] = {}
    copies = records.get("copies") or {}
    for repo in policy.repositories:
        entry: dict = {"role": repo.role, "append_only": repo.append_only}
        if repo.append_only:
            entry["pruned_by"] = (f"the maintenance role on a trusted machine ('vhbackup prune --repository "
                                  f"{repo.name} --maintenance'), never this host")
        if not repo.is_copy:
            entry.update(last_good_time=primary_time, status="primary")
            facts["repositories"][repo.name] = entry
            continue
        for action in ("verify", "drill"):
            checked = state.read_object(state.last_run_path(policy.state_dir, action, repo.name))
            entry[f"last_{action}"] = _run_facts(checked) if checked else None
            if checked and checked.get("status") == "failure":
                try:
                    when = _when(float(checked.get("started") or 0))
                except (TypeError, ValueError):
                    when = "?"
                text = f"last {action} of repository {repo.name} {when} failed: {checked.get('error') or 'unknown error'}"
                (warning if checked.get("exit_code") == EXIT_LOCKED else critical).append(text)
        record = copies.get(repo.name) if isinstance(copies.get(repo.name), dict) else {}
        last = record.get("last") if isinstance(record.get("last"), dict) else {}
        good = record.get("good") if isinstance(record.get("good"), dict) else {}
        try:
            good_time = float(good["time"]) if good.get("time") is not None else None
            since = good_time if good_time is not None else (
                float(record["first_attempt"]) if record.get("first_attempt") is not None else None)
        except (TypeError, ValueError):
            good_time = since = None
        entry.update(last_status=last.get("status"), last_time=last.get("time"), last_good_time=good_time,
                     last_run_id=good.get("run_id"))
        lag = (primary_time - since) if primary_time is not None and since is not None else None
        entry["behind_seconds"] = max(0.0, lag) if lag is not None else None
        if lag is not None and lag > policy.checks.max_age:
            got = f"last copied {_when(good_time)}" if good_time is not None else "never copied"
            critical.append(f"copy {repo.name} is behind the primary by {format_duration(lag)} ({got}), more "
                            f"than checks.max_age {format_duration(policy.checks.max_age)}")
            entry["status"] = "behind"
        elif last.get("status") == "failure":
            warning.append(f"copy {repo.name}: copy {_when(float(last.get('time') or 0))} failed: "
                           f"{last.get('error') or 'unknown error'}")
            entry["status"] = "failed"
        elif not record and primary_time is not None:
            warning.append(f"copy {repo.name}: has received no run yet; the next backup copies to it")
            entry["status"] = "empty"
        else:
            entry["status"] = "ok" if record else "empty"
        facts["repositories"][repo.name] = entry
    return critical, warning


def _head(last: dict | None, marker: dict | None, now: float) -> str:
    if marker is not None and state.marker_alive(marker):
        started = float(marker.get("started") or 0)
        running = f"backup run {marker.get('run_id')} running since {_when(started)}"
        return running if last is None else f"{running}; " + _head(last, None, now)
    if last is None:
        return "no backup finished yet"
    started = float(last["started"])
    if last.get("status") == "failure":
        return (f"last backup {_when(started)} ({_ago(started, now)}) failed after "
                f"{format_duration(float(last.get('duration') or 0))}: {last.get('error') or 'unknown error'}")
    return (f"last backup {_when(started)} ({_ago(started, now)}), {last.get('status')}, "
            f"{format_size(int(last.get('bytes_total') or 0))}, {format_duration(float(last.get('duration') or 0))}")


def _judge_item(item: str, entry: dict | None, now: float, max_age: float,
                head_run: str | None) -> tuple[str, str, dict]:
    """(level, problem line, facts) for one file set or database; the error is left out if the head line has it."""
    entry = entry if isinstance(entry, dict) else {}
    last = entry.get("last") if isinstance(entry.get("last"), dict) else None
    good = entry.get("good") if isinstance(entry.get("good"), dict) else None
    facts = {"last_status": (last or {}).get("status"), "last_time": (last or {}).get("time"),
             "last_good_time": (good or {}).get("time")}
    try:
        good_time = float(good["time"]) if good else None
        last_time = float(last["time"]) if last else None
    except (KeyError, TypeError, ValueError):
        return CRITICAL, f"{item}: its state record is damaged; run a backup", facts
    future = max(t for t in (good_time, last_time, float("-inf")) if t is not None)
    if future > now + CLOCK_SKEW:
        return CRITICAL, (f"{item}: a backup is recorded at {_when(future)}, in the future: the clock was wrong "
                          f"then or is wrong now, so its age cannot be trusted; run a backup"), facts
    if last is not None and last.get("status") == "failure":
        since = f"last good backup {_when(good_time)}" if good_time else "never backed up"
        if last.get("run_id") == head_run:
            return CRITICAL, f"{item} failed in that run ({since})", facts
        return CRITICAL, (f"{item}: backup {_when(last_time)} failed: {last.get('error') or 'unknown error'} "
                          f"({since})"), facts
    if good_time is None:
        return WARNING, f"{item}: not backed up yet (new in the policy?); run 'vhbackup backup'", facts
    facts["age_seconds"] = now - good_time
    if now - good_time > max_age:
        return CRITICAL, (f"{item}: last good backup {_when(good_time)} is {format_duration(now - good_time)} old, "
                          f"more than checks.max_age {format_duration(max_age)}"), facts
    if last is not None and last.get("status") == "partial":
        return WARNING, f"{item}: {last.get('error') or 'some files could not be read (see the journal)'}", facts
    return OK, "", facts


def _state_dir_problem(state_dir: str) -> str | None:
    """state_dir on a read-only or full file system: no run could record its outcome."""
    try:
        st = os.statvfs(state_dir)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return f"{state_dir} is on a read-only file system: runs cannot record their outcome"
    if st.f_bfree * st.f_frsize < 64 * 1024:
        return f"{state_dir} is full: runs cannot record their outcome"
    return None
