"""What each run leaves in ``state_dir``: its outcome, written atomically.

``last-<action>.json`` holds the newest run of each action; ``status`` reads
these files and nothing else, so it needs no repository access. The atomic
write also serves the metrics file and the verify reports, and
``secrets_of``/``redact`` keep the policy's secrets out of everything
written or sent.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from vhbackup.restic import url_password


def write_text_atomic(path: str, text: str) -> None:
    """Write to a temporary file in the same directory, fsync, rename: readers see old or new, never half.

    The temporary name starts with a dot and has no suffix of its own, so
    that no reader globbing for ``*.json`` or ``*.prom`` picks it up.
    """
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
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


def read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


ACTIONS = ("backup", "prune", "verify", "drill", "restore")


def last_run_path(state_dir: str, action: str) -> str:
    return os.path.join(state_dir, f"last-{action}.json")


def last_success_path(state_dir: str, action: str) -> str:
    """The newest run of ``action`` that succeeded (or, for a backup, made its snapshots but missed files)."""
    return os.path.join(state_dir, f"last-success-{action}.json")


def read_record(path: str) -> dict | None:
    """A state record, or None if there is none yet; ValueError/OSError if it cannot be read."""
    try:
        data = read_json(path)
    except FileNotFoundError:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def secrets_of(policy) -> list[str]:
    """Values that must never reach a state file, a metric or a message (longest first)."""
    found: list[str] = []
    files = [policy.repository.password_file]
    files += [db.password_file for db in policy.databases if db.password_file]
    if policy.notify.email and policy.notify.email.password_file:
        files.append(policy.notify.email.password_file)
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                value = fh.read().strip()
        except OSError:
            continue
        if value:
            found.append(value)
    found += [v for v in policy.repository.env.values() if len(v) >= 4]
    if (password := url_password(policy.repository.url)) is not None:
        found.append(password)
    if policy.notify.webhook:
        found.append(policy.notify.webhook.url)
        found += [v for _, v in policy.notify.webhook.headers if len(v) >= 4]
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


def _sizes_path(state_dir: str) -> str:
    return os.path.join(state_dir, "run-sizes.json")


def run_sizes(state_dir: str) -> dict[str, int]:
    """Bytes each run backed up, as recorded here (restic before 0.17 keeps no size in the snapshot)."""
    try:
        data = read_json(_sizes_path(state_dir))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remember_run_size(state_dir: str, run_id: str, size: int, keep: int = 2000) -> None:
    sizes = run_sizes(state_dir)
    sizes[run_id] = size
    write_json_atomic(_sizes_path(state_dir), dict(sorted(sizes.items())[-keep:]))
