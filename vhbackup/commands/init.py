"""vhbackup init: create the repository unless it already exists."""

from __future__ import annotations

import logging

from vhbackup.context import Context
from vhbackup.urls import display_url

NAME = "init"

log = logging.getLogger("vhbackup")


def add_arguments(parser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="say what would be done, change nothing")


def run(ctx: Context, args) -> int:
    url = display_url(ctx.policy.repository.url)
    if ctx.dry_run:
        print(f"would create the repository at {url} unless it exists")
        return 0
    if ctx.restic.exists():
        log.info("repository %s already exists; nothing to do", url)
        return 0
    ctx.restic.init()
    log.info("created repository %s; keep a copy of %s somewhere safe: without it the backups cannot be read",
             url, ctx.policy.repository.password_file)
    return 0
