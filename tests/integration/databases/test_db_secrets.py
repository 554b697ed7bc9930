"""Database passwords never appear on a command line while dumps run (restic 0.14 and 0.18)."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import time
from pathlib import Path

from dbhelpers import psql
from tests.conftest import write_secret

ROOT = Path(__file__).resolve().parents[3]

SLOW = """#!/bin/sh
# Stand-in: the real tool, kept alive a little longer so the test can look at every command line.
/usr/bin/{tool} "$@"
rc=$?
sleep 1.5
exit $rc
"""


def _cmdlines() -> dict[int, bytes]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    out[int(entry)] = fh.read()
            except OSError:
                continue
    return out


def test_no_command_line_holds_a_database_password(env, tmp_path, dbs, maria_user):
    pg_name, maria_name = dbs.pgbench("pg"), dbs.mariadb("shop")
    role, pg_password = f"vhbt_{secrets.token_hex(3)}", f"pg-{secrets.token_hex(12)}"
    psql(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{pg_password}'")
    try:
        user, maria_password = maria_user
        bindir = tmp_path / "bin"
        bindir.mkdir()
        for tool in ("pg_dump", "mariadb-dump"):
            (bindir / tool).write_text(SLOW.replace("{tool}", tool))
            (bindir / tool).chmod(0o755)
        env.write_policy(databases={
            "pg": {"type": "postgresql", "host": "127.0.0.1", "port": 5432, "user": role,
                   "password_file": write_secret(tmp_path / "pg-password", pg_password), "names": [pg_name]},
            "shop": {"type": "mariadb", "host": "127.0.0.1", "port": 3306, "user": user,
                     "password_file": write_secret(tmp_path / "maria-password", maria_password),
                     "names": [maria_name]},
        })
        assert env.vh("init").returncode == 0
        argv = ["/usr/bin/python3", "-m", "vhbackup", "-c", str(env.policy_file), "backup"]
        child_env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
        run = subprocess.Popen(argv, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL)
        seen_tools, option_files = set(), set()
        while run.poll() is None:
            for pid, cmdline in _cmdlines().items():
                assert pg_password.encode() not in cmdline, f"pid {pid}: {cmdline!r}"
                assert maria_password.encode() not in cmdline, f"pid {pid}: {cmdline!r}"
                args = cmdline.split(b"\0")
                for tool in (b"pg_dump", b"mariadb-dump"):
                    ours = pg_name.encode() in args or maria_name.encode() in args
                    if ours and any(a.endswith(tool) for a in args):
                        seen_tools.add(tool)
                for arg in args:
                    if arg.startswith(b"--defaults-extra-file=") and maria_name.encode() in args:
                        path = arg.split(b"=", 1)[1].decode()
                        option_files.add(path)
                        try:
                            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
                            assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
                        except FileNotFoundError:
                            pass
            time.sleep(0.02)
        out, err = run.communicate()
        assert run.returncode == 0, err
        assert seen_tools == {b"pg_dump", b"mariadb-dump"}
        assert option_files, "mariadb-dump got its password some other way than a defaults file"
        for path in option_files:
            assert not os.path.exists(os.path.dirname(path)), f"{path} was left behind"
        assert pg_password not in err.decode() and maria_password not in err.decode()
    finally:
        psql(f"DROP ROLE IF EXISTS {role}")
