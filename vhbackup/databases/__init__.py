"""Database dumps streamed into restic, and restores streamed back out of it.

Each engine module (postgresql, mariadb, mongodb) says how to call its tools;
this module runs them. A dump becomes one snapshot per policy database entry,
with a stable file name (``postgresql-hub.dump``: restic 0.18 refuses a
directory there) and the tags ``db:<name>`` and ``service:<owner>``, and
never passes through a temporary file.

An engine module has the same names as the others (``ENGINES`` lists them):
``INSTALL_HINT``, ``FATAL`` (a regex for its tools' error lines),
``CAN_INSPECT`` (whether ``exists``/``is_empty``/``table_count``/``drop``
work), ``stdin_filename(db)``, ``is_whole_server(path)``,
``dump_tools(db)``, ``restore_tools(path)``, ``dump_command(db, conn)``,
``restore_command(path, conn, target, source)``, ``exists``, ``is_empty``,
``table_count``, ``create`` and ``drop`` (each ``(conn, name)``).

Failure atomicity: with restic >= 0.17 restic runs the dump itself
(``--stdin-from-command``) and saves nothing when it fails. Older restic
reads the dump from a pipe and saves whatever arrived, so vhbackup waits for
the dump and, if it failed, removes that snapshot (``restic forget``) before
reporting. Removals wait until every dump of the run has finished, because
``forget`` needs an exclusive repository lock.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Sequence

from vhbackup import log as vlog
from vhbackup import proc, systemd_notify
from vhbackup.databases import mariadb, mongodb, postgresql
from vhbackup.databases.common import Command, Connection, connect, error_line, has_fatal, missing_tools
from vhbackup.errors import DumpError, ResticError, UsageError, VhError
from vhbackup.policy import Database
from vhbackup.quantities import format_duration, format_size
from vhbackup.restic import BackupResult, Snapshot

log = logging.getLogger("vhbackup")

ENGINES: dict[str, ModuleType] = {"postgresql": postgresql, "mariadb": mariadb, "mongodb": mongodb}

_SUBPROCESS_LINE = re.compile(r"^subprocess [^:]+: ")
_COMMAND_FAILED = re.compile(r"command failed: (exit status \d+|signal: [A-Za-z ]+)")


def engine(db: Database) -> ModuleType:
    return ENGINES[db.type]


# --- tools ---------------------------------------------------------------------


def _require(tools: list[tuple[str, ...]], eng: ModuleType, purpose: str) -> None:
    missing = missing_tools(tools)
    if missing:
        raise VhError(f"{missing[0]}: command not found, needed to {purpose}; {_install(eng)}")


def _install(eng: ModuleType) -> str:
    return eng.INSTALL_HINT if eng is mongodb else f"install it: {eng.INSTALL_HINT}"


def check_tools(databases: Sequence[Database]) -> None:
    """Every dump tool the databases need is on PATH, or one line naming the package."""
    for db in databases:
        eng = engine(db)
        _require(eng.dump_tools(db), eng, f"dump database {db.name}")


# --- backup --------------------------------------------------------------------


@dataclass
class Dumped:
    """How one database's dump ended: a saved snapshot, or a failure (and maybe a snapshot to remove)."""

    db: Database
    result: BackupResult | None = None
    failure: str | None = None
    forget: str | None = None


def backup_all(ctx, databases: Sequence[Database], tags: Sequence[str], record) -> list[str]:
    """Dump every database into its own snapshot, ``policy.parallel_dumps`` at a time.

    Returns one failure message per database that could not be saved; the
    snapshots of failed dumps are already gone from the repository.
    """
    total = len(databases)
    if not total:
        return []
    with ThreadPoolExecutor(max_workers=min(ctx.policy.parallel_dumps, total)) as pool:
        futures = [pool.submit(_backup_one, ctx, db, tuple(tags), i, total) for i, db in enumerate(databases, 1)]
        dumped = [f.result() for f in futures]
    _forget_failed(ctx, dumped)
    failures = []
    for item in dumped:
        if item.failure:
            log.error("%s", item.failure, extra=vlog.fields(database=item.db.name, service=item.db.service))
            failures.append(item.failure)
        else:
            _record(record, item.db, item.result)
    return failures


def _backup_one(ctx, db: Database, tags: tuple[str, ...], index: int, total: int) -> Dumped:
    systemd_notify.status(f"dumping {db.name} ({index}/{total})")
    eng = engine(db)
    filename = eng.stdin_filename(db)
    db_tags = (*tags, f"db:{db.name}", f"service:{db.service}")
    try:
        with connect(db) as conn:
            command = eng.dump_command(db, conn)
            if ctx.restic.version.stdin_from_command:
                return _dump_by_restic(ctx, db, eng, command, filename, db_tags)
            return _dump_through_pipe(ctx, db, eng, command, filename, db_tags)
    except VhError as exc:
        return Dumped(db, failure=f"database {db.name}: {exc}")


def _dump_by_restic(ctx, db: Database, eng: ModuleType, command: Command, filename: str,
                    tags: tuple[str, ...]) -> Dumped:
    """restic >= 0.17 runs the dump tool; a failing tool leaves no snapshot behind."""
    stderr: list[str] = []
    try:
        result = ctx.restic.backup_command(filename, tags, command.argv, env=command.env, on_stderr=stderr.append)
    except ResticError as exc:
        tool_lines = [_SUBPROCESS_LINE.sub("", ln) for ln in stderr if _SUBPROCESS_LINE.match(ln)]
        status = _COMMAND_FAILED.search("\n".join(stderr) + str(exc))
        if not tool_lines and not status:
            return Dumped(db, failure=f"database {db.name}: {exc}")
        how = status.group(1) if status else "failed"
        return Dumped(db, failure=_dump_failure(db, command, how, error_line(tool_lines, eng.FATAL)))
    tool_lines = [_SUBPROCESS_LINE.sub("", ln) for ln in stderr if _SUBPROCESS_LINE.match(ln)]
    if has_fatal(tool_lines, eng.FATAL):
        return Dumped(db, failure=_dump_failure(db, command, "exit 0", error_line(tool_lines, eng.FATAL)),
                      forget=result.snapshot_id)
    return Dumped(db, result=result)


def _dump_through_pipe(ctx, db: Database, eng: ModuleType, command: Command, filename: str,
                       tags: tuple[str, ...]) -> Dumped:
    """restic < 0.17: dump | restic backup --stdin, then judge the dump and undo the snapshot if it failed."""
    dump = proc.spawn(command.argv, env=command.env, missing_hint=_install(eng), stdin=proc.DEVNULL,
                      stdout=proc.PIPE, stderr=proc.PIPE)
    drain, tail = proc.drain_in_thread(dump.stderr)
    restic_error: ResticError | None = None
    try:
        try:
            result = ctx.restic.backup_stdin(filename, tags, stdin=dump.stdout, on_stderr=lambda line: None)
        except ResticError as exc:
            restic_error = exc
        finally:
            dump.stdout.close()
        dump.wait()
    finally:
        proc.terminate(dump)
        drain.join(timeout=10)
    lines = list(tail)
    if restic_error is not None:
        if dump.returncode == 0:
            raise restic_error
        how = proc.describe_exit(dump.returncode)
        return Dumped(db, failure=_dump_failure(db, command, how, error_line(lines, eng.FATAL)))
    if dump.returncode != 0 or has_fatal(lines, eng.FATAL):
        how = proc.describe_exit(dump.returncode)
        return Dumped(db, failure=_dump_failure(db, command, how, error_line(lines, eng.FATAL)),
                      forget=result.snapshot_id)
    if result.partial:
        return Dumped(db, failure=f"database {db.name}: restic could not read the whole dump from {command.tool}; "
                                  f"nothing was saved", forget=result.snapshot_id)
    return Dumped(db, result=result)


def _dump_failure(db: Database, command: Command, how: str, line: str | None) -> str:
    how = how.replace("exit status ", "exit ").replace("signal: killed", "killed by SIGKILL")
    return f"database {db.name}: {command.tool} failed ({how}){': ' + line if line else ''}; nothing was saved"


def _forget_failed(ctx, dumped: list[Dumped]) -> None:
    """Remove the snapshots that restic saved from failed dumps (restic < 0.17, or a fatal line on exit 0)."""
    ids = [d.forget for d in dumped if d.forget]
    if not ids:
        return
    try:
        ctx.restic.forget(ids)
        log.info("removed %d snapshot(s) of failed dumps: %s", len(ids), ", ".join(i[:8] for i in ids))
    except VhError as exc:
        for item in dumped:
            if item.forget:
                item.failure = (f"{item.failure}; its partial snapshot {item.forget[:8]} could not be removed "
                                f"({exc}): remove it with 'restic forget {item.forget}'").replace(
                                    "; nothing was saved;", ";")


def _record(record, db: Database, result: BackupResult) -> None:
    record.snapshot_ids.append(result.snapshot_id)
    record.bytes_added += result.data_added
    record.bytes_total += result.total_bytes
    log.info("snapshot %s saved: database %s (%s) of service %s: %s dumped, %s added, %s",
             result.snapshot_id[:8], db.name, db.type, db.service, format_size(result.total_bytes),
             format_size(result.data_added), format_duration(result.duration),
             extra=vlog.fields(vlog.SNAPSHOT_SAVED, snapshot_id=result.snapshot_id, database=db.name,
                               service=db.service))


# --- restore -------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreStep:
    db: Database
    snapshot: Snapshot
    path: str
    target: str | None      # the database to load into; None for dumps of several databases
    source: str | None      # the database the dump was taken from, when it holds one
    create: bool


def _dump_path(snapshot: Snapshot) -> str:
    if len(snapshot.paths) != 1:
        raise VhError(f"snapshot {snapshot.short_id} does not look like a database dump (paths: "
                      f"{', '.join(snapshot.paths) or 'none'})")
    return snapshot.paths[0]


def plan_restore(ctx, run, databases: Sequence[Database], args) -> list[RestoreStep]:
    """Check everything a database restore needs before anything is changed; the steps to take.

    Raises (exit 1, nothing changed) when a target database holds data and
    ``--yes`` was not given, or when a tool is missing.
    """
    into = getattr(args, "into_database", None)
    yes = getattr(args, "yes", False)
    steps = []
    for db in databases:
        snapshot = run.database(db.name)
        if snapshot is None:
            raise VhError(f"run {run.id} holds no dump of database {db.name}; see 'vhbackup restore --list'")
        eng = engine(db)
        path = _dump_path(snapshot)
        _require(eng.restore_tools(path), eng, f"restore database {db.name}")
        with connect(db, args.db_host, args.db_port) as conn:
            steps.append(_plan_one(eng, conn, db, snapshot, path, into, yes))
    return steps


def _plan_one(eng: ModuleType, conn: Connection, db: Database, snapshot: Snapshot, path: str,
              into: str | None, yes: bool) -> RestoreStep:
    if eng.is_whole_server(path):
        if into:
            raise UsageError(f"the dump of {db.name} holds several databases; --into-database needs a "
                             f"database entry with one name")
        if not yes:
            raise VhError(f"the dump of {db.name} holds several databases and replaces them on {conn.where}; "
                          f"pass --yes to restore it")
        return RestoreStep(db, snapshot, path, None, None, create=False)
    source = db.names[0] if db.names and len(db.names) == 1 else None
    target = into or source
    if target is None:
        raise UsageError(f"the policy no longer names one database for {db.name}; choose the target with "
                         f"--into-database NAME")
    if not eng.CAN_INSPECT:
        if not yes:
            raise VhError(f"vhbackup cannot tell whether {db.type} database {target} on {conn.where} holds data; "
                          f"pass --yes to restore over it (the collections in the dump are replaced)")
        return RestoreStep(db, snapshot, path, target, source, create=False)
    present = eng.exists(conn, target)
    if present and not yes and not eng.is_empty(conn, target):
        hint = "" if into else f", or restore beside it with --into-database {target}_restored"
        raise VhError(f"database {target} on {conn.where} is not empty; pass --yes to replace it{hint}")
    return RestoreStep(db, snapshot, path, target, source, create=not present)


def restore_all(ctx, steps: Sequence[RestoreStep], args) -> None:
    """Stream each planned database dump into its restore tool."""
    for step in steps:
        eng = engine(step.db)
        with connect(step.db, args.db_host, args.db_port) as conn:
            if step.create:
                eng.create(conn, step.target)
            try:
                _load(ctx, eng, step.snapshot, step.path, eng.restore_command(step.path, conn, step.target,
                                                                              step.source))
            except VhError:
                if step.create:
                    _drop_quietly(eng, conn, step.target)
                raise
        into = f"into {step.target} " if step.target else ""
        log.info("restored database %s from snapshot %s %son %s", step.db.name, step.snapshot.short_id, into,
                 conn.where, extra=vlog.fields(database=step.db.name, snapshot_id=step.snapshot.id))


def _drop_quietly(eng: ModuleType, conn: Connection, name: str) -> None:
    try:
        eng.drop(conn, name)
    except VhError as exc:
        log.warning("could not remove the half-restored database %s: %s", name, exc)


def _load(ctx, eng: ModuleType, snapshot: Snapshot, path: str, command: Command) -> None:
    """restic dump | restore tool, without a temporary file; raises DumpError naming the tool's error."""
    dump = ctx.restic.dump(snapshot.id, path, stdout=proc.PIPE)
    dump_drain, dump_tail = proc.drain_in_thread(dump.stderr)
    try:
        try:
            loader = proc.spawn(command.argv, env=command.env, missing_hint=_install(eng), stdin=dump.stdout,
                                stdout=proc.DEVNULL, stderr=proc.PIPE)
        finally:
            dump.stdout.close()
        drain, tail = proc.drain_in_thread(loader.stderr)
        try:
            loader.wait()
        finally:
            proc.terminate(loader)
            drain.join(timeout=10)
        dump.wait()
    finally:
        proc.terminate(dump)
        dump_drain.join(timeout=10)
    lines = list(tail)
    if loader.returncode != 0:
        line = error_line(lines, eng.FATAL)
        raise DumpError(f"{command.tool} failed ({proc.describe_exit(loader.returncode)})"
                        f"{': ' + line if line else ''}")
    ctx.restic.check_dump(dump, "\n".join(dump_tail))
    errors = [ln for ln in lines if eng.FATAL.search(ln)]
    if errors:
        log.warning("%s reported %d error(s) while loading the dump (first: %s)", command.tool, len(errors),
                    errors[0])


# --- restore drill -------------------------------------------------------------


def can_drill(db: Database) -> bool:
    """The drill needs to look inside the server (does the scratch database exist, how many tables)."""
    return engine(db).CAN_INSPECT


def scratch_restore(ctx, snapshot: Snapshot | str, db: Database, scratch_name: str) -> int:
    """Load a database snapshot into a new database ``scratch_name`` on the same server; its table count.

    Dumps that hold several databases (``names: all`` or a list) cannot load
    into one scratch database: for them the whole dump is streamed out of
    the repository and its CREATE TABLE statements are counted instead,
    without touching the server. MongoDB is not supported (no shell to
    inspect or drop the scratch database).
    """
    snapshot = _snapshot(ctx, snapshot)
    eng = engine(db)
    path = _dump_path(snapshot)
    if not can_drill(db):
        raise VhError(f"the restore drill cannot check {db.type} database {db.name}: vhbackup cannot look inside "
                      f"that server; test it with 'vhbackup restore --database {db.name} --into-database NEW --yes'")
    if scratch_name in (db.names or ()):
        raise UsageError(f"the scratch database may not be {scratch_name}, which database {db.name} backs up")
    if eng.is_whole_server(path):
        return _count_create_table(ctx, snapshot, path)
    _require(eng.restore_tools(path), eng, f"restore database {db.name}")
    with connect(db) as conn:
        if eng.exists(conn, scratch_name):
            raise VhError(f"the scratch database {scratch_name} already exists on {conn.where}; drop it first")
        eng.create(conn, scratch_name)
        source = db.names[0] if db.names else None
        try:
            _load(ctx, eng, snapshot, path, eng.restore_command(path, conn, scratch_name, source))
            tables = eng.table_count(conn, scratch_name)
        except VhError as exc:
            _drop_quietly(eng, conn, scratch_name)
            raise VhError(f"snapshot {snapshot.short_id} of database {db.name} did not load: {exc}") from None
    return tables


def drop_scratch(ctx, db: Database, scratch_name: str) -> None:
    """Remove what scratch_restore created (nothing, for dumps of several databases)."""
    eng = engine(db)
    if not can_drill(db) or db.names is None or len(db.names) > 1:
        return
    if scratch_name in db.names:
        raise UsageError(f"refusing to drop {scratch_name}: database {db.name} backs it up")
    with connect(db) as conn:
        eng.drop(conn, scratch_name)


def _snapshot(ctx, snapshot: Snapshot | str) -> Snapshot:
    if isinstance(snapshot, Snapshot):
        return snapshot
    found = ctx.restic.snapshots(tags=(), ids=(snapshot,))
    if not found:
        raise VhError(f"no snapshot {snapshot} in the repository")
    return found[0]


def _count_create_table(ctx, snapshot: Snapshot, path: str) -> int:
    with ctx.restic.dump_stream(snapshot.id, path) as stream:
        count = sum(1 for line in stream if line.startswith(b"CREATE TABLE"))
    if not count:
        raise VhError(f"the dump in snapshot {snapshot.short_id} holds no CREATE TABLE statement")
    return count
