"""vhbackup unlock: remove stale restic locks left by a crashed run."""

from __future__ import annotations

import logging

from vhbackup import lock
from vhbackup.context import Context

NAME = "unlock"

log = logging.getLogger("vhbackup")


def add_arguments(parser) -> None:
    pass


def run(ctx: Context, args) -> int:
    with lock.held(ctx.policy.state_dir, NAME, ctx.wait):
        for repo in ctx.policy.repositories:  # the primary and every copy
            ctx.restic_for(repo.name).unlock()
    log.info("stale locks removed")
    return 0
