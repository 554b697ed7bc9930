"""vhbackup recover: undo what a killed run left behind (the units' ExecStopPost= runs it).

A vhbackup killed by SIGKILL or the OOM killer cannot clean up after itself.
This starts again the services' units it had stopped, records its run as
interrupted (so ``status`` says so at once, not at the next run), drops the
scratch databases and removes the scratch directories a killed drill or
``verify --snapshot`` left (only while no other run holds vhbackup's lock),
and removes restic locks of processes that are gone. It does nothing while the
run it would clean up after is still alive (and costs nothing after a run
that ended normally), so it is safe to run at any time.
"""

from __future__ import annotations

import logging

from vhbackup import databases, lock, outcome, scratch, service_units, state
from vhbackup.context import Context
from vhbackup.errors import EXIT_FAILURE, EXIT_OK, LockHeld, VhError

NAME = "recover"

log = logging.getLogger("vhbackup")


def add_arguments(parser) -> None:
    parser.add_argument("--no-unlock", action="store_true",
                        help="leave restic's locks alone (no repository access, no password needed)")


def run(ctx: Context, args) -> int:
    policy = ctx.policy
    failed = service_units.restart_left_over(policy.state_dir)
    settled = [action for action in state.ACTIONS if outcome.settle_interrupted(policy, action)]
    if {"drill", "verify", "restore"} & set(settled):
        _remove_scratch(policy)
    if settled and not args.no_unlock:
        for repo in policy.repositories:  # an interrupted copy leaves its lock in the copy
            try:
                ctx.restic_for(repo.name).unlock()
            except VhError as exc:
                log.warning("could not remove stale restic locks in repository %s: %s", repo.name, exc)
    if failed:
        log.error("%s did not start again; check 'systemctl status %s'", ", ".join(failed), failed[0])
        return EXIT_FAILURE
    return EXIT_OK


def _remove_scratch(policy) -> None:
    """What a killed drill, verify or restore left: scratch databases and directories, a database a restore
    created and did not finish loading (drill does the same first)."""
    try:
        with lock.held(policy.state_dir, NAME):  # a drill or verify that runs now owns what is registered
            for problem in scratch.clean_leftovers(policy, databases.drop_database):
                log.warning("%s", problem)
    except LockHeld:
        log.info("another vhbackup run is active: the next drill removes what the killed run left")
