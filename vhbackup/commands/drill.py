"""vhbackup drill: a restore test with nothing for the admin to do.

It restores the newest backup run (or, with ``--service``, the newest run
holding those services) into scratch space and checks it:

- files go to ``<repository.cache_dir>/drill/<drill run id>/`` (restic
  restore with ``--verify``, so restic reads every restored file back and
  checks its content), then the restored tree is compared entry by entry
  with the snapshot's own listing (``restic ls``): kind, permissions, size
  and modification time;
- each database dump of the run is loaded into a scratch database
  ``<name>_vhdrill_<run suffix>`` on the same server, which must load and
  hold tables;
- the scratch directory and databases are removed afterwards, on every
  way out (an error, Ctrl-C, SIGTERM), unless ``--keep``; what a killed
  drill left (or ``--keep`` kept) is removed when the next drill starts
  (see ``scratch.py``).

The measured restore time (the recovery time) is recorded in the run's
state record (``details.restore_seconds``, ``details.recovery_seconds``).
A problem fails the drill (exit 1), which alerts like a failed backup.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
import os
import re
import time

from vhbackup import databases, lock, outcome, runs, scratch, selection
from vhbackup.context import Context
from vhbackup.errors import EXIT_OK, NotFound, VhError
from vhbackup.policy import SYSTEM_SERVICE
from vhbackup.quantities import format_duration, format_size

NAME = "drill"

log = logging.getLogger("vhbackup")

SCRATCH_DB = "{name}_vhdrill_{run}"
MAX_DB_NAME = 63  # PostgreSQL's limit; MariaDB allows 64


def add_arguments(parser) -> None:
    parser.add_argument("--repository", metavar="NAME",
                        help="read from this repository of the policy (default: the primary)")
    parser.add_argument("--service", action="append", default=[], metavar="NAME",
                        help="drill only this service's files and databases (repeatable)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the scratch directory and scratch databases for inspection")


def scratch_db_name(db_name: str, run_id: str) -> str:
    suffix = run_id.rsplit("-", 1)[-1]
    base = re.sub(r"[^A-Za-z0-9_]", "_", db_name)
    room = MAX_DB_NAME - len(SCRATCH_DB.format(name="", run=suffix))
    return SCRATCH_DB.format(name=base[:room], run=suffix)


def run(ctx: Context, args) -> int:
    ctx.choose_repository(args.repository, fall_back=False)
    policy = ctx.policy
    names = selection.service_names(policy, args.service)
    with lock.held(policy.state_dir, NAME, ctx.wait), outcome.recorded(ctx, NAME) as record:
        for problem in scratch.clean_leftovers(policy, databases.drop_database):
            log.warning("%s", problem)
        all_runs = runs.of_host(runs.group(ctx.restic.snapshots(fresh=True)), policy.host)
        if not all_runs:
            raise VhError(f"no backup run to drill yet for host {policy.host}; make one with 'vhbackup backup'")
        if names:
            wanted = selection.for_restore(policy, names)
            services = wanted.services
            dbs = tuple(db.name for db in wanted.databases)
            try:
                chosen = runs.latest(all_runs, services, dbs, now=datetime.now(timezone.utc))
            except NotFound as exc:
                raise VhError(str(exc)) from None  # a drill that finds nothing to drill is a failed drill
        else:
            chosen = all_runs[0]
            services = chosen.services
            dbs = chosen.databases
        known = {db.name for db in policy.databases}
        for name in dbs:
            if name not in known:
                log.warning("run %s holds database %s, which the policy no longer defines; not drilled",
                            chosen.id, name)
        dbs = tuple(d for d in dbs if d in known)
        unsupported = tuple(d for d in dbs if not databases.can_drill(policy.database(d)))
        for name in unsupported:
            log.warning("database %s (%s) is not drilled: vhbackup cannot inspect a scratch copy of it; test it "
                        "with 'vhbackup restore --database %s --into-database NEW --yes'",
                        name, policy.database(name).type, name)
        if unsupported:
            record.details["not_drilled"] = ", ".join(unsupported)
        dbs = tuple(d for d in dbs if d not in unsupported)
        record.services, record.databases = list(services), list(dbs)
        record.snapshot_ids = [s.id for s in chosen.snapshots
                               if (s.tag_value("db") in dbs) or (not s.tag_value("db") and services)]
        record.details["drilled_run"] = chosen.id
        record.details["drilled_run_time"] = chosen.time.astimezone().isoformat(timespec="seconds")
        log.info("drilling run %s (%s): %s", chosen.id, f"{chosen.time.astimezone():%Y-%m-%d %H:%M:%S}",
                 ", ".join([*(f"files of {s}" for s in services), *(f"database {d}" for d in dbs)]) or "nothing")
        problems: list[str] = []
        recovery = 0.0
        if services and chosen.files is not None:
            problems += _drill_files(ctx, chosen, services, args.keep, record)
            recovery += record.details.get("restore_seconds", 0.0)
        for name in dbs:
            db_problems, seconds = _drill_database(ctx, chosen, name, args.keep, record)
            problems += db_problems
            recovery += seconds
        record.details["recovery_seconds"] = round(recovery, 2)
        for problem in problems:
            log.error("drill: %s", problem)
        if problems:
            more = f" (and {len(problems) - 1} more, see the log)" if len(problems) > 1 else ""
            raise VhError(f"drill of run {chosen.id} found {len(problems)} problem(s): {problems[0]}{more}")
        log.info("drill of run %s passed: restored in %s", chosen.id, format_duration(recovery))
    return EXIT_OK


def _drill_files(ctx: Context, chosen: runs.Run, services: tuple[str, ...], keep: bool,
                 record: outcome.Record) -> list[str]:
    includes = runs.includes(ctx.policy, chosen, services)
    target = scratch.directory(ctx.policy, NAME, ctx.run_id)
    problems: list[str] = []
    try:
        result = scratch.restore_and_compare(ctx, chosen.files.id, target, includes, verify=True,
                                             hint=", or drill part of it with --service NAME")
        record.details["restore_seconds"] = round(result.seconds, 2)
        record.details["files_compared"] = result.entries
        record.details["restored_bytes"] = result.bytes
        problems += [f"files of run {chosen.id}: {d}" for d in result.differences[:20]]
        if len(result.differences) > 20:
            problems.append(f"files of run {chosen.id}: {len(result.differences) - 20} more differences")
        log.info("restored %d entries (%s) of %s to %s in %s; %s", result.entries, format_size(result.bytes),
                 ", ".join(s if s != SYSTEM_SERVICE else "top-level paths" for s in services), target,
                 format_duration(result.seconds), "all match the snapshot" if not result.differences else
                 f"{len(result.differences)} difference(s)")
    except VhError as exc:
        problems.append(f"restoring the files of run {chosen.id} failed: {exc}")
    finally:
        if keep and os.path.exists(target):
            record.details["kept_directory"] = target
            log.info("kept the restored files in %s (--keep); remove it when done: rm -rf %s", target, target)
        elif (error := scratch.remove(target)) is not None:
            problems.append(error)
    return problems


def _drill_database(ctx: Context, chosen: runs.Run, name: str, keep: bool,
                    record: outcome.Record) -> tuple[list[str], float]:
    """Load one dump into its scratch database; (problems, seconds it took)."""
    db = ctx.policy.database(name)
    snapshot = chosen.database(name)
    scratch_name = scratch_db_name(name, chosen.id)
    facts = record.details.setdefault("databases", {}).setdefault(name, {"scratch": scratch_name})
    creates = databases.has_scratch_database(db)
    if creates:
        scratch.register_database(ctx.policy, name, scratch_name, ctx.run_id)
    made: list[bool] = []

    def created() -> None:
        made.append(True)
        scratch.register_database(ctx.policy, name, scratch_name, ctx.run_id, created=True)

    started = time.monotonic()
    problems: list[str] = []
    tables = 0
    try:
        tables = databases.scratch_restore(ctx, snapshot, db, scratch_name, created)
    except VhError as exc:
        problems.append(f"database {name}: loading the dump of run {chosen.id} into {scratch_name} failed: {exc}")
    finally:
        seconds = time.monotonic() - started
        facts["restore_seconds"] = round(seconds, 2)
        if made and keep and not problems:
            log.info("kept the scratch database %s (--keep); the next drill drops it", scratch_name)
        elif made:
            problems += _drop(ctx, db, scratch_name)
        elif creates:
            scratch.unregister_database(ctx.policy, name, scratch_name)
    if problems:
        return problems, seconds
    facts["tables"] = tables
    if tables < 1:
        problems.append(f"database {name}: the dump of run {chosen.id} loaded into {scratch_name} but holds no "
                        f"tables")
    log.info("database %s: dump of %s loaded into %s (%d tables) in %s", name,
             f"{snapshot.time.astimezone():%Y-%m-%d %H:%M}", scratch_name, tables, format_duration(seconds))
    return problems, seconds


def _drop(ctx: Context, db, scratch_name: str) -> list[str]:
    """Drop a scratch database (also while an interrupt unwinds); the problem, if it stays."""
    try:
        databases.drop_database(db, scratch_name)
    except VhError as exc:
        return [f"could not drop the scratch database {scratch_name}: {exc}; the next drill tries again"]
    scratch.unregister_database(ctx.policy, db.name, scratch_name)
    return []
