"""EXTEND_TIMEOUT_USEC under a real systemd 252 and 257 (PID 1 of a booted Debian 12 and 13).

vhbackup.systemd_notify.progress() extends the unit's start timeout while
the byte count grows. This proves that systemd honours it for a
Type=oneshot unit (the run outlives TimeoutStartSec=) and that a stalled run,
whose byte count stops growing, is still killed by the timeout.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

PROGRESS = """
import sys, time
sys.path.insert(0, "/vhsrc")
from vhbackup import systemd_notify
systemd_notify.EXTEND_WINDOW = 3.0
systemd_notify.PROGRESS_INTERVAL = 0.2
grow = sys.argv[1] == "grow"
start = time.monotonic()
done = 0
while time.monotonic() - start < 9:
    done += 1000 if grow else 0
    systemd_notify.progress(f"uploading: {done} bytes", done)
    time.sleep(0.3)
print("finished", flush=True)
"""


@pytest.fixture(scope="module")
def box(boot):
    return boot("vhextend", binds=((str(ROOT), "/vhsrc"),))


def run_unit(box, name: str, mode: str):
    started = time.monotonic()
    result = box.run("systemd-run", "--wait", "--quiet", f"--unit={name}", "-p", "Type=oneshot",
                     "-p", "TimeoutStartSec=4", "-p", "NotifyAccess=main",
                     "/usr/bin/python3", "-c", PROGRESS, mode, check=False, timeout=60)
    journal = box.run("journalctl", "-u", name, "--no-pager", "-o", "cat", check=False).stdout
    return result.returncode, time.monotonic() - started, journal


def test_progress_extends_the_start_timeout_while_bytes_grow(box):
    returncode, elapsed, journal = run_unit(box, "vh-extend-grow", "grow")
    assert returncode == 0, journal
    assert elapsed >= 8.5 and "finished" in journal


def test_a_stalled_run_is_still_killed_by_the_timeout(box):
    returncode, elapsed, journal = run_unit(box, "vh-extend-stall", "stall")
    assert returncode != 0 and "timed out" in journal, journal
    assert elapsed < 8
