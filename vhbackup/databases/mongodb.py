"""MongoDB: mongodump --archive out, mongorestore --archive back in.

MongoDB's tools are not in Debian; they come from MongoDB's own repository
(package mongodb-database-tools). vhbackup has no MongoDB shell, so it cannot
look inside a server: restores always need --yes, and the restore drill does
not cover MongoDB. Tested only with stand-in executables, not a real server.
"""

from __future__ import annotations

import json
import re

from vhbackup.databases.common import Command, Connection
from vhbackup.errors import VhError
from vhbackup.policy import Database

INSTALL_HINT = ("install mongodb-database-tools from MongoDB's own apt repository "
                "(https://www.mongodb.com/docs/database-tools/installation/); it is not in Debian")

FATAL = re.compile(r"\bFailed: |^error\b|\berror (?:connecting|parsing|reading|writing)")
LOCK_TIMEOUT = re.compile(r"$^")
#: The first four bytes of every mongodump --archive (0x8199e26d, little-endian).
ARCHIVE_MAGIC = b"\x6d\xe2\x99\x81"

#: vhbackup cannot inspect a MongoDB server (no shell), so it never assumes a database is empty.
#: Whether the dump tool gives up waiting for a lock by itself (else vhbackup's watchdog stops it).
BOUNDS_LOCK_WAIT = False

CAN_INSPECT = False


def is_whole_server(path: str) -> bool:
    return path.endswith(".all.archive")


def stdin_filename(db: Database) -> str:
    if db.names is None:
        return f"mongodb-{db.name}.all.archive"
    return f"mongodb-{db.name}.archive"


def dump_tools(db: Database) -> list[tuple[str, ...]]:
    return [("mongodump",)]


def restore_tools(path: str) -> list[tuple[str, ...]]:
    return [("mongorestore",)]


def _client_args(conn: Connection) -> list[str]:
    """The password goes in a 0600 --config file (YAML), never on the command line."""
    args = []
    if conn.password is not None and conn.runner.in_container:
        raise VhError("a MongoDB database in a container cannot take a password_file (its tools read it only "
                      "from a file); connect from the host to the container's published port instead")
    if conn.password is not None:
        args.append("--config=" + conn.secret_file("mongo.yaml", f"password: {json.dumps(conn.password)}\n"))
    if conn.host:
        args.append(f"--host={conn.host}")
    if conn.port:
        args.append(f"--port={conn.port}")
    if conn.user:
        args.append(f"--username={conn.user}")
    return args


def dump_command(db: Database, conn: Connection) -> Command:
    which = [] if db.names is None else [f"--db={db.names[0]}"]
    return Command(("mongodump", "--archive", *_client_args(conn), *db.options, *which))


def incomplete(path: str, head: bytes, tail: bytes) -> str | None:
    return None if head.startswith(ARCHIVE_MAGIC) else "its output is not a mongodump archive"


def restore_command(path: str, conn: Connection, target: str | None, source: str | None = None) -> Command:
    argv = ["mongorestore", "--archive", "--drop", *_client_args(conn)]
    if not is_whole_server(path) and source and target and source != target:
        argv += [f"--nsFrom={source}.*", f"--nsTo={target}.*"]
    return Command(tuple(argv))


def _cannot(what: str) -> VhError:
    return VhError(f"vhbackup cannot {what} on a MongoDB server (it has no MongoDB shell); "
                   f"use mongosh for that")


def exists(conn: Connection, name: str) -> bool:
    raise _cannot(f"check whether database {name} exists")


def table_count(conn: Connection, name: str) -> int:
    raise _cannot(f"count the collections of {name}")


def is_empty(conn: Connection, name: str) -> bool:
    raise _cannot(f"inspect database {name}")


def create(conn: Connection, name: str) -> None:
    """MongoDB creates a database when the first collection is written: nothing to do."""


def drop(conn: Connection, name: str) -> None:
    raise _cannot(f"drop database {name}")
