"""What the database engines share: where to connect, secret files, and reading tool errors."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

from vhbackup import credentials, proc
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

    @property
    def where(self) -> str:
        host = self.host or "the local socket"
        return f"{host}:{self.port}" if self.port else host

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


@dataclass(frozen=True)
class Command:
    """A child process to start: argv (never a secret in it) and extra environment."""

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def tool(self) -> str:
        return os.path.basename(self.argv[0])


@contextmanager
def connect(db: Database, host: str | None = None, port: int | None = None) -> Iterator[Connection]:
    """A Connection for ``db`` (optionally to another server), removing its option files afterwards."""
    password = credentials.read_secret(db.password_file) if db.password_file else None
    if password is not None and "\n" in password:
        raise VhError(f"the password in {db.password_file} spans several lines; put it on one line")
    private_dir = tempfile.mkdtemp(prefix="vhbackup-db-")
    try:
        yield Connection(host=host or db.host, port=port or db.port, user=db.user, password=password,
                         private_dir=private_dir)
    finally:
        shutil.rmtree(private_dir, ignore_errors=True)


def first_available(names: Sequence[str]) -> str:
    """The first of ``names`` on PATH, or the first name (so the error names the usual tool)."""
    return next((n for n in names if shutil.which(n)), names[0])


def missing_tools(names: Iterable[Sequence[str]]) -> list[str]:
    """Of each group of alternatives (e.g. mariadb-dump or mysqldump), the ones with none on PATH."""
    return [group[0] for group in names if not any(shutil.which(n) for n in group)]


def error_line(lines: Sequence[str], fatal: re.Pattern) -> str | None:
    """The tool's own error: the first line matching ``fatal``, else the last line it wrote."""
    lines = [ln.strip() for ln in lines if ln.strip()]
    for line in lines:
        if fatal.search(line):
            return line
    return lines[-1] if lines else None


def has_fatal(lines: Sequence[str], fatal: re.Pattern) -> bool:
    return any(fatal.search(ln) for ln in lines)


def query(argv: Sequence[str], env: dict[str, str], what: str, conn: Connection, fatal: re.Pattern) -> str:
    """Run a client tool for a small query; its stdout, or a one-line DumpError."""
    result = proc.run(argv, env=env, timeout=120)
    if result.returncode != 0:
        line = error_line(result.stderr.splitlines(), fatal) or proc.describe_exit(result.returncode)
        raise DumpError(f"could not {what} on {conn.where}: {line}")
    return result.stdout.strip()


def sql_literal(value: str) -> str:
    """A quoted SQL string; database names are already restricted to [A-Za-z0-9_$-] by the policy."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
