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
    """The primary first, then each copy with the primary's chunker parameters (deduplication carries over)."""
    for repo in ctx.policy.repositories:
        url = display_url(repo.url)
        named = f"repository {repo.name} ({repo.role}) at {url}" if len(ctx.policy.repositories) > 1 \
            else f"repository {url}"
        if ctx.dry_run:
            chunker = " with the primary's chunker parameters" if repo.is_copy else ""
            print(f"would create the {named}{chunker} unless it exists")
            continue
        restic = ctx.restic_for(repo.name)
        if restic.exists():
            log.info("%s already exists; nothing to do", named)
            continue
        restic.init(chunker_from=ctx.policy.repository if repo.is_copy else None)
        log.info("created %s; keep a copy of %s somewhere safe: without it the backups cannot be read",
                 named, repo.password_file)
    return 0
