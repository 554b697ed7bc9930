"""The state_dir flock: one run at a time, the holder named, --wait honoured."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vhbackup import lock
from vhbackup.errors import EXIT_LOCKED, LockHeld

ROOT = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from vhbackup import lock
with lock.held(sys.argv[2], "backup"):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def hold(state_dir: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(ROOT), str(state_dir), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_lock_creates_private_state_dir_and_records_holder(tmp_path):
    state = tmp_path / "state" / "nested"
    with lock.held(str(state), "prune"):
        assert (state / "lock").read_text() == f"{os.getpid()} prune\n"
        assert state.stat().st_mode & 0o777 == 0o700
        assert (state / "lock").stat().st_mode & 0o777 == 0o600
    with lock.held(str(state), "backup"):
        assert (state / "lock").read_text() == f"{os.getpid()} backup\n"


def test_second_holder_gets_exit_75_naming_the_pid(tmp_path):
    holder = hold(tmp_path, 30)
    try:
        with pytest.raises(LockHeld) as info:
            with lock.held(str(tmp_path), "backup"):
                pass
        assert info.value.exit_code == EXIT_LOCKED
        assert f"pid {holder.pid}, backup" in str(info.value)
        assert "--wait" in str(info.value)
    finally:
        holder.kill()
        holder.wait()


def test_wait_gets_the_lock_once_released(tmp_path):
    holder = hold(tmp_path, 1.5)
    try:
        start = time.monotonic()
        with lock.held(str(tmp_path), "backup", wait=30):
            waited = time.monotonic() - start
            assert (tmp_path / "lock").read_text() == f"{os.getpid()} backup\n"
        assert 0.5 < waited < 20
    finally:
        holder.wait()


def test_wait_gives_up_after_the_timeout(tmp_path):
    holder = hold(tmp_path, 30)
    try:
        start = time.monotonic()
        with pytest.raises(LockHeld, match="after waiting"):
            with lock.held(str(tmp_path), "backup", wait=1):
                pass
        assert 0.9 < time.monotonic() - start < 5
    finally:
        holder.kill()
        holder.wait()


def test_lock_released_when_holder_dies(tmp_path):
    holder = hold(tmp_path, 30)
    holder.kill()
    holder.wait()
    with lock.held(str(tmp_path), "backup"):
        pass


def test_unusable_state_dir_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(Exception) as info:
        with lock.held(str(tmp_path / "file" / "state"), "backup"):
            pass
    assert "state_dir" in str(info.value) and "\n" not in str(info.value)
