"""Checks before a backup stops or dumps anything: each failure is one line saying how to fix it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from vhbackup import backend, databases
from vhbackup.diskspace import free_bytes, scratch_dirs
from vhbackup.errors import VhError
from vhbackup.policy import Policy
from vhbackup.quantities import format_size
from vhbackup.selection import Selection

if TYPE_CHECKING:
    from vhbackup.context import Context


def check_free_space(policy: Policy) -> None:
    need = policy.checks.min_free_space
    for what, path in scratch_dirs(policy).items():
        free = free_bytes(path)
        if free < need:
            raise VhError(f"only {format_size(free)} free for the {what} directory {path} "
                          f"(checks.min_free_space is {format_size(need)}); free some space there "
                          f"or lower checks.min_free_space in {policy.source}")


def absent_paths(selection: Selection) -> tuple[list[str], list[str]]:
    """(required paths that do not exist, optional paths that do not exist), in selection order."""
    optional = selection.optional_paths
    absent = [p for p in selection.paths if not os.path.lexists(p)]
    return [p for p in absent if p not in optional], [p for p in absent if p in optional]


def check_repository(ctx: Context, selection: Selection) -> None:
    """Is the repository there and answering, before units are stopped or dumps started?

    Local and REST repositories are probed without the key (no restic, a few
    milliseconds, bounded by ``repository.timeout``). Other backends cost a
    restic call (and its key derivation), paid only when the run would stop
    units: otherwise the run's own first restic call fails just the same,
    before anything is read or changed.
    """
    if backend.probe(ctx.policy.repository):
        return
    if selection.units:
        ctx.restic.run("cat", "config")


def before_backup(ctx: Context, selection: Selection) -> None:
    check_free_space(ctx.policy)
    ctx.restic.version  # noqa: B018 - restic is installed and new enough (cached while the binary is unchanged)
    databases.check_tools(selection.databases)
    check_repository(ctx, selection)
