"""Faults during backup: the dump tool, restic and vhbackup killed, full disks, locks, an unreachable repository.

Each test starts from a world with one good backup (conftest.py), injects one fault into the next backup,
checks the invariants (harness.check_invariants), then recovers as an admin or the units would and checks
that the next backup is good again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from tests.faults.harness import ONE_RESTIC, check_invariants, held, fill, kill_when, recover_and_back_up, wait_for


def _new_db_snapshots(world, before: set[str], key: str) -> list[dict]:
    return [s for s in world.db_snapshots() if s["id"] not in before and f"db:{key}" in s["tags"]]


# --- the dump tool -------------------------------------------------------------------------------

@pytest.mark.parametrize("engine,sig", [("pg", "KILL"), ("maria", "TERM")])
def test_dump_tool_killed_mid_stream(world, engine, sig):
    tool = "pg_dump" if engine == "pg" else "mariadb-dump"
    key = world.pg_key if engine == "pg" else world.maria_key
    world.killed_tool(tool, sig=sig)
    before = {s["id"] for s in world.db_snapshots()}
    result = world.vh("backup")
    check_invariants(world, failed=True, result=result, exit_code=1, kind="DumpError",
                     says=f"database {key}: {tool} failed (killed by SIG{sig})")
    assert _new_db_snapshots(world, before, key) == [], "the killed dump became a snapshot"
    recover_and_back_up(world)


# --- restic --------------------------------------------------------------------------------------

@pytest.mark.parametrize("what,trigger", [
    ("dump", "new:data"),  # the dump's pack is written, its snapshot not yet
    ("dump", "new:snapshots"),  # the snapshot is written, restic has not told vhbackup yet
    ("files", "lock:0.2"),  # its lock is taken, nothing is saved yet
])
def test_restic_killed_mid_backup(world, what, trigger):
    match = ("backup", "--stdin") if what == "dump" else ("backup", str(world.tree))
    flag = world.restic_fault(match, trigger)
    result = world.vh("backup")
    assert flag.read_text() == "fired", flag.read_text()
    check_invariants(world, failed=True, result=result, exit_code=1, says="restic backup was killed by SIGKILL")
    recover_and_back_up(world)


# --- vhbackup itself -----------------------------------------------------------------------------

@pytest.mark.parametrize("signame", ["SIGKILL", "SIGTERM"])
@pytest.mark.parametrize("stage", ["mid-dump", "after-snapshot"])
def test_vhbackup_killed(world, stage, signame):
    _vhbackup_killed(world, stage, signame)


@ONE_RESTIC  # the units are stopped and the dump tool started, no restic runs yet
@pytest.mark.parametrize("signame", ["SIGKILL", "SIGTERM"])
def test_vhbackup_killed_before_the_dump(world, signame):
    _vhbackup_killed(world, "before-dump", signame)


def _vhbackup_killed(world, stage, signame):
    signum = getattr(signal, signame)
    if stage == "after-snapshot":
        flag = world.restic_fault(("backup", "--stdin"), "", action="stall")
        ready = lambda: flag.exists() and flag.read_text() == "stalled"  # noqa: E731
    else:
        flag = world.stalled_tool("pg_dump", "start" if stage == "before-dump" else "mid")
        ready = flag.exists
    proc = world.popen("backup")
    result = kill_when(world, proc, ready, f"the backup to reach {stage}", signum)
    if signum == signal.SIGKILL:
        # nothing can run in a SIGKILLed process: the marker says so, the unit stays down until recover
        assert world.vh("status").returncode == 2
        assert not world.unit_running()
        assert world.unit in (world.env.state_dir / "stopped-units.json").read_text()
        world.clear_tools()
        recovered = world.vh("recover")
        assert recovered.returncode == 0, recovered.stderr
        check_invariants(world, failed=True, kind="Interrupted", says="ended without recording")
    else:
        assert result.returncode != 0
        check_invariants(world, failed=True, result=result, says="stopped by SIGTERM")
    recover_and_back_up(world)


# --- full disks ----------------------------------------------------------------------------------

def test_repository_disk_full(world, small_fs):
    """restic may hang after ENOSPC: repository.timeout bounds it."""
    fs = small_fs("repofs", 24 << 20)
    subprocess.run(["cp", "-a", str(world.repo), str(fs / "repo")], check=True)
    world.env.repo_url = str(fs / "repo")
    world.write_policy(repository={"url": str(fs / "repo")})
    fill(fs, leave=16 << 10)  # the dumps of unchanged databases mostly deduplicate
    started = time.monotonic()
    result = world.vh("backup", timeout=200)
    assert time.monotonic() - started < 120
    check_invariants(world, failed=True, result=result, exit_code=1, says="no space left on device")
    (fs / "filler").unlink()
    pruned = world.vh("prune")
    assert pruned.returncode == 0, pruned.stderr
    recover_and_back_up(world)


@ONE_RESTIC  # the run stops before restic is started
def test_state_dir_full(world, small_fs):
    fs = small_fs("statefs", 1 << 20)
    subprocess.run(["cp", "-a", f"{world.env.state_dir}/.", str(fs)], check=True)
    world.write_policy(state_dir=str(fs))
    world.env.state_dir.rename(world.env.dir / "state.old")
    world.env.state_dir.symlink_to(fs)
    fill(fs)
    result = world.vh("backup")
    assert result.returncode == 1 and "nothing was done" in result.stderr, result.stderr
    assert "stop" not in world.unit_log(), "the unit was stopped although nothing could be recorded"
    check_invariants(world, failed=True, result=result, says=f"cannot record the run in {fs}")
    (fs / "filler").unlink()
    recover_and_back_up(world)


@ONE_RESTIC  # the pre-checks refuse before restic is started
def test_cache_dir_full(world, small_fs):
    """restic's cache and its temporary packs (TMPDIR, set by vhbackup beside the cache) share cache_dir."""
    fs = small_fs("cachefs", 4 << 20)
    world.write_policy(repository={"cache_dir": str(fs)})
    fill(fs, leave=64 << 10)
    result = world.vh("backup")
    assert "stop" not in world.unit_log()[1:], "the unit was stopped although the backup could not start"
    check_invariants(world, failed=True, result=result, exit_code=1, says=(str(fs), "free"))
    (fs / "filler").unlink()
    recover_and_back_up(world)


# --- locks ---------------------------------------------------------------------------------------

def _hold_exclusive_lock(world) -> subprocess.Popen:
    """A live restic prune, paused while it holds the repository's exclusive lock."""
    locks = world.repo / "locks"
    for _ in range(20):
        holder = subprocess.Popen([world.env.restic, "prune"], env=world.env.restic_env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while holder.poll() is None and not held(locks):
            time.sleep(0.001)
        holder.send_signal(signal.SIGSTOP)
        time.sleep(0.05)
        if holder.poll() is None and held(locks):
            return holder
        holder.send_signal(signal.SIGCONT)
        holder.wait()  # it had finished before it was paused: again
    raise AssertionError("could not pause restic prune while it held its lock")


def test_live_exclusive_lock(world):
    holder = _hold_exclusive_lock(world)
    try:
        result = world.vh("backup")
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.wait(timeout=60)
    check_invariants(world, failed=True, result=result, exit_code=75, kind="RepositoryLocked",
                     says="locked by another restic process")
    recover_and_back_up(world)


def test_lock_of_a_restic_on_another_host(world):
    """A lock from another host cannot be told stale (restic waits 30 min): busy, never damage."""
    other = subprocess.run(["unshare", "--uts", "sh", "-c", f"hostname other-host && exec {world.env.restic} prune "
                            f">/dev/null 2>&1 & pid=$!; while [ -z \"$(ls {world.repo}/locks | grep -v -- -tmp-)\" ]; do sleep 0.01; "
                            "done; kill -9 $pid"], env=world.env.restic_env(), capture_output=True, text=True)
    assert other.returncode == 0, other.stderr
    result = world.vh("backup")
    check_invariants(world, failed=True, result=result, exit_code=75, kind="RepositoryLocked",
                     says="locked by another restic process")
    world.restic("unlock", "--remove-all")
    recover_and_back_up(world)


def test_stale_lock_of_a_dead_restic_on_this_host(world):
    holder = subprocess.Popen([world.env.restic, "prune"], env=world.env.restic_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wait_for(lambda: held(world.repo / "locks"), "restic prune's lock", 30)
    holder.kill()
    holder.wait()
    result = world.vh("backup")
    assert result.returncode == 0, result.stderr
    check_invariants(world, failed=False, result=result)


# --- an unreachable repository -------------------------------------------------------------------

@pytest.mark.parametrize("when", ["before", "mid-dump"])
def test_unreachable_repository(rest_world, when):
    world, server = rest_world
    world.write_policy(repository={"timeout": "5s"})
    if when == "before":
        server.kill()
        result = world.vh("backup", timeout=200)
    else:
        flag = world.stalled_tool("pg_dump", "pause")
        proc = world.popen("backup")
        wait_for(flag.exists, "the dump to be half written", 60)
        server.kill()
        out, err = proc.communicate(timeout=200)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    check_invariants(world, failed=True, result=result, exit_code=1, says="reach", repository_readable=False)
    record = json.loads((world.env.state_dir / "last-backup.json").read_text())
    assert record["status"] == "failure"
