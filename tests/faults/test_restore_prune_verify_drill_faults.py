"""Faults during restore, prune, verify and drill; see conftest.py and harness.py for the world and the invariants."""

from __future__ import annotations

import json
import signal

import pytest

from tests.faults.harness import ONE_RESTIC, check_invariants, kill_when
from tests.integration.databases.dbhelpers import pg_exists, psql


def _files_only_run(world) -> None:
    """A second run, so that retention (last: 1) has something to forget."""
    assert world.vh("backup", "--files-only").returncode == 0
    world.write_policy(retention={"last": 1})


# --- restore -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["restic-dump", "pg_restore"])
def test_restore_into_a_new_database_killed_mid_load(world, fault):
    if fault == "restic-dump":
        world.restic_fault(("dump",), "lock:0.1")
        says = "restic dump was killed by SIGKILL"
    else:
        world.killed_tool("pg_restore", nbytes=5000)
        says = "pg_restore"
    fresh = world.dbs.pg_name("restored")
    result = world.vh("restore", "--latest", "--database", world.pg_key, "--into-database", fresh, "--yes")
    assert result.returncode == 1, result.stderr
    assert not pg_exists(fresh), "a half-restored new database must not stay"
    check_invariants(world, failed=None, result=result, action="restore", says=says)


def test_restore_into_a_new_database_with_vhbackup_sigkilled_mid_load_is_dropped_by_recover(world):
    """Nothing survives SIGKILL to drop the half-loaded database: the restore notes it in scratch.json before
    creating it, and `vhbackup recover` (or the next drill) drops it."""
    flag = world.stalled_tool("pg_restore", "start")
    fresh = world.dbs.pg_name("restored")
    proc = world.popen("restore", "--latest", "--database", world.pg_key, "--into-database", fresh, "--yes")
    kill_when(world, proc, flag.exists, "the restore to load its new database", signal.SIGKILL)
    world.clear_tools()
    assert pg_exists(fresh), "the test must kill the restore while its new database exists"
    recovered = world.vh("recover")
    assert recovered.returncode == 0, recovered.stderr
    assert not pg_exists(fresh), "recover must drop the database the killed restore created"
    assert "scratch" not in json.dumps(json.loads((world.env.state_dir / "scratch.json").read_text())
                                       .get("databases"))


def test_restore_of_files_with_restic_killed(world):
    flag = world.restic_fault(("restore",), "lock:0")
    result = world.vh("restore", "--latest", "--service", "hub", "--files-only", "--target",
                      str(world.env.dir / "target"))
    assert flag.read_text() == "fired"
    check_invariants(world, failed=None, result=result, action="restore", exit_code=1,
                     says="restic restore was killed by SIGKILL")


# --- prune ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("trigger", ["lock:0", "gone:snapshots"])  # before it forgot anything; before it pruned
def test_restic_killed_mid_prune(world, trigger):
    _files_only_run(world)
    flag = world.restic_fault(("forget",), trigger)
    result = world.vh("prune")
    assert result.returncode == 1, result.stderr
    assert flag.read_text() == "fired"
    check_invariants(world, failed=None, result=result, action="prune", says="was killed by SIGKILL")
    world.clear_tools()
    again = world.vh("prune")
    assert again.returncode == 0, again.stderr
    verified = world.vh("verify", "--full")
    assert verified.returncode == 0, verified.stderr
    check_invariants(world, failed=False)


# --- verify --------------------------------------------------------------------------------------

def test_restic_check_killed_is_not_damage(world):
    world.restic_fault(("check",), "lock:0")
    result = world.vh("verify")
    assert result.returncode == 1
    assert "damage" not in result.stderr.lower()
    check_invariants(world, failed=True, result=result, action="verify", says="restic check was killed by SIGKILL")
    world.clear_tools()
    assert world.vh("verify").returncode == 0
    check_invariants(world, failed=False)


# --- drill ---------------------------------------------------------------------------------------

@ONE_RESTIC  # pg_restore's failure: no restic in it
def test_drill_with_the_load_tool_killed(world):
    world.killed_tool("pg_restore", nbytes=5000)
    result = world.vh("drill")
    check_invariants(world, failed=True, result=result, action="drill", exit_code=1, says="pg_restore")
    world.clear_tools()
    assert world.vh("drill").returncode == 0
    check_invariants(world, failed=False)


@ONE_RESTIC  # vhbackup and the database tools only
@pytest.mark.parametrize("signame", ["SIGKILL", "SIGTERM"])
def test_vhbackup_killed_mid_drill(world, signame):
    flag = world.stalled_tool("pg_restore", "start")
    proc = world.popen("drill")
    result = kill_when(world, proc, flag.exists, "the drill to load its scratch database", getattr(signal, signame))
    world.clear_tools()
    if signame == "SIGKILL":
        recovered = world.vh("recover")
        assert recovered.returncode == 0, recovered.stderr
        check_invariants(world, failed=True, action="drill", kind="Interrupted")
    else:
        check_invariants(world, failed=True, result=result, action="drill", says="stopped by SIGTERM")
    assert world.vh("drill").returncode == 0
    check_invariants(world, failed=False)


# --- a damaged repository ------------------------------------------------------------------------

def _damage(world, what: str) -> None:
    repo = world.repo
    if what == "pack":  # the biggest pack: the PostgreSQL dump's data
        pack = max((p for p in (repo / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
        pack.unlink()
    elif what == "index":
        for index in (repo / "index").iterdir():
            index.unlink()
    else:  # the PostgreSQL dump's snapshot file, truncated
        [snap] = [s for s in world.db_snapshots() if f"db:{world.pg_key}" in s["tags"]]
        path = repo / "snapshots" / snap["id"]
        path.write_bytes(path.read_bytes()[:40])


@pytest.mark.parametrize("what", ["pack", "index", "snapshot"])
@pytest.mark.parametrize("command", ["verify", "drill"])
def test_damaged_repository(world, what, command, request):
    _damaged_repository(world, what, command, request)


@ONE_RESTIC  # what restic dump streams is checked by the load tool, the same way for both versions
@pytest.mark.parametrize("what", ["pack", "index", "snapshot"])
def test_restore_from_a_damaged_repository(world, what, request):
    _damaged_repository(world, what, "restore", request)


def _damaged_repository(world, what, command, request):
    """verify --full and drill must fail; a restore either fails (and drops the database it created) or is whole.

    A truncated snapshot file is one restic leaves out of its list (exit 0): the drill passed on the rest of
    the run until vhbackup treated a snapshot restic cannot load as damage."""
    _damage(world, what)
    if command == "restore":
        fresh = world.dbs.pg_name("restored")
        result = world.vh("restore", "--latest", "--database", world.pg_key, "--into-database", fresh, "--yes")
        if result.returncode == 0:
            assert psql("SELECT count(*) FROM pgbench_accounts", fresh) == "100000"
        else:
            assert not pg_exists(fresh), "a half-restored new database must not stay"
    else:
        result = world.vh(command, *(["--full"] if command == "verify" else []))
        assert result.returncode != 0, (what, command, result.stderr)
        record = world.env.state_dir / f"last-{command}.json"
        assert json.loads(record.read_text())["status"] == "failure"
    check_invariants(world, failed=None if command == "restore" else True, result=result, action=command,
                     repository_readable=False)
