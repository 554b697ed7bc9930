"""Database dumps streamed into restic, and restores streamed back out of it.

Each engine module (postgresql, mariadb, mongodb) says how to call its tools;
this module runs them through ``proc.pump``. A dump becomes one snapshot per
policy database entry, with a stable file name (``postgresql-hub.dump``:
restic 0.18 refuses a directory there) and the tags ``db:<name>`` and
``service:<owner>``, and never passes through a temporary file.

An engine module has the same names as the others (``ENGINES`` lists them):
``INSTALL_HINT``, ``FATAL`` (a regex for its tools' error lines),
``LOCK_TIMEOUT`` (a regex for "gave up waiting for a lock"), ``BOUNDS_LOCK_WAIT``
(whether the dump tool gives up on a lock by itself), ``CAN_INSPECT``
(whether ``exists``/``is_empty``/``table_count``/``drop`` work),
``stdin_filename(db)``, ``is_whole_server(path)``, ``dump_tools(db)``,
``restore_tools(path)``, ``dump_command(db, conn)``,
``restore_command(path, conn, target, source)``, ``incomplete(path, head,
tail)`` (why a finished dump does not look whole, or None), and ``exists``,
``is_empty``, ``table_count``, ``create``, ``drop`` (each ``(conn, name)``).

Failure atomicity, on every restic version: vhbackup sits between the dump
tool and ``restic backup --stdin`` and lets restic see end-of-file (and so
save a snapshot) only after the tool has exited 0, reported no error, and
its output is non-empty and looks whole. Otherwise restic is stopped before
it sees the end and saves nothing; if vhbackup itself dies, restic is killed
(``setpriv --pdeathsig``). A dump that produces nothing for
``lock_wait_timeout`` (waiting for a lock another session holds) is stopped.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, Sequence

from vhbackup import proc, systemd_notify
from vhbackup import log as vlog
from vhbackup.databases import mariadb, mongodb, postgresql
from vhbackup.databases.common import Command, Connection, connect, error_line, has_fatal
from vhbackup.errors import DumpError, NotFound, ResticError, UsageError, VhError
from vhbackup.policy import Database
from vhbackup.quantities import format_duration, format_size
from vhbackup.restic import BackupResult, Snapshot

log = logging.getLogger("vhbackup")

ENGINES: dict[str, ModuleType] = {"postgresql": postgresql, "mariadb": mariadb, "mongodb": mongodb}
#: Half-seconds to watch for a database that a cut-off CREATE commits after it was dropped.
DROP_RECHECKS = 4
#: Seconds beyond lock_wait_timeout before the watchdog stops a tool that bounds its lock waits itself.
WATCHDOG_MARGIN = 30.0


def engine(db: Database) -> ModuleType:
    return ENGINES[db.type]


# --- tools ---------------------------------------------------------------------


def _require(conn: Connection, tools: list[tuple[str, ...]], eng: ModuleType, purpose: str) -> None:
    missing = conn.runner.missing(tools)
    if missing and conn.runner.in_container:
        raise VhError(f"{missing[0]}: command not found{conn.runner.where}, needed to {purpose}; use an image "
                      f"that has it, or dump from the host through a published port")
    if missing:
        raise VhError(f"{missing[0]}: command not found, needed to {purpose}; {_install(eng)}")


def _install(eng: ModuleType) -> str:
    return eng.INSTALL_HINT if eng is mongodb else f"install it: {eng.INSTALL_HINT}"


def check_tools(databases: Sequence[Database]) -> None:
    """Every dump tool the databases need is installed where it runs (its container is running), or one line."""
    for db in databases:
        eng = engine(db)
        with connect(db) as conn:
            _require(conn, eng.dump_tools(db), eng, f"dump database {db.name}")


def _step(command: Command, eng: ModuleType, conn: Connection) -> proc.Step:
    return conn.runner.step(command, missing_hint=_install(eng), stop_signal=signal.SIGTERM)


# --- backup --------------------------------------------------------------------


def backup_one(ctx, db: Database, tags: Sequence[str]) -> BackupResult:
    """Dump ``db`` into its own snapshot; DumpError (nothing saved) or the typed restic error otherwise."""
    systemd_notify.status(f"dumping {db.name}")
    eng = engine(db)
    filename = eng.stdin_filename(db)
    db_tags = (*tags, f"db:{db.name}", f"service:{db.service}")
    with connect(db) as conn:
        command = eng.dump_command(db, conn)
        verdict: dict[str, str] = {}

        def commit(ended: proc.Ended, stream: proc.Stream) -> str | None:
            why = _judge(db, eng, command, conn.runner.ended(ended), stream)
            if why:
                verdict["why"] = why
            return why

        producer = _step(command, eng, conn)
        result, pumped = ctx.restic.stdin_backup(filename, db_tags, producer, commit, job=db.item,
                                                 idle_timeout=_idle_timeout(db, eng))
    if result is None:
        raise DumpError(f"database {db.name}: {verdict.get('why') or pumped.aborted}; nothing was saved")
    log.info("snapshot %s saved: database %s (%s) of service %s: %s dumped, %s added, %s",
             result.snapshot_id[:8], db.name, db.type, db.service, format_size(pumped.stream.bytes),
             format_size(result.data_added), format_duration(result.duration),
             extra=vlog.fields(vlog.SNAPSHOT_SAVED, snapshot_id=result.snapshot_id, database=db.name,
                               service=db.service))
    return result


def _idle_timeout(db: Database, eng: ModuleType) -> float:
    """How long a dump may write nothing: lock_wait_timeout, with room for a tool that bounds lock waits itself.

    pg_dump gives up on a lock after ``--lock-wait-timeout`` and says so;
    the watchdog is only a backstop there. mariadb-dump and mongodump have
    no such option: for them the watchdog is the bound.
    """
    return db.lock_wait_timeout + (WATCHDOG_MARGIN if eng.BOUNDS_LOCK_WAIT else 0.0)


def _judge(db: Database, eng: ModuleType, command: Command, ended: proc.Ended, stream: proc.Stream) -> str | None:
    """Why this finished dump must not become a snapshot, or None when it may."""
    line = error_line(ended.stderr, eng.FATAL)
    detail = f": {line}" if line else ""
    if ended.stalled:
        return (f"{command.tool} produced nothing for {format_duration(db.lock_wait_timeout)} and was stopped: "
                f"it was probably waiting for a lock another session holds (databases.{db.name}.lock_wait_timeout)")
    if not ended.ok:
        hint = ""
        if line and eng.LOCK_TIMEOUT.search(line):
            hint = (f" (another session held a lock longer than "
                    f"databases.{db.name}.lock_wait_timeout {format_duration(db.lock_wait_timeout)})")
        return f"{command.tool} failed ({ended.how}){detail}{hint}"
    if has_fatal(ended.stderr, eng.FATAL):
        return f"{command.tool} reported an error although it exited 0{detail}"
    if stream.bytes == 0:
        return f"{command.tool} wrote nothing (an empty dump is not a backup)"
    why = eng.incomplete(eng.stdin_filename(db), stream.head, stream.tail)
    if why:
        return f"{command.tool} exited 0, but {why} (truncated or not a dump)"
    return None


# --- restore -------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreStep:
    db: Database
    snapshot: Snapshot
    path: str
    target: str | None      # the database to load into; None for dumps of several databases
    source: str | None      # the database the dump was taken from, when it holds one
    create: bool


def dump_path(snapshot: Snapshot) -> str:
    if len(snapshot.paths) != 1:
        raise VhError(f"snapshot {snapshot.short_id} does not look like a database dump (paths: "
                      f"{', '.join(snapshot.paths) or 'none'})")
    return snapshot.paths[0]


def plan_restore(ctx, run, databases: Sequence[Database], into: str | None, yes: bool,
                 db_host: str | None = None, db_port: int | None = None) -> list[RestoreStep]:
    """Check everything a database restore needs before anything is changed; the steps to take.

    Raises (exit 1, nothing changed) when a target database holds data and
    ``--yes`` was not given, or when a tool is missing.
    """
    steps = []
    for db in databases:
        snapshot = run.database(db.name)
        if snapshot is None:
            raise NotFound(f"run {run.id} holds no dump of database {db.name}; see 'vhbackup restore --list'")
        eng = engine(db)
        path = dump_path(snapshot)
        with connect(db, db_host, db_port) as conn:
            _require(conn, eng.restore_tools(path), eng, f"restore database {db.name}")
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


def restore_all(ctx, steps: Sequence[RestoreStep], db_host: str | None = None, db_port: int | None = None,
                creating: Callable[[RestoreStep], None] = lambda step: None,
                settled: Callable[[RestoreStep], None] = lambda step: None) -> None:
    """Stream each planned database dump into its restore tool.

    A database this restore created is dropped again if its load does not
    complete, whatever ends it (an error, Ctrl-C, SIGTERM). For SIGKILL,
    which nothing survives, ``creating(step)`` is called just before such a
    database is created (the caller notes it, and ``vhbackup recover`` drops
    it) and ``settled(step)`` once it is loaded or dropped.
    """
    for step in steps:
        eng = engine(step.db)
        with connect(step.db, db_host, db_port) as conn:
            try:
                if step.create:
                    creating(step)
                    with proc.signals_deferred():  # a database half created cannot be dropped reliably
                        eng.create(conn, step.target)
                load(ctx, eng, step.snapshot, step.path,
                     eng.restore_command(step.path, conn, step.target, step.source), conn)
            except BaseException:
                if step.create:
                    _drop_quietly(eng, conn, step.target)
                    settled(step)
                else:
                    log.error("the restore of %s into %s on %s did not complete; that database may hold part of "
                              "the dump: restore it again", step.db.name, step.target or "its databases", conn.where)
                raise
            if step.create:
                settled(step)
        into = f"into {step.target} " if step.target else ""
        log.info("restored database %s from snapshot %s %son %s", step.db.name, step.snapshot.short_id, into,
                 conn.where, extra=vlog.fields(database=step.db.name, snapshot_id=step.snapshot.id))


def _drop_quietly(eng: ModuleType, conn: Connection, name: str) -> None:
    """Drop a database this restore created; again if a CREATE that a signal cut off commits just after."""
    try:
        eng.drop(conn, name)
        for _ in range(DROP_RECHECKS):
            time.sleep(0.5)
            if not eng.exists(conn, name):
                break
            eng.drop(conn, name)
        log.info("removed the incomplete database %s", name)
    except VhError as exc:
        log.warning("could not remove the half-restored database %s: %s; drop it by hand", name, exc)


def load(ctx, eng: ModuleType, snapshot: Snapshot, path: str, command: Command, conn: Connection) -> None:
    """restic dump | restore tool, without a temporary file; raises DumpError naming the tool's error.

    The tool sees the end of its input only when restic delivered the whole
    dump; otherwise it is stopped before it could take a partial dump for a
    whole one.
    """
    try:
        pumped = ctx.restic.dump(snapshot.id, path, _step(command, eng, conn),
                                 commit=lambda ended, stream: None if stream.bytes else "the dump is empty")
    except ResticError as exc:
        raise type(exc)(f"{exc}; {command.tool} was stopped before the end of the dump") from None
    loader = conn.runner.ended(pumped.consumer)
    if pumped.aborted:
        raise DumpError(f"{command.tool} was stopped before the end of the dump ({pumped.aborted}); "
                        f"the target may hold part of the data: restore again")
    if not loader.ok:
        line = error_line(loader.stderr, eng.FATAL)
        raise DumpError(f"{command.tool} failed ({loader.how}){': ' + line if line else ''}")
    errors = [ln for ln in loader.stderr if eng.FATAL.search(ln)]
    if errors:
        log.warning("%s reported %d error(s) while loading the dump (first: %s)", command.tool, len(errors),
                    errors[0])


# --- restore drill -------------------------------------------------------------


def can_drill(db: Database) -> bool:
    """The drill needs to look inside the server (does the scratch database exist, how many tables)."""
    return engine(db).CAN_INSPECT


def scratch_restore(ctx, snapshot: Snapshot, db: Database, scratch_name: str,
                    created: Callable[[], None] = lambda: None) -> int:
    """Load a database snapshot into a new database ``scratch_name`` on the same server; its table count.

    Dumps that hold several databases (``names: all`` or a list) cannot load
    into one scratch database: for them the whole dump is streamed out of
    the repository and its CREATE TABLE statements are counted instead,
    without touching the server. MongoDB is not supported (no shell to
    inspect or drop the scratch database). ``created`` is called as soon as
    the scratch database exists; dropping it is the caller's (``scratch.py``
    keeps the list, so that a killed run's copy is dropped later).
    """
    eng = engine(db)
    path = dump_path(snapshot)
    if not can_drill(db):
        raise VhError(f"the restore drill cannot check {db.type} database {db.name}: vhbackup cannot look inside "
                      f"that server; test it with 'vhbackup restore --database {db.name} --into-database NEW --yes'")
    if scratch_name in (db.names or ()):
        raise UsageError(f"the scratch database may not be {scratch_name}, which database {db.name} backs up")
    if eng.is_whole_server(path):
        return _count_create_table(ctx, snapshot, path)
    with connect(db) as conn:
        _require(conn, eng.restore_tools(path), eng, f"restore database {db.name}")
        if eng.exists(conn, scratch_name):
            raise VhError(f"the scratch database {scratch_name} already exists on {conn.where}; drop it first")
        created()  # before CREATE: the name was free a moment ago, so whatever stands under it is ours
        with proc.signals_deferred():
            eng.create(conn, scratch_name)
        source = db.names[0] if db.names else None
        try:
            load(ctx, eng, snapshot, path, eng.restore_command(path, conn, scratch_name, source), conn)
            return eng.table_count(conn, scratch_name)
        except VhError as exc:
            raise VhError(f"snapshot {snapshot.short_id} of database {db.name} did not load: {exc}") from None


def has_scratch_database(db: Database) -> bool:
    """Whether scratch_restore creates a database for ``db`` (not for dumps of several databases)."""
    return can_drill(db) and db.names is not None and len(db.names) == 1


def drop_database(db: Database, name: str) -> None:
    """Drop database ``name`` on ``db``'s server (never one that ``db`` backs up)."""
    if name in (db.names or ()):
        raise UsageError(f"refusing to drop {name}: database {db.name} backs it up")
    with connect(db) as conn:
        engine(db).drop(conn, name)


def _count_create_table(ctx, snapshot: Snapshot, path: str) -> int:
    count = [0]
    rest = [b""]

    def on_chunk(chunk: bytes) -> None:
        lines = (rest[0] + chunk).split(b"\n")
        rest[0] = lines.pop()
        count[0] += sum(1 for line in lines if line.startswith(b"CREATE TABLE"))

    ctx.restic.dump(snapshot.id, path, None, on_chunk=on_chunk)
    if rest[0].startswith(b"CREATE TABLE"):
        count[0] += 1
    if not count[0]:
        raise VhError(f"the dump in snapshot {snapshot.short_id} holds no CREATE TABLE statement")
    return count[0]


__all__ = ["backup_one", "plan_restore", "restore_all", "scratch_restore", "drop_database", "check_tools",
           "can_drill", "has_scratch_database", "dump_path", "engine"]
