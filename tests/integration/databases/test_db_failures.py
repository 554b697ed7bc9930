"""Failed dumps never become backups: killed mid-stream, missing database, wrong password (restic 0.14 and 0.18)."""

from __future__ import annotations

import json
import os
import stat

import pytest
from dbhelpers import maria_fingerprint, pg_exists, pg_fingerprint, runs_json, snapshots
from tests.conftest import RESTIC, write_secret

KILLER = """#!/bin/sh
# Stand-in pg_dump: the real one, except that for one database it is killed mid-stream.
for last; do :; done
if [ "$last" = "{victim}" ]; then
    /usr/bin/pg_dump "$@" | head -c 100000
    kill -9 $$
fi
exec /usr/bin/pg_dump "$@"
"""


def _killer_path(tmp_path, victim: str) -> str:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "pg_dump"
    script.write_text(KILLER.replace("{victim}", victim))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return f"{bindir}:{os.environ['PATH']}"


def test_failed_dumps_exit_1_name_the_error_and_leave_no_snapshot(env, tmp_path, dbs, maria_user):
    good, victim = dbs.mariadb("good"), dbs.pgbench("victim")
    missing = dbs.name("missing")
    user, _password = maria_user
    wrong = write_secret(tmp_path / "wrong-password", "not-the-password")
    env.write_policy(databases={
        "good": {"type": "mariadb", "host": "127.0.0.1", "port": 3306, "user": "root", "names": [good]},
        "missing": {"type": "postgresql", "host": "127.0.0.1", "user": "postgres", "names": [missing]},
        "killed": {"type": "postgresql", "host": "127.0.0.1", "user": "postgres", "names": [victim]},
        "badpw": {"type": "mariadb", "host": "127.0.0.1", "port": 3306, "user": user, "password_file": wrong,
                  "names": [good]},
    })
    path = _killer_path(tmp_path, victim)
    victim_before, good_before = pg_fingerprint(victim), maria_fingerprint(good)
    assert env.vh("init").returncode == 0

    result = env.vh("backup", env={"PATH": path})
    assert result.returncode == 1, result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert f'database missing: pg_dump failed (exit 1): pg_dump: error: ' in last_line
    assert f'database "{missing}" does not exist' in last_line
    assert "database killed: pg_dump failed (killed by SIGKILL)" in last_line
    assert "database badpw: mariadb-dump failed (exit 2): mariadb-dump: Got error: 1045: " in last_line
    assert f"Access denied for user '{user}'@'localhost'" in last_line or \
        f"Access denied for user '{user}'@'127.0.0.1'" in last_line
    assert "database good" not in last_line
    # restic (0.14 and 0.18 alike) read what the killed pg_dump wrote before dying, but never saw the end of
    # its input: vhbackup stopped it, so no snapshot was made and nothing had to be removed afterwards
    assert "removed" not in result.stderr

    run_id = json.loads((env.state_dir / "last-backup.json").read_text())["run_id"]
    for name in ("missing", "killed", "badpw"):
        assert snapshots(env, f"db:{name}") == []
    [saved] = snapshots(env, f"run:{run_id}")
    assert "db:good" in saved["tags"]
    [run] = runs_json(env)
    assert run["id"] == run_id and run["databases"] == ["good"]

    for name in ("killed", "missing", "badpw"):
        refused = env.vh("restore", "--latest", "--database", name, "--yes")
        assert refused.returncode == 1
        assert f"no backup run holds all of: db:{name}" in refused.stderr
        refused = env.vh("restore", "--snapshot", run_id, "--database", name, "--yes")
        assert refused.returncode == 1 and f"does not hold {name}" in refused.stderr
    assert pg_fingerprint(victim) == victim_before
    assert maria_fingerprint(good) == good_before
    assert not pg_exists(missing)


@pytest.mark.parametrize("restic_binary", [RESTIC["0.14"]])
def test_missing_dump_tool_is_one_line_naming_the_package(env, tmp_path):
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    cases = [
        ({"type": "postgresql", "names": ["x"]}, "pg_dump: command not found, needed to dump database d; "
                                                  "install it: apt install postgresql-client"),
        ({"type": "postgresql", "names": "all"}, "pg_dumpall: command not found, needed to dump database d; "
                                                  "install it: apt install postgresql-client"),
        ({"type": "mariadb", "names": ["x"]}, "mariadb-dump: command not found, needed to dump database d; "
                                               "install it: apt install mariadb-client"),
        ({"type": "mongodb", "names": ["x"]}, "mongodump: command not found, needed to dump database d; "
                                               "install mongodb-database-tools from MongoDB's own apt repository"),
    ]
    env.run_restic("init")
    for database, message in cases:
        env.write_policy(databases={"d": database})
        result = env.vh("backup", env={"PATH": str(empty_bin)})
        assert result.returncode == 1
        assert message in result.stderr
        assert len([ln for ln in result.stderr.splitlines() if ln.startswith("vhbackup: error:")]) == 1
    assert snapshots(env) == []
