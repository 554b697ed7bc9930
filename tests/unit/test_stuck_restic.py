"""_StuckWatch: a restic that reads and writes nothing and uses no CPU for repository.timeout is stopped;
one that works (reads, writes, computes) or waits for its dump's input is not. Real child processes stand
in for restic: the watch looks only at /proc (I/O counters and CPU time) and at restic's status lines."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from vhbackup import proc
from vhbackup.restic import _StuckWatch


def _status(**fields) -> tuple[str, dict]:
    msg = {"message_type": "status", **fields}
    return json.dumps(msg), msg


def _watch_for(watch: _StuckWatch, child: subprocess.Popen, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if watch(child.pid):
            return True
        time.sleep(0.25)
    return False


def _child(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL)


def test_activity_counts_io_and_cpu_of_a_child():
    child = _child("import os, time\nfd = os.open('/dev/null', os.O_WRONLY)\nos.write(fd, b'x' * 300000)\n"
                   "time.sleep(30)")
    try:
        time.sleep(1.0)
        io, cpu = proc.activity(child.pid)
        assert io >= 300000 and cpu >= 0
    finally:
        child.kill()
        child.wait()
    assert proc.activity(child.pid) is None  # gone: /proc cannot say


def test_a_silent_idle_child_is_stuck_after_the_timeout():
    child = _child("import time; time.sleep(60)")
    try:
        watch = _StuckWatch(2.0, whole_run=True)
        started = time.monotonic()
        assert _watch_for(watch, child, 10)
        assert 2.0 <= time.monotonic() - started < 8 and watch.fired
    finally:
        child.kill()
        child.wait()


def test_a_child_that_keeps_writing_or_computing_is_never_stuck():
    writer = _child("import os, time\nfd = os.open('/dev/null', os.O_WRONLY)\n"
                    "while True:\n    os.write(fd, b'x' * 200000)\n    time.sleep(0.2)")
    computer = _child("while True:\n    pass")
    try:
        for child in (writer, computer):
            watch = _StuckWatch(2.0, whole_run=True)
            assert not _watch_for(watch, child, 5), "working is progress"
    finally:
        for child in (writer, computer):
            child.kill()
            child.wait()


def test_restic_s_own_progress_lines_are_not_progress():
    """A hung restic 0.14 still prints a status line every second: those bytes must not count as work."""
    child = _child("import os, sys, time\nline = b'{\"message_type\":\"status\",\"percent_done\":1}' + b' ' * 40000 + b'\\n'\n"
                   "while True:\n    os.write(1, line)\n    time.sleep(0.3)")
    watch = _StuckWatch(2.0, whole_run=True)
    line = '{"message_type":"status","percent_done":1}' + " " * 40000
    try:
        deadline = time.monotonic() + 10
        fired = False
        while time.monotonic() < deadline and not fired:
            watch.line(line, json.loads(line.strip()))  # what vhbackup reads of it, about as fast as it comes
            fired = watch(child.pid)
            time.sleep(0.3)
        assert fired
    finally:
        child.kill()
        child.wait()


def test_a_dump_backup_counts_only_after_its_input_ended():
    """Before end-of-file restic waits for the dump tool (vhbackup's pump bounds that): not stuck."""
    child = _child("import time; time.sleep(60)")
    try:
        watch = _StuckWatch(2.0, whole_run=False)
        watch.line(*_status(total_files=1, bytes_done=5000))
        assert not _watch_for(watch, child, 4)
        watch.line(*_status(total_files=1, files_done=1, bytes_done=9000))
        assert _watch_for(watch, child, 8)
    finally:
        child.kill()
        child.wait()


def test_stream_stops_a_child_its_poll_calls_stuck():
    watch = _StuckWatch(2.0, whole_run=True)
    started = time.monotonic()
    result = proc.stream([sys.executable, "-c", "import time; time.sleep(60)"], lambda line: None,
                         stop_signal=signal.SIGINT, poll=watch)
    assert watch.fired and result.returncode != 0
    assert time.monotonic() - started < 30


def test_a_dump_backup_with_input_waiting_unread_is_stuck():
    """restic that stopped reading its input (blocked on a server that does not answer) while the dump waits."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdin=subprocess.PIPE)
    try:
        assert proc.unread_input(child.pid) == 0
        child.stdin.write(b"x" * 1000)
        child.stdin.flush()
        assert proc.unread_input(child.pid) == 1000
        watch = _StuckWatch(2.0, whole_run=False)
        assert _watch_for(watch, child, 8)
        assert proc.unread_input(child.pid) == 1000  # asking took nothing from the pipe
    finally:
        child.kill()
        child.wait()
