"""MariaDB and MySQL: mariadb-dump (or mysqldump) out, the mariadb (or mysql) client back in."""

from __future__ import annotations

import re

from vhbackup.databases.common import Command, Connection, query, sql_literal
from vhbackup.policy import Database

INSTALL_HINT = "apt install mariadb-client"

DUMP_TOOLS = ("mariadb-dump", "mysqldump")
CLIENT_TOOLS = ("mariadb", "mysql")

#: A consistent snapshot of InnoDB tables without locking them, with everything that is not a table.
DUMP_ARGS = ("--single-transaction", "--routines", "--events", "--triggers", "--hex-blob", "--skip-dump-date")
CHARSET = "--default-character-set=utf8mb4"

FATAL = re.compile(r"^(?:mariadb-dump|mysqldump|mariadb|mysql): (?:Got error|Couldn't|Error|error)|^ERROR \d+")
LOCK_TIMEOUT = re.compile(r"Lock wait timeout exceeded", re.IGNORECASE)

#: Whether the dump tool gives up waiting for a lock by itself (else vhbackup's watchdog stops it).
BOUNDS_LOCK_WAIT = False

CAN_INSPECT = True


def is_whole_server(path: str) -> bool:
    return path.endswith(".all.sql")


def stdin_filename(db: Database) -> str:
    """One database dumps without CREATE DATABASE/USE (so it can load under another name); several with them."""
    if db.names is None or len(db.names) > 1:
        return f"mariadb-{db.name}.all.sql"
    return f"mariadb-{db.name}.sql"


def dump_tools(db: Database) -> list[tuple[str, ...]]:
    return [DUMP_TOOLS]


def restore_tools(path: str) -> list[tuple[str, ...]]:
    return [CLIENT_TOOLS]


def _client_args(conn: Connection) -> list[str]:
    """--defaults-extra-file must come first; the password lives only in that 0600 file.

    Inside a container no host file can be read: the password goes as MYSQL_PWD instead (``_secrets``),
    which the engine copies into the tool's environment from the exec client's.
    """
    args = []
    if conn.password is not None and not conn.runner.in_container:
        escaped = conn.password.replace("\\", "\\\\").replace('"', '\\"')
        args.append("--defaults-extra-file=" + conn.secret_file("client.cnf", f'[client]\npassword="{escaped}"\n'))
    args.append(CHARSET)
    if conn.host and conn.host.startswith("/"):
        args.append(f"--socket={conn.host}")
    elif conn.host:
        args += ["-h", conn.host]
    if conn.port:
        args += ["-P", str(conn.port)]
    if conn.user:
        args += ["-u", conn.user]
    return args


def _secrets(conn: Connection) -> dict[str, str]:
    return {"MYSQL_PWD": conn.password} if conn.password is not None and conn.runner.in_container else {}


def dump_command(db: Database, conn: Connection) -> Command:
    if db.names is None:
        which = ["--all-databases"]
    elif len(db.names) > 1:
        which = ["--databases", *db.names]
    else:
        which = [db.names[0]]
    return Command((conn.runner.first_available(DUMP_TOOLS), *_client_args(conn), *DUMP_ARGS, *db.options, *which),
                   secrets=_secrets(conn))


def incomplete(path: str, head: bytes, tail: bytes) -> str | None:
    """mariadb-dump and mysqldump end every complete dump with "-- Dump completed" (comments are never off)."""
    return None if b"-- Dump completed" in tail else "its output lacks the '-- Dump completed' line"


def restore_command(path: str, conn: Connection, target: str | None, source: str | None = None) -> Command:
    argv = [conn.runner.first_available(CLIENT_TOOLS), *_client_args(conn)]
    if not is_whole_server(path):
        argv.append(target)
    return Command(tuple(argv), secrets=_secrets(conn))


def _sql(conn: Connection, sql: str, what: str) -> str:
    argv = (conn.runner.first_available(CLIENT_TOOLS), *_client_args(conn), "-N", "-B", "-e", sql)
    return query(Command(argv, secrets=_secrets(conn)), what, conn, FATAL)


def exists(conn: Connection, name: str) -> bool:
    return _sql(conn, f"SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {sql_literal(name)}",
                f"look for database {name}") != "0"


def table_count(conn: Connection, name: str) -> int:
    return int(_sql(conn, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' "
                          f"AND TABLE_SCHEMA = {sql_literal(name)}", f"count the tables of {name}"))


def is_empty(conn: Connection, name: str) -> bool:
    """No tables, views or routines."""
    sql = (f"SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {sql_literal(name)}) + "
           f"(SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {sql_literal(name)})")
    return _sql(conn, sql, f"inspect database {name}") == "0"


def create(conn: Connection, name: str) -> None:
    _sql(conn, f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4", f"create database {name}")


def drop(conn: Connection, name: str) -> None:
    _sql(conn, f"DROP DATABASE IF EXISTS `{name}`", f"drop database {name}")
