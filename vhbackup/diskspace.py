"""Free space on the file systems vhbackup writes to: restic's cache, its temporary files, a local repository."""

from __future__ import annotations

import os

from vhbackup.policy import Policy


def existing_parent(path: str) -> str:
    while not os.path.exists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    return path


def free_bytes(path: str) -> int:
    st = os.statvfs(existing_parent(path))
    return st.f_bavail * st.f_frsize


def local_repository_path(url: str) -> str | None:
    """The directory of a local repository (``/path`` or ``local:/path``); None for remote backends."""
    if url.startswith("local:"):
        url = url[len("local:"):]
    return url if url.startswith("/") else None


def scratch_dirs(policy: Policy) -> dict[str, str]:
    """Where restic writes besides the repository: its cache, and its temporary packs (TMPDIR, on disk)."""
    return {"cache": policy.repository.cache_dir, "temp": policy.repository.temp_dir}


def measure(policy: Policy) -> dict[str, dict]:
    """Free bytes of the cache, temp and (if local) repository file systems, for the state record.

    ``status`` warns from these numbers, so it never has to touch the disks or the repository itself.
    """
    dirs = scratch_dirs(policy)
    if (repo := local_repository_path(policy.repository.url)) is not None:
        dirs["repository"] = repo
    out = {}
    for what, path in dirs.items():
        try:
            out[what] = {"path": path, "free_bytes": free_bytes(path)}
        except OSError:
            continue
    return out
