"""vhbackup restore: list backup runs, or bring back a run's files and databases.

The target is resolved first (symlinks, ``..``): a ``--target`` that is
``/`` is an in-place restore, with its safeguards (``--yes``, the services'
units stopped). Paths are restored literally (restic ``--include`` patterns
are escaped), and with restic < 0.17 the restore refuses to write through
a symbolic link it finds where the backup has a directory.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
import os
import stat
import sys

from vhbackup import browse, containers, databases, lock, outcome, runs, scratch, selection, service_units, state
from vhbackup.context import Context
from vhbackup.errors import EXIT_OK, NotFound, UsageError, VhError
from vhbackup.policy import Policy
from vhbackup.quantities import format_size

NAME = "restore"

log = logging.getLogger("vhbackup")


def add_arguments(parser) -> None:
    parser.add_argument("--repository", metavar="NAME",
                        help="read from this repository of the policy (default: the primary, or the first copy that opens when the primary cannot be used)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--list", action="store_true", help="list backup runs, newest first")
    which.add_argument("--latest", action="store_true", help="restore the newest run that holds what is asked for")
    which.add_argument("--snapshot", metavar="ID", help="a run id from --list, or a unique prefix of a snapshot id")
    which.add_argument("--before", metavar="TIME",
                       help="restore the newest run before this local time ('YYYY-MM-DD HH:MM') that holds what "
                            "is asked for")
    parser.add_argument("--path", action="append", default=[], metavar="PATH",
                        help="only this file or folder (a literal absolute path, never a pattern; repeatable)")
    parser.add_argument("--to-stdout", action="store_true",
                        help="write the one regular file named by --path to standard output, byte for byte")
    parser.add_argument("--json", action="store_true", help="with --list: print a JSON array")
    parser.add_argument("--service", action="append", default=[], metavar="NAME",
                        help="only this service's files and databases (repeatable)")
    parser.add_argument("--database", action="append", default=[], metavar="NAME",
                        help="only this database (repeatable)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--files-only", action="store_true", help="restore files, not databases")
    only.add_argument("--databases-only", action="store_true", help="restore databases, not files")
    parser.add_argument("--target", metavar="DIR",
                        help="restore files under DIR (DIR/srv/...) instead of in place")
    parser.add_argument("--into-database", metavar="NEWNAME",
                        help="restore the database into NEWNAME (created if absent), leaving the original alone")
    parser.add_argument("--db-host", metavar="HOST", help="restore databases to this server instead")
    parser.add_argument("--db-port", metavar="PORT", type=int, help="port of --db-host")
    parser.add_argument("--yes", action="store_true", help="allow replacing live files and non-empty databases")
    parser.add_argument("--dry-run", action="store_true", help="print what would be restored; change nothing")


def resolve_target(target: str | None) -> str | None:
    """The real directory files go under; None means in place (also for a target that resolves to /)."""
    if target is None:
        return None
    if "\0" in target:
        raise UsageError("--target must not contain a NUL character")
    resolved = os.path.realpath(os.path.abspath(target))
    return None if resolved == "/" else resolved


def check_target(target: str) -> None:
    """Refuse a target another user could redirect while the restore runs.

    The target was resolved once; if another user can rename or replace
    one of its directories (one they own, or a group- or world-writable one
    without the sticky bit), they can swap it for a symbolic link after
    that check, and restic would then write the backup's files through it,
    e.g. over the live system without ``--yes``. The target itself must not
    be writable by others either (a link planted in it before restic makes
    a directory there: restic < 0.17 follows it). A sticky directory such
    as /tmp may hold the target: others cannot rename what root made there.
    Called again once the target exists (someone may have made it first).
    Also refuses a target that exists and is not a directory.
    """
    trusted = (0, os.geteuid())
    path = "/"
    for part in [p for p in target.split("/") if p]:
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return  # created by this restore, inside directories only root (or we) can change
        except OSError as exc:
            raise UsageError(f"--target {target}: cannot inspect {path}: {exc.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise UsageError(f"--target {target}: {path} is not a directory")
        if st.st_uid not in trusted:
            raise UsageError(f"--target {target}: {path} belongs to uid {st.st_uid}, who could redirect the "
                             f"restore elsewhere while it runs; restore under a directory only root can change")
        if st.st_mode & 0o022 and (path == target or not st.st_mode & stat.S_ISVTX):
            raise UsageError(f"--target {target}: {path} is writable by others (mode "
                             f"{stat.S_IMODE(st.st_mode):04o}), who could redirect the restore elsewhere while "
                             f"it runs; restore under a directory only root can change")


def run(ctx: Context, args) -> int:
    ctx.choose_repository(args.repository, fall_back=True)
    if args.list:
        print_runs(ctx.policy, runs.group(ctx.restic.snapshots(damaged_ok=True)), as_json=args.json)
        return EXIT_OK
    if args.json:
        raise UsageError("--json goes with --list")
    before = runs.parse_before(args.before) if args.before else None
    if args.snapshot:
        runs.validate_ref(args.snapshot)
    paths = list(dict.fromkeys(browse.normalize(p, "--path") for p in args.path))
    if args.to_stdout and len(paths) != 1:
        raise UsageError("--to-stdout needs exactly one --path FILE")
    if paths:
        if args.database or args.databases_only or args.into_database or args.db_host or args.db_port:
            raise UsageError("--path restores files: it does not go with --database, --databases-only, "
                             "--into-database, --db-host or --db-port")
        if args.to_stdout:
            if args.target is not None or args.yes:
                raise UsageError("--to-stdout writes to standard output: it does not go with --target or --yes")
            return _to_stdout(ctx, args, paths[0], before)
        return _restore_paths(ctx, args, paths, before)
    target = resolve_target(args.target)
    if target is not None:
        check_target(target)
    if args.target is not None and target is None:
        log.warning("--target %s is the root directory: this is an in-place restore", args.target)
    files_wanted = not args.databases_only and not (args.database and not args.service)
    policy = containers.with_volumes(ctx.policy, args.service, create=target is None and not ctx.dry_run,
                                     missing_ok=ctx.dry_run) if files_wanted else ctx.policy
    chosen = selection.for_restore(policy, args.service, args.database, args.files_only, args.databases_only,
                                   args.into_database, files_in_place=target is None,
                                   databases_in_place=not args.db_host)
    engine = containers.detect(ctx.policy.container_engine) if chosen.containers else None
    services = chosen.services
    dbs = tuple(db.name for db in chosen.databases)
    all_runs = runs.group(ctx.restic.snapshots())
    if args.snapshot:
        run_ = runs.find(all_runs, args.snapshot)
        if not (args.service or args.database):
            services = tuple(s for s in services if s in run_.services)
            dbs = tuple(d for d in dbs if d in run_.databases)
            chosen = selection.Selection(
                file_sets=tuple(fs for fs in chosen.file_sets if fs.name in services),
                databases=tuple(db for db in chosen.databases if db.name in dbs), units=chosen.units,
                containers=chosen.containers)
        if not run_.has(services, dbs) or not (services or dbs):
            raise NotFound(f"run {run_.id} does not hold {', '.join([*services, *dbs]) or 'anything requested'}; "
                           f"it has: {', '.join([*run_.services, *run_.databases]) or 'nothing'}")
    elif before is not None:
        try:
            run_ = runs.latest(runs.before(all_runs, before), services, dbs)
        except NotFound:
            raise NotFound(f"no backup run before {args.before} holds all of: "
                           f"{', '.join([*services, *(f'db:{d}' for d in dbs)])}; see 'vhbackup restore --list'"
                           ) from None
    else:
        ours = runs.of_host(all_runs, ctx.policy.host)
        run_ = runs.latest(ours, services, dbs, now=datetime.now(timezone.utc))
        newer = runs.newer_parts(ours, run_, services, dbs)
        for item, other in newer.items():
            log.warning("%s has a newer backup than run %s: run %s (%s); this restore brings back the older one "
                        "(restore it on its own with --%s %s, or pick runs with --snapshot)", item, run_.id,
                        other.id, f"{other.time:%Y-%m-%d %H:%M:%S}", "service" if item.startswith("files:")
                        else "database", item.split(":", 1)[1])
    includes = runs.includes(policy, run_, services)
    _describe(ctx, run_, services, dbs, target, includes)
    if ctx.dry_run:
        return EXIT_OK
    if target is None and services:
        _confirm_in_place(ctx, args)
    steps = databases.plan_restore(ctx, run_, chosen.databases, args.into_database, args.yes,
                                   args.db_host, args.db_port)
    with lock.held(ctx.policy.state_dir, NAME, ctx.wait), outcome.recorded(ctx, NAME) as record:
        record.services, record.databases = list(services), list(dbs)
        record.snapshot_ids = [s.id for s in run_.snapshots]
        record.details["run"] = run_.id
        service_units.restart_left_over(ctx.policy.state_dir)
        with service_units.stopped(chosen.units, ctx.policy.state_dir, chosen.containers, engine,
                                   chosen.database_containers):
            if services:
                if target:
                    _make_target(target)
                    check_target(target)
                ctx.restic.restore(run_.files.id, target or "/", includes)
                log.info("restored files of %s from run %s to %s", ", ".join(services), run_.id, target or "/")
            databases.restore_all(ctx, steps, args.db_host, args.db_port, *_noted(ctx, args))
    return EXIT_OK


def _noted(ctx: Context, args):
    """Callbacks that note a database this restore creates in scratch.json until it is loaded (or dropped), so
    that a restore killed by SIGKILL leaves no half-loaded database behind: ``vhbackup recover`` (or the next
    drill) drops it. Not for another server (--db-host/--db-port): recover would look on the policy's."""
    if args.db_host or args.db_port:
        return (lambda step: None, lambda step: None)
    policy = ctx.policy
    return (lambda step: scratch.register_database(policy, step.db.name, step.target, ctx.run_id, created=True),
            lambda step: scratch.unregister_database(policy, step.db.name, step.target))


def _run_holding(ctx: Context, args, paths: list[str], services: tuple[str, ...],
                 before) -> tuple[runs.Run, dict[str, browse.Item]]:
    """The run to restore ``paths`` from, and each path's entry in it.

    ``--snapshot``: that run, which must hold every path. ``--latest`` and
    ``--before``: the newest run (before that time) whose files snapshot
    holds the services owning the paths (a service whose files failed is
    not tagged) and in which every path exists.
    """
    all_runs = runs.group(ctx.restic.snapshots())
    if args.snapshot:
        candidates = [runs.find(all_runs, args.snapshot)]
    else:
        candidates = runs.before(all_runs, before) if before is not None else all_runs
    for run_ in candidates:
        if run_.files is None or not run_.has(services, ()):
            continue
        found = browse.lookup_many(ctx.restic, run_, paths)
        if len(found) == len(paths):
            return run_, found
    missing = ", ".join(paths)
    if args.snapshot:
        raise NotFound(f"run {candidates[0].id} does not hold {missing}; see 'vhbackup find'")
    when = f" before {args.before}" if before is not None else ""
    raise NotFound(f"no backup run{when} holds {missing}; see 'vhbackup find'")


def _restore_paths(ctx: Context, args, paths: list[str], before) -> int:
    """``--path``: exactly those files and folders (literal), in place (``--yes``, units stopped) or to --target."""
    target = resolve_target(args.target)
    if args.target is not None and target is None:
        log.warning("--target %s is the root directory: this is an in-place restore", args.target)
    policy = containers.with_volumes(ctx.policy, args.service, create=target is None and not ctx.dry_run,
                                     missing_ok=ctx.dry_run)
    chosen = selection.for_paths(policy, paths, args.service, in_place=target is None)
    run_, found = _run_holding(ctx, args, paths, chosen.services, before)
    prefix = "dry run: would restore" if ctx.dry_run else "restoring"
    out = print if ctx.dry_run else log.info
    out(f"{prefix} run {run_.id} ({run_.time.astimezone():%Y-%m-%d %H:%M:%S}, host {run_.host})")
    for path in paths:
        out(f"  {found[path].type} {path} {'under ' + target if target else 'in place (replacing it)'}")
    if ctx.dry_run:
        return EXIT_OK
    if target is None:
        _confirm_in_place(ctx, args)
    engine = containers.detect(ctx.policy.container_engine) if chosen.containers else None
    with lock.held(ctx.policy.state_dir, NAME, ctx.wait), outcome.recorded(ctx, NAME) as record:
        record.services = list(chosen.services)
        record.snapshot_ids = [run_.files.id]
        record.details["run"] = run_.id
        record.details["paths"] = paths
        service_units.restart_left_over(ctx.policy.state_dir)
        with service_units.stopped(chosen.units, ctx.policy.state_dir, chosen.containers, engine):
            if target:
                _make_target(target)
            ctx.restic.restore(run_.files.id, target or "/", paths)
            log.info("restored %s from run %s to %s", ", ".join(paths), run_.id, target or "/")
    return EXIT_OK


def _to_stdout(ctx: Context, args, path: str, before) -> int:
    """``--path FILE --to-stdout``: the file's bytes from ``restic dump``, nothing else on stdout."""
    chosen = selection.for_paths(ctx.policy, [path], args.service, in_place=False)
    run_, found = _run_holding(ctx, args, [path], chosen.services, before)
    entry = found[path]
    if entry.type != "file":
        raise UsageError(f"--to-stdout writes one regular file; {path} is a {entry.type} in run {run_.id}")
    if ctx.dry_run:
        print(f"dry run: would write {path} ({entry.size} bytes) from run {run_.id} to standard output")
        return EXIT_OK
    log.info("writing %s from run %s to standard output", path, run_.id)
    stdout = sys.stdout.buffer
    sys.stdout.flush()
    ctx.restic.dump(run_.files.id, path, on_chunk=stdout.write)
    stdout.flush()
    return EXIT_OK


def _make_target(target: str) -> None:
    try:
        os.makedirs(target, exist_ok=True)
    except OSError as exc:
        raise VhError(f"cannot create the restore target {target}: {exc.strerror}; choose another --target") from None


def _describe(ctx: Context, run: runs.Run, services, dbs, target, includes) -> None:
    prefix = "dry run: would restore" if ctx.dry_run else "restoring"
    out = print if ctx.dry_run else log.info
    out(f"{prefix} run {run.id} ({run.time:%Y-%m-%d %H:%M:%S}, host {run.host})")
    if services:
        where = f"under {target}" if target else "in place (replacing live files)"
        what = ", ".join(includes) if includes else ", ".join(run.files.paths)
        out(f"  files of {', '.join(services)}: {what} {where}")
    for name in dbs:
        out(f"  database {name}")


def _confirm_in_place(ctx: Context, args) -> None:
    if args.yes:
        return
    if ctx.interactive:
        sys.stderr.write("This replaces live files with the backup. Type 'yes' to continue: ")
        sys.stderr.flush()
        if sys.stdin.readline().strip() == "yes":
            return
    raise VhError("restoring in place replaces live data; pass --yes to confirm, or --target DIR to restore "
                  "beside it")


def run_size(run: runs.Run, sizes: dict) -> int | None:
    size = run.size()
    return size if size is not None else sizes.get(run.id)


def print_runs(policy: Policy, all_runs: list[runs.Run], as_json: bool) -> None:
    sizes = state.run_sizes(policy.state_dir)
    if as_json:
        print(json.dumps([{
            "id": r.id, "time": r.time.isoformat(), "host": r.host, "services": list(r.services),
            "databases": list(r.databases), "size": run_size(r, sizes),
            "snapshots": [{"id": s.id, "short_id": s.short_id, "paths": list(s.paths), "tags": list(s.tags)}
                          for s in r.snapshots],
        } for r in all_runs], indent=2))
        return
    if not all_runs:
        print("no backup runs yet; make one with 'vhbackup backup'")
        return
    print(f"{'RUN':<22} {'TIME':<19} {'HOST':<16} {'SIZE':>10}  CONTENT")
    for r in all_runs:
        size = run_size(r, sizes)
        content = ", ".join([*r.services, *(f"db:{d}" for d in r.databases)])
        print(f"{r.id:<22} {r.time.astimezone():%Y-%m-%d %H:%M:%S} {r.host:<16} "
              f"{format_size(size) if size is not None else '-':>10}  {content}")
