"""What the database engines share: where to connect, secret files, and reading tool errors."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from vhbackup import containers, credentials, proc
from vhbackup.databases.runner import HOST, Command, Runner
from vhbackup.errors import DumpError, VhError
from vhbackup.policy import Database


@dataclass(frozen=True)
class Connection:
    """One server to talk to, with the password and a private (0700) directory for option files."""

    host: str | None
    port: int | None
    user: str | None
    password: str | None = field(default=None, repr=False)
    private_dir: str | None = None
    #: Where the tools run: the host, or the database's container.
    runner: Runner = HOST

    @property
    def where(self) -> str:
        host = self.host or "the local socket"
        return (f"{host}:{self.port}" if self.port else host) + self.runner.where

    def secret_file(self, name: str, text: str) -> str:
        """Write ``text`` once to a 0600 file in the private directory, which goes when the connection ends."""
        assert self.private_dir, "secret_file needs a connection opened with connect()"
        path = os.path.join(self.private_dir, name)
        if os.path.exists(path):
            return path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path


@contextmanager
def connect(db: Database, host: str | None = None, port: int | None = None) -> Iterator[Connection]:
    """A Connection for ``db`` (optionally to another server), removing its option files afterwards."""
    password = credentials.read_secret(db.password_file) if db.password_file else None
    if password is not None and "\n" in password:
        raise VhError(f"the password in {db.password_file} spans several lines; put it on one line")
    runner = runner_for(db)
    private_dir = tempfile.mkdtemp(prefix="vhbackup-db-")
    try:
        yield Connection(host=host or db.host, port=port or db.port, user=db.user, password=password,
                         private_dir=private_dir, runner=runner)
    finally:
        shutil.rmtree(private_dir, ignore_errors=True)


def runner_for(db: Database) -> Runner:
    """The host, or the running container of ``db`` (one-line error when it is missing or stopped)."""
    ref = container_ref(db)
    if ref is None:
        return HOST
    engine = containers.detect(db.container_engine)
    return Runner(engine, containers.running_one(engine, ref).name, db.container_user)


def container_ref(db: Database) -> containers.Ref | None:
    if db.container:
        return containers.Ref(name=db.container)
    if db.compose:
        return containers.Ref(project=db.compose[0], service=db.compose[1])
    return None


def error_line(lines: Sequence[str], fatal: re.Pattern) -> str | None:
    """The tool's own error: the first line matching ``fatal``, else the last line it wrote."""
    lines = [ln.strip() for ln in lines if ln.strip()]
    for line in lines:
        if fatal.search(line):
            return line
    return lines[-1] if lines else None


def has_fatal(lines: Sequence[str], fatal: re.Pattern) -> bool:
    return any(fatal.search(ln) for ln in lines)


def query(command: Command, what: str, conn: Connection, fatal: re.Pattern) -> str:
    """Run a client tool for a small query (where the connection's tools run); its stdout, or a DumpError."""
    result = conn.runner.run(command, timeout=120)
    if result.returncode != 0:
        line = error_line(result.stderr.splitlines(), fatal) or proc.describe_exit(result.returncode)
        raise DumpError(f"could not {what} on {conn.where}: {line}")
    return result.stdout.strip()


def sql_literal(value: str) -> str:
    """A quoted SQL string; database names are already restricted to [A-Za-z0-9_$-] by the policy."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
