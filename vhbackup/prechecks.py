"""Checks before a backup stops or dumps anything: each failure is one line saying how to fix it."""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING

from vhbackup import databases
from vhbackup.context import Context
from vhbackup.errors import VhError
from vhbackup.quantities import format_size
from vhbackup.restic import display_url

if TYPE_CHECKING:
    from vhbackup.commands.backup import Plan


def existing_parent(path: str) -> str:
    while not os.path.exists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    return path


def free_bytes(path: str) -> int:
    st = os.statvfs(existing_parent(path))
    return st.f_bavail * st.f_frsize


def scratch_dirs(ctx: Context) -> dict[str, str]:
    """The file systems vhbackup writes to besides the repository: restic's cache and temp dir."""
    return {"cache": ctx.policy.repository.cache_dir, "temp": tempfile.gettempdir()}


def check_free_space(ctx: Context) -> None:
    need = ctx.policy.checks.min_free_space
    for what, path in scratch_dirs(ctx).items():
        free = free_bytes(path)
        if free < need:
            raise VhError(f"only {format_size(free)} free for the {what} directory {path} "
                          f"(checks.min_free_space is {format_size(need)}); free some space there "
                          f"or lower checks.min_free_space in {ctx.policy.source}")


def before_backup(ctx: Context, plan: Plan) -> None:
    check_free_space(ctx)
    databases.check_tools(plan.databases)
    if not ctx.restic.exists():
        raise VhError(f"no restic repository at {display_url(ctx.policy.repository.url)}; "
                      f"create it with 'vhbackup init'")
