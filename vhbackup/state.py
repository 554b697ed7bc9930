"""What each run leaves in ``state_dir``: its outcome, written atomically.

``last-<action>.json`` holds the newest run of each action; ``status`` reads
these files and nothing else, so it needs no repository access.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def write_json_atomic(path: str, data: Any) -> None:
    """Write to a temporary file in the same directory, fsync, rename: readers see old or new, never half."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
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


def read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def last_run_path(state_dir: str, action: str) -> str:
    return os.path.join(state_dir, f"last-{action}.json")


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
