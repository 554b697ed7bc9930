"""What each run leaves in ``state_dir``, written atomically, and how it is read back.

- ``running-<action>.json``: written before a run does anything, removed
  after its record is saved. One left behind by a process that is gone
  means the run ended without recording (killed, crashed, disk full).
- ``last-<action>.json`` / ``last-success-<action>.json``: the newest run of
  each action, and the newest that succeeded.
- ``items.json``: per file set and database (``files:<service>``,
  ``db:<name>``) the newest attempt and the newest good backup, so that
  ``status`` judges each one by its own history, in constant time.
- ``run-sizes.json``: bytes per run (restic < 0.17 keeps no size).

``status`` reads these files and nothing else. ``secrets_of``/``redact``
keep the policy's secrets out of everything written or sent.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from typing import Any

from vhbackup import credentials
from vhbackup.errors import PolicyError, StateError
from vhbackup.urls import secret_parts, url_password

#: Every action that records runs, and those whose runs alert (a restore reports to whoever runs it).
ACTIONS = ("backup", "prune", "verify", "drill", "restore")
ALERTED_ACTIONS = ("backup", "prune", "verify", "drill")


# --- writing and reading --------------------------------------------------------------

def write_text_atomic(path: str, text: str, mode: int = 0o644, owner: tuple[int, int] | None = None) -> None:
    """Write to a temporary file in the same directory, fsync, rename: readers see old or new, never half.

    The temporary name starts with a dot and has no suffix of its own, so
    that no reader globbing for ``*.json`` or ``*.prom`` picks it up. The
    mode (and ``owner``, uid and gid) are set before a byte is written: a
    secret is never readable by others, not even for a moment.
    """
    directory = os.path.dirname(path)
    import tempfile  # here, not at the top: status only reads state, and every import is paid per run
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, *owner)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json_atomic(path: str, data: Any) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_object(path: str) -> dict | None:
    """A JSON object from ``path``; None when the file does not exist; ValueError/OSError when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def read_lenient(path: str) -> dict:
    """A JSON object from ``path``, or {} when it is missing or unreadable (for bookkeeping, never for health)."""
    try:
        return read_object(path) or {}
    except (OSError, ValueError):
        return {}


def last_run_path(state_dir: str, action: str, repository: str | None = None) -> str:
    """``last-<action>.json``; for a run on a repository other than the primary, ``last-<action>@<name>.json``."""
    return os.path.join(state_dir, f"last-{action}{'@' + repository if repository else ''}.json")


def last_success_path(state_dir: str, action: str, repository: str | None = None) -> str:
    """The newest run of ``action`` that succeeded (or, for a backup, made its snapshots but missed files)."""
    return os.path.join(state_dir, f"last-success-{action}{'@' + repository if repository else ''}.json")


def running_path(state_dir: str, action: str) -> str:
    return os.path.join(state_dir, f"running-{action}.json")


def spot_path(state_dir: str) -> str:
    """The newest spot check's verdict (``verify --spot``), kept until the next spot check."""
    return os.path.join(state_dir, "last-spot.json")


def items_path(state_dir: str) -> str:
    return os.path.join(state_dir, "items.json")


# --- the running marker ---------------------------------------------------------------

def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()[19]


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def process_identity() -> dict:
    """This process, so that another can tell later whether it still runs (pid, start time, boot)."""
    pid = os.getpid()
    return {"pid": pid, "pid_start": _process_start(pid), "boot_id": _boot_id()}


def process_alive(identity: dict) -> bool:
    """The process that wrote ``identity`` still runs (same boot, same pid, same start time)."""
    try:
        pid = int(identity.get("pid"))
    except (TypeError, ValueError):
        return False
    if identity.get("boot_id") != _boot_id():
        return False
    start = _process_start(pid)
    return start is not None and start == identity.get("pid_start")


def write_marker(state_dir: str, action: str, run_id: str, started: float, items: list[str]) -> None:
    """Say that this process runs ``action``; raises StateError when state_dir cannot record it."""
    data = {"run_id": run_id, "action": action, "started": started, **process_identity(), "items": items}
    try:
        write_json_atomic(running_path(state_dir, action), data)
    except OSError as exc:
        raise StateError(f"cannot record the run in {state_dir}: {exc.strerror or exc}; nothing was done "
                         f"(free space there, or fix state_dir)") from None


marker_alive = process_alive


def remove_marker(state_dir: str, action: str) -> None:
    try:
        os.unlink(running_path(state_dir, action))
    except FileNotFoundError:
        pass


def interrupted_record(marker: dict, host: str) -> dict:
    """The failure record of a run that left its marker behind."""
    started = float(marker.get("started") or 0)
    return {"action": marker.get("action"), "run_id": marker.get("run_id"), "host": host, "started": started,
            "duration": 0.0, "finished": started, "status": "failure", "exit_code": 1,
            "error": "the run ended without recording how (vhbackup was killed, crashed or could not write "
                     "state_dir)",
            "snapshot_ids": [], "services": [], "databases": [], "bytes_added": 0, "bytes_total": 0,
            "items": {item: {"status": "failure", "error": "interrupted"} for item in marker.get("items") or []},
            "details": {"error_kind": "Interrupted"}}


# --- per-item history ------------------------------------------------------------------

def merge_items(items: dict, record: dict) -> dict:
    """``items`` updated with a backup record's per-item outcomes (newest attempt, newest good one)."""
    merged = dict(items)
    for item, outcome in (record.get("items") or {}).items():
        entry = {"run_id": record.get("run_id"), "time": record.get("started"),
                 "duration": outcome.get("duration", record.get("duration")), **outcome}
        old = merged.get(item) if isinstance(merged.get(item), dict) else {}
        new = {**old, "last": entry}
        if entry.get("status") in ("success", "partial"):
            new["good"] = entry
        merged[item] = new
    return merged


def read_items(state_dir: str) -> dict:
    """items.json; ValueError/OSError when it exists but cannot be read."""
    return read_object(items_path(state_dir)) or {}


# --- secrets -----------------------------------------------------------------------------

def _secret_values(path: str) -> list[str]:
    """Every non-empty line of a credential file and the whole of it: each way a tool may read it."""
    try:  # never block: a FIFO (or a device) would hang an alert for ever, and its content is no secret of ours
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []
        text = os.read(fd, 65536).decode("utf-8", errors="replace")
    except OSError:
        return []
    finally:
        os.close(fd)
    values = [line.strip() for line in text.splitlines() if line.strip()]
    return values + ([text.strip()] if text.strip() else [])


def secrets_of(policy) -> list[str]:
    """Values that must never reach a state file, a metric or a message (longest first)."""
    found: list[str] = []
    files = [repo.password_file for repo in policy.repositories]
    files += [db.password_file for db in policy.databases if db.password_file]
    if policy.notify.email and policy.notify.email.password_file:
        files.append(policy.notify.email.password_file)
    for path in files:
        found += _secret_values(path)
    for repo in policy.repositories:
        env = dict(repo.env)
        if repo.env_file and not env:
            try:  # commands that never open the repository did not read it; its secrets are still secrets
                env = credentials.read_env_file(repo.env_file)
            except PolicyError:
                env = {}
        found += [v for v in env.values() if len(v) >= 4]
        if (password := url_password(repo.url)) is not None:
            found.append(password)
    if policy.notify.webhook:
        found.append(policy.notify.webhook.url)
        found += [v for _, v in policy.notify.webhook.headers if len(v) >= 4]
    for ping in policy.monitor.pings:  # a healthchecks UUID or an ntfy topic is all it takes to forge a ping
        found += secret_parts(ping.url)
    return sorted(set(found), key=len, reverse=True)


def redact(data: Any, secrets: list[str]) -> Any:
    """``data`` (JSON-like) with every occurrence of a secret replaced by ``***``."""
    if isinstance(data, str):
        for secret in secrets:
            data = data.replace(secret, "***")
        return data
    if isinstance(data, dict):
        return {k: redact(v, secrets) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact(v, secrets) for v in data]
    return data


# --- sizes of runs -----------------------------------------------------------------------

def _sizes_path(state_dir: str) -> str:
    return os.path.join(state_dir, "run-sizes.json")


def run_sizes(state_dir: str) -> dict[str, int]:
    """Bytes each run backed up, as recorded here (restic before 0.17 keeps no size in the snapshot)."""
    return read_lenient(_sizes_path(state_dir))


def remember_run_size(state_dir: str, run_id: str, size: int, keep: int = 10000) -> None:
    sizes = run_sizes(state_dir)
    sizes[run_id] = size
    write_json_atomic(_sizes_path(state_dir), dict(sorted(sizes.items())[-keep:]))



# --- copies to other repositories (issue 10) ---------------------------------------------

def copies_path(state_dir: str) -> str:
    return os.path.join(state_dir, "copies.json")


def record_copy(state_dir: str, name: str, run_id: str, started: float, ok: bool, error: str | None,
                snapshot_ids: list[str]) -> None:
    """Per copy repository: its first attempt, last attempt and last success (the run copied and when)."""
    copies = read_lenient(copies_path(state_dir))
    entry = dict(copies.get(name) or {})
    entry.setdefault("first_attempt", started)
    entry["last"] = {"run_id": run_id, "time": started, "status": "success" if ok else "failure", "error": error,
                     "snapshot_ids": snapshot_ids}
    if ok:
        entry["good"] = {"run_id": run_id, "time": started, "snapshot_ids": snapshot_ids}
    copies[name] = entry
    write_json_atomic(copies_path(state_dir), copies)
