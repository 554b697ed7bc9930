"""PostgreSQL: pg_dump (one database) or pg_dumpall (names: all); pg_restore or psql to load them back."""

from __future__ import annotations

import re

from vhbackup.databases.common import Command, Connection, query, sql_literal
from vhbackup.policy import Database

INSTALL_HINT = "apt install postgresql-client"

#: pg_dump's output format. Custom (-Fc) lets pg_restore replace objects (--clean) inside one
#: transaction; -Z0 leaves compression to restic, so unchanged tables give the same bytes run
#: after run and deduplicate (pg_dump's own compression would make every run's stream new).
#: To switch to plain SQL use ("-Fp",) and ".sql": the restore picks its tool from the file name.
DUMP_FORMAT_ARGS: tuple[str, ...] = ("-Fc", "-Z0")
DUMP_SUFFIX = ".dump"

FATAL = re.compile(r"(?:^|: )(?:error|fatal|ERROR|FATAL|PANIC): ")
LOCK_TIMEOUT = re.compile(r"lock timeout|could not obtain lock|statement timeout", re.IGNORECASE)

CONNECT_TIMEOUT = "30"

#: Whether the dump tool gives up waiting for a lock by itself (else vhbackup's watchdog stops it).
BOUNDS_LOCK_WAIT = True

CAN_INSPECT = True


def is_whole_server(path: str) -> bool:
    return path.endswith(".all.sql")


def stdin_filename(db: Database) -> str:
    if db.names is None:
        return f"postgresql-{db.name}.all.sql"
    return f"postgresql-{db.name}{DUMP_SUFFIX}"


def dump_tools(db: Database) -> list[tuple[str, ...]]:
    return [("pg_dumpall",)] if db.names is None else [("pg_dump",)]


def restore_tools(path: str) -> list[tuple[str, ...]]:
    return [("psql",)] if path.endswith(".sql") else [("pg_restore",), ("psql",)]


def _env(conn: Connection) -> dict[str, str]:
    return {"PGCONNECT_TIMEOUT": CONNECT_TIMEOUT, "PGAPPNAME": "vhbackup"}


def _secrets(conn: Connection) -> dict[str, str]:
    return {"PGPASSWORD": conn.password} if conn.password is not None else {}


def _command(argv: tuple[str, ...], conn: Connection) -> Command:
    return Command(argv, _env(conn), _secrets(conn))


def _server_args(conn: Connection) -> list[str]:
    args = ["-w"]
    if conn.host:
        args += ["-h", conn.host]
    if conn.port:
        args += ["-p", str(conn.port)]
    if conn.user:
        args += ["-U", conn.user]
    return args


def dump_command(db: Database, conn: Connection) -> Command:
    """pg_dump gives up on a table lock after ``lock_wait_timeout`` (it waits for ever by default)."""
    wait = f"--lock-wait-timeout={int(db.lock_wait_timeout * 1000)}"
    if db.names is None:
        return _command(("pg_dumpall", *_server_args(conn), wait, *db.options), conn)
    return _command(("pg_dump", *_server_args(conn), *DUMP_FORMAT_ARGS, wait, *db.options, db.names[0]), conn)


def incomplete(path: str, head: bytes, tail: bytes) -> str | None:
    """Why the dump at ``path`` does not look whole: custom archives start with PGDMP, SQL dumps end with a marker."""
    if path.endswith(".dump"):
        return None if head.startswith(b"PGDMP") else "its output is not a pg_dump archive"
    marker = b"PostgreSQL database cluster dump complete" if is_whole_server(path) else \
        b"PostgreSQL database dump complete"
    return None if marker in tail else "its output lacks the end-of-dump marker"


def restore_command(path: str, conn: Connection, target: str | None, source: str | None = None) -> Command:
    """The tool that loads the dump at ``path`` (a snapshot file name) into ``target``."""
    if is_whole_server(path):
        return _command(("psql", "-X", "-q", *_server_args(conn), "-d", "postgres"), conn)
    if path.endswith(".sql"):
        return _command(("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", *_server_args(conn),
                         "-d", target), conn)
    return _command(("pg_restore", *_server_args(conn), "--clean", "--if-exists", "--single-transaction",
                     "--exit-on-error", "-d", target), conn)


def _psql(conn: Connection, sql: str, what: str, database: str = "postgres") -> str:
    argv = ("psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", *_server_args(conn), "-d", database, "-c", sql)
    return query(_command(argv, conn), what, conn, FATAL)


def exists(conn: Connection, name: str) -> bool:
    return _psql(conn, f"SELECT count(*) FROM pg_database WHERE datname = {sql_literal(name)}",
                 f"look for database {name}") != "0"


def table_count(conn: Connection, name: str) -> int:
    return int(_psql(conn, "SELECT count(*) FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
                           "AND table_schema NOT IN ('pg_catalog', 'information_schema')",
                     f"count the tables of {name}", database=name))


def is_empty(conn: Connection, name: str) -> bool:
    """No tables, views, sequences or functions outside the system schemas."""
    sql = ("SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
           "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
           "AND c.relkind IN ('r', 'v', 'm', 'S', 'p', 'f')) + (SELECT count(*) FROM pg_proc p "
           "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))")
    return _psql(conn, sql, f"inspect database {name}", database=name) == "0"


def create(conn: Connection, name: str) -> None:
    _psql(conn, f'CREATE DATABASE "{name}" TEMPLATE template0', f"create database {name}")


def drop(conn: Connection, name: str) -> None:
    _psql(conn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f"drop database {name}")
