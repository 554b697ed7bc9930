"""Checks before a backup stops or dumps anything: each failure is one line saying how to fix it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from vhbackup import databases
from vhbackup.context import Context
from vhbackup.errors import VhError
from vhbackup.policy import Policy
from vhbackup.quantities import format_size
from vhbackup.restic import display_url, temp_dir

if TYPE_CHECKING:
    from vhbackup.commands.backup import Plan


def existing_parent(path: str) -> str:
    while not os.path.exists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    return path


def free_bytes(path: str) -> int:
    st = os.statvfs(existing_parent(path))
    return st.f_bavail * st.f_frsize


def scratch_dirs(policy: Policy) -> dict[str, str]:
    """The file systems vhbackup writes to besides the repository: restic's cache and temp dir."""
    return {"cache": policy.repository.cache_dir, "temp": temp_dir(policy.repository.cache_dir)}


def local_repository_path(url: str) -> str | None:
    """The directory of a local repository (``/path`` or ``local:/path``); None for remote backends."""
    if url.startswith("local:"):
        url = url[len("local:"):]
    return url if url.startswith("/") else None


def measure_free_space(policy: Policy) -> dict[str, dict]:
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


def check_free_space(ctx: Context) -> None:
    need = ctx.policy.checks.min_free_space
    for what, path in scratch_dirs(ctx.policy).items():
        free = free_bytes(path)
        if free < need:
            raise VhError(f"only {format_size(free)} free for the {what} directory {path} "
                          f"(checks.min_free_space is {format_size(need)}); free some space there "
                          f"or lower checks.min_free_space in {ctx.policy.source}")


def repository_probe_needed(ctx: Context, plan: Plan) -> bool:
    """Whether to probe the repository (``restic cat config``) before the backup.

    The probe costs a restic start and its key derivation (~0.5 s), so it runs
    only where failing later would cost something: before units are stopped,
    and before dumps that are piped into restic older than 0.17 (newer restic
    opens the repository before it starts the dump). Otherwise the backup's
    first restic call is the probe: it fails the same way, before anything
    is read or changed.
    """
    return bool(plan.units) or (bool(plan.databases) and not ctx.restic.version.stdin_from_command)


def before_backup(ctx: Context, plan: Plan) -> None:
    check_free_space(ctx)
    databases.check_tools(plan.databases)
    if repository_probe_needed(ctx, plan) and not ctx.restic.exists():
        raise VhError(f"no restic repository at {display_url(ctx.policy.repository.url)}; "
                      f"create it with 'vhbackup init'")
