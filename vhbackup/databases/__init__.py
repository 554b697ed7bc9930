"""Database dumps streamed into restic, and restores streamed back (placeholder until the engines land)."""

from __future__ import annotations

from vhbackup.errors import VhError


def check_tools(databases) -> None:
    if databases:
        raise VhError("database backups are not available in this build")


def backup_all(ctx, databases, tags, record) -> list[str]:
    raise VhError("database backups are not available in this build")


def restore_all(ctx, run, databases, args, record) -> None:
    raise VhError("database restores are not available in this build")
