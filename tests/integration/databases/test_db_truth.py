"""Issue 9, databases: a dump that failed, came out empty or truncated is never a snapshot; waits are bounded.

Real PostgreSQL and MariaDB, real restic 0.14 and 0.18. What vhbackup 0.1.0 did instead:
- 9.1: on restic 0.14 it saved whatever a failed dump had written and then tried to ``restic forget`` it;
  while another restic held the repository (a backup from another host) the forget failed, the truncated
  snapshot stayed and ``restore --latest`` chose it;
- 9.4: an empty dump was a success on restic 0.18;
- 9.11: a table lock held by another session made the dump wait for ever;
- 9.12: Ctrl-C during a drill left its scratch database (and the next drill failed "already exists");
- 9.13: a restic failure while piping a dump was reported as the dump tool's;
- 9.14: on restic 0.18 the dump tools inherited restic's RESTIC_* variables.
Plus issue 14's overlap: the files backup and a dump run at once, and one failing never spoils the other.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time

import pytest
from dbhelpers import PG, maria, maria_exists, maria_fingerprint, pg_exists, pg_fingerprint, psql, runs_json, snapshots

from tests.conftest import PYTHON, ROOT, make_env, write_secret
from tests.servers import RestServer


def _script(tmp_path, name: str, body: str) -> str:
    """An executable stand-in in tmp_path/bin; returns a PATH with that directory first."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    path = bindir / name
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return f"{bindir}:{os.environ['PATH']}"


def _pg(name: str) -> dict:
    return {"type": "postgresql", "host": "127.0.0.1", "user": "postgres", "names": [name]}


def _maria(name: str) -> dict:
    return {"type": "mariadb", "host": "127.0.0.1", "port": 3306, "user": "root", "names": [name]}


def _status(env) -> tuple[int, str]:
    result = env.vh("status")
    return result.returncode, result.stdout.strip()


# --- 9.1 --------------------------------------------------------------------------------------

def test_a_dump_killed_mid_stream_is_never_a_snapshot_even_while_another_restic_holds_the_repository(
        env, tmp_path, dbs):
    victim = dbs.pgbench("victim", scale=2)
    env.write_policy(host="web01", databases={"shop": _pg(victim)})
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    good = pg_fingerprint(victim)
    psql("DELETE FROM pgbench_accounts WHERE aid > 1000", victim)  # what the killed dump would have held
    # another host's backup holds a (shared) lock on the repository for the whole run: 0.1.0's forget failed
    other = subprocess.Popen([env.restic, "backup", "--stdin", "--stdin-filename", "other", "--host", "other"],
                             stdin=subprocess.PIPE, env=env.restic_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        time.sleep(2)
        path = _script(tmp_path, "pg_dump", "#!/bin/sh\n/usr/bin/pg_dump \"$@\" | head -c 300000\nkill -9 $$\n")
        result = env.vh("backup", env={"PATH": path})
        assert result.returncode == 1
        assert "database shop: pg_dump failed (killed by SIGKILL)" in result.stderr.splitlines()[-1]
    finally:
        other.stdin.close()
        other.wait(timeout=60)
    assert len(snapshots(env, "db:shop")) == 1  # only the good one
    assert [r["databases"] for r in runs_json(env)] == [["shop"]]
    restored = dbs.pg_name("restored")
    result = env.vh("restore", "--latest", "--database", "shop", "--into-database", restored, "--yes")
    assert result.returncode == 0, result.stderr
    assert pg_fingerprint(restored) == good
    code, line = _status(env)
    assert code == 2 and "db:shop" in line


# --- 9.4 --------------------------------------------------------------------------------------

@pytest.mark.parametrize("body,why", [
    ("#!/bin/sh\nexit 0\n", "pg_dump wrote nothing (an empty dump is not a backup)"),
    ("#!/bin/sh\necho 'pg_dump (PostgreSQL) 15'\n", "its output is not a pg_dump archive"),
    ("#!/bin/sh\n/usr/bin/pg_dump \"$@\" | tail -c 5000\n", "its output is not a pg_dump archive"),
])
def test_an_empty_or_foreign_dump_that_exits_0_is_a_failure(env, tmp_path, dbs, body, why):
    name = dbs.pgbench("shop")
    env.write_policy(databases={"shop": _pg(name)})
    assert env.vh("init").returncode == 0
    path = _script(tmp_path, "pg_dump", body)
    result = env.vh("backup", env={"PATH": path})
    assert result.returncode == 1
    assert why in result.stderr and "nothing was saved" in result.stderr
    assert snapshots(env, "db:shop") == []
    assert _status(env)[0] == 2


def test_a_truncated_mariadb_dump_that_exits_0_is_a_failure(env, tmp_path, dbs):
    name = dbs.mariadb("shop")
    env.write_policy(databases={"shop": _maria(name)})
    assert env.vh("init").returncode == 0
    path = _script(tmp_path, "mariadb-dump", "#!/bin/sh\n/usr/bin/mariadb-dump \"$@\" | head -c 20000\nexit 0\n")
    result = env.vh("backup", env={"PATH": path})
    assert result.returncode == 1 and "lacks the '-- Dump completed' line" in result.stderr
    assert snapshots(env, "db:shop") == []


@pytest.mark.parametrize("engine,option", [("postgresql", "-f/tmp/x.dump"), ("postgresql", "--file=/tmp/x"),
                                           ("mariadb", "--result-file=/tmp/x.sql"), ("mariadb", "-r"),
                                           ("postgresql", "--version"), ("mariadb", "--tab=/tmp")])
def test_options_that_send_the_dump_elsewhere_are_refused(env, engine, option):
    db = {"type": engine, "names": ["x"], "options": ["--no-owner" if engine == "postgresql" else "--quick", option]}
    env.write_policy(databases={"d": db})
    result = env.vh("config", "check")
    assert result.returncode == 78
    assert f"databases.d.options[1]: option {option!r} is not allowed" in result.stderr


# --- 9.11 -------------------------------------------------------------------------------------

def test_a_postgresql_table_lock_ends_the_dump_after_lock_wait_timeout(env, dbs):
    name = dbs.pgbench("locked")
    env.write_policy(databases={"shop": {**_pg(name), "lock_wait_timeout": "3s"}})
    assert env.vh("init").returncode == 0
    holder = subprocess.Popen(["psql", "-X", *PG, "-d", name, "-c",
                               "BEGIN; LOCK TABLE pgbench_accounts IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        started = time.monotonic()
        result = env.vh("backup", timeout=120)
        took = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    assert "another session held a lock longer than databases.shop.lock_wait_timeout 3 s" in result.stderr
    assert took < 40
    assert snapshots(env, "db:shop") == []


def test_a_mariadb_table_lock_stalls_the_dump_which_is_stopped_after_lock_wait_timeout(env, dbs):
    name = dbs.mariadb("locked")
    env.write_policy(databases={"shop": {**_maria(name), "lock_wait_timeout": "3s"}})
    assert env.vh("init").returncode == 0
    holder = subprocess.Popen(["mariadb", "-h", "127.0.0.1", "-u", "root", name, "-e",
                               "LOCK TABLES items WRITE; SELECT SLEEP(60);"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        started = time.monotonic()
        result = env.vh("backup", timeout=120)
        took = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    assert "mariadb-dump produced nothing for 3 s and was stopped" in result.stderr
    assert "lock_wait_timeout" in result.stderr
    assert took < 40
    assert snapshots(env, "db:shop") == []


# --- 9.12 -------------------------------------------------------------------------------------

SLOW_PG_RESTORE = """#!/bin/sh
# Stand-in pg_restore: the real one, slowed down so that a signal lands while it loads.
sleep 3
exec /usr/bin/pg_restore "$@"
"""


def _interrupt(env, args, delay: float, extra_env: dict, signum=signal.SIGINT) -> subprocess.CompletedProcess:
    proc = subprocess.Popen([PYTHON, "-m", "vhbackup", "-c", str(env.policy_file), *args],
                            env={**os.environ, **extra_env, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_ctrl_c_during_a_drill_leaves_no_scratch_database_and_the_next_drill_passes(env, tmp_path, dbs):
    name = dbs.pgbench("drilled")
    env.write_policy(databases={"shop": _pg(name)})
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    path = _script(tmp_path, "pg_restore", SLOW_PG_RESTORE)
    interrupted = _interrupt(env, ["drill"], 2.0, {"PATH": path})
    assert interrupted.returncode != 0
    record = json.loads((env.state_dir / "last-drill.json").read_text())
    scratch = record["details"]["databases"]["shop"]["scratch"]
    assert not pg_exists(scratch), f"the interrupted drill left {scratch}"
    assert json.loads((env.state_dir / "scratch.json").read_text())["databases"] == []
    again = env.vh("drill")
    assert again.returncode == 0, again.stderr


def test_ctrl_c_during_restore_into_a_new_database_drops_it(env, tmp_path, dbs):
    name = dbs.pgbench("source")
    env.write_policy(databases={"shop": _pg(name)})
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    fresh = dbs.pg_name("fresh")
    path = _script(tmp_path, "pg_restore", SLOW_PG_RESTORE)
    interrupted = _interrupt(env, ["restore", "--latest", "--database", "shop", "--into-database", fresh, "--yes"],
                             2.0, {"PATH": path}, signal.SIGTERM)
    assert interrupted.returncode != 0
    assert not pg_exists(fresh), ("a half-restored new database must not stay", interrupted.stderr)
    assert pg_exists(name)


# --- 9.13 -------------------------------------------------------------------------------------

KILLED_RESTIC = """#!/usr/bin/python3
# Stand-in restic: the real one, except that a backup reading stdin is killed after a second.
import os, subprocess, sys, time
real = {real!r}
if "--stdin" in sys.argv:
    child = subprocess.Popen([real, *sys.argv[1:]])
    time.sleep(1.0)
    child.kill()
    child.wait()
    print("restic stand-in: killed restic", file=sys.stderr)
    sys.exit(137)
os.execv(real, [real, *sys.argv[1:]])
"""


def test_restic_failing_while_it_reads_a_dump_is_reported_as_restic_not_as_the_dump_tool(env, tmp_path, dbs):
    name = dbs.pgbench("slow")
    fake = tmp_path / "restic-wrapper"
    fake.write_text(KILLED_RESTIC.format(real=env.restic))
    fake.chmod(0o755)
    env.write_policy(databases={"shop": _pg(name)}, restic_binary=str(fake))
    assert env.vh("init").returncode == 0
    path = _script(tmp_path, "pg_dump", "#!/bin/sh\n/usr/bin/pg_dump \"$@\" | (sleep 3; cat)\n")
    result = env.vh("backup", env={"PATH": path})
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert "restic backup failed (exit 137)" in last, last
    assert "pg_dump failed" not in last and "SIGPIPE" not in last
    assert snapshots(env, "db:shop") == []


def test_files_and_a_database_both_failing_are_both_in_the_record(env, tmp_path, dbs):
    env.write_policy(services={"hub": {"paths": [str(tmp_path / "nowhere")], "databases": ["shop"]}},
                     databases={"shop": _pg(dbs.name("never-created"))})
    assert env.vh("init").returncode == 0
    result = env.vh("backup")
    assert result.returncode == 1
    record = json.loads((env.state_dir / "last-backup.json").read_text())
    assert "files:hub: nothing saved" in record["error"] and "database shop: pg_dump failed" in record["error"]
    assert record["items"]["files:hub"]["status"] == "failure"
    assert record["items"]["db:shop"]["status"] == "failure"


# --- 9.14 -------------------------------------------------------------------------------------

def test_dump_tools_see_neither_restics_nor_the_repositorys_secrets(env, tmp_path, dbs):
    name = dbs.pgbench("env")
    seen = tmp_path / "seen-env"
    envfile = write_secret(tmp_path / "repo.env", "AWS_SECRET_ACCESS_KEY=from-the-env-file-0123")
    env.write_policy(databases={"shop": _pg(name)}, repository={"env_file": envfile})
    assert env.vh("init").returncode == 0
    path = _script(tmp_path, "pg_dump", f"#!/bin/sh\nenv > {seen}\nexec /usr/bin/pg_dump \"$@\"\n")
    assert env.vh("backup", env={"PATH": path, "RESTIC_PASSWORD": "inherited-by-mistake"}).returncode == 0
    variables = seen.read_text()
    assert "RESTIC_" not in variables and "AWS_SECRET_ACCESS_KEY" not in variables
    assert "from-the-env-file-0123" not in variables


# --- issue 14: overlap --------------------------------------------------------------------------

def test_a_dump_failing_while_the_files_upload_leaves_the_files_snapshot_whole(env, tmp_path, dbs):
    data = tmp_path / "data"
    data.mkdir()
    (data / "big.bin").write_bytes(os.urandom(40 << 20))
    name = dbs.mariadb("shop")
    env.write_policy(concurrency=2, services={"hub": {"paths": [str(data)], "databases": ["shop"]}},
                     databases={"shop": _maria(name)})
    assert env.vh("init").returncode == 0
    path = _script(tmp_path, "mariadb-dump", "#!/bin/sh\n/usr/bin/mariadb-dump \"$@\" | head -c 3000\nexit 2\n")
    result = env.vh("backup", env={"PATH": path})
    assert result.returncode == 1 and "database shop: mariadb-dump failed (exit 2)" in result.stderr
    [files] = snapshots(env, "service:hub")
    assert not any(t.startswith("db:") for t in files["tags"])
    target = tmp_path / "target"
    assert env.vh("restore", "--latest", "--service", "hub", "--files-only", "--target", str(target)).returncode == 0
    assert (target / str(data).lstrip("/") / "big.bin").read_bytes() == (data / "big.bin").read_bytes()
    assert snapshots(env, "db:shop") == []
    code, line = _status(env)
    assert code == 2 and "db:shop" in line


def test_the_files_failing_while_a_dump_streams_leaves_the_dump_snapshot_whole(env, tmp_path, dbs):
    name = dbs.mariadb("shop")
    before = maria_fingerprint(name)
    env.write_policy(concurrency=2, exclude=["*"],
                     services={"hub": {"paths": [str(tmp_path / "data")], "databases": ["shop"]}},
                     databases={"shop": _maria(name)})
    (tmp_path / "data").mkdir()
    assert env.vh("init").returncode == 0
    result = env.vh("backup")
    assert result.returncode == 1 and "files:hub: nothing saved" in result.stderr
    assert len(snapshots(env, "db:shop")) == 1
    maria("DELETE FROM items", name)
    restored = env.vh("restore", "--latest", "--database", "shop", "--yes")
    assert restored.returncode == 0, restored.stderr
    assert maria_fingerprint(name) == before
    assert maria_exists(name)


# --- 9.6 ---------------------------------------------------------------------------------------

def test_a_failed_database_is_critical_after_a_later_files_only_success(env, tmp_path, dbs):
    """0.1.0 said OK: the newest run succeeded, although the database had not been backed up since it failed."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("x\n")
    name = dbs.pgbench("shop")
    env.write_policy(services={"hub": {"paths": [str(data)], "databases": ["shop"]}}, databases={"shop": _pg(name)})
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    assert _status(env)[0] == 0
    path = _script(tmp_path, "pg_dump", "#!/bin/sh\necho 'pg_dump: error: connection to server failed' >&2\nexit 1\n")
    assert env.vh("backup", env={"PATH": path}).returncode == 1
    assert env.vh("backup", "--files-only").returncode == 0
    code, line = _status(env)
    assert code == 2, line
    assert "db:shop: backup" in line and "failed" in line and "files:hub" not in line
    assert env.vh("backup", "--databases-only").returncode == 0
    assert _status(env)[0] == 0


def test_a_server_that_stops_answering_mid_dump_fails_the_run_within_the_timeout(tmp_path, restic_binary, dbs):
    """restic stops reading the dump while its upload waits for a server that does not answer (restic 0.14
    waits for ever): stopped after repository.timeout, nothing saved, CRITICAL (tests/integration/test_restic_stuck.py)."""
    root = tmp_path / "rest"
    root.mkdir()
    server = RestServer(root)
    try:
        (tmp_path / "w").mkdir()
        env = make_env(tmp_path / "w", restic_binary, server.url + "repo/")
        name = dbs.pgbench("shop")
        env.write_policy(databases={"shop": _pg(name)}, repository={"timeout": "5s"})
        assert env.vh("init").returncode == 0
        # A stand-in pg_dump: 1 MB, then (restic holding its lock, reading) the server stops answering, and
        # more than restic can take in without uploading a pack.
        path = _script(tmp_path, "pg_dump", f"""#!/bin/sh
head -c 1000000 /dev/urandom
while [ -z "$(ls {root}/repo/locks)" ]; do sleep 0.01; done
kill -STOP {server.proc.pid}
exec head -c 80000000 /dev/urandom
""")
        started = time.monotonic()
        try:
            result = env.vh("backup", env={"PATH": path}, timeout=180)
        finally:
            server.resume()
        assert result.returncode == 1, result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert "stopped making progress" in last or "did not answer for 5 s" in last, result.stderr
        assert time.monotonic() - started < 5 + 15 + 40
        assert snapshots(env, "db:shop") == []
        assert _status(env)[0] == 2
    finally:
        server.kill()
