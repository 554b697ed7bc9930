"""_StuckWatch: a restic that reads and writes nothing and uses no CPU for repository.timeout is stopped;
one that works (reads, writes, computes) or waits for its dump's input is not. Real child processes stand
in for restic: the watch looks only at /proc (I/O counters and CPU time) and at restic's status lines."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
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


def _runs(pid: int, marker: str) -> bool:
    """Process ``pid`` still runs the command holding ``marker`` (pids are reused quickly: pid_max may be 32768)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return marker.encode() in fh.read() and proc._started(pid) is not None
    except OSError:
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
        assert fired and child.poll() is None, "it was writing its progress lines all along"
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


def test_a_wrapper_that_runs_restic_as_its_child_is_watched_with_it():
    """``restic_binary`` may be a script that does not exec: its child's work is progress."""
    writer = ("import os, time\nfd = os.open('/dev/null', os.O_WRONLY)\n"
              "while True:\n    os.write(fd, b'x' * 200000)\n    time.sleep(0.2)")
    wrapper = subprocess.Popen(["sh", "-c", f'{sys.executable} -c "{writer}"; true'])
    try:
        time.sleep(0.5)
        assert len(proc.process_tree(wrapper.pid)) == 2
        assert not _watch_for(_StuckWatch(2.0, whole_run=True), wrapper, 5)
    finally:
        for pid in proc.process_tree(wrapper.pid)[1:]:
            os.kill(pid, signal.SIGKILL)
        wrapper.kill()
        wrapper.wait()


def _slow_peer(read_per_second: int):
    """A TCP peer on 127.0.0.1 with a small receive window that takes ``read_per_second`` bytes a second."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    stop = threading.Event()

    def serve():
        conn, _ = server.accept()
        while not stop.wait(0.1):
            if read_per_second:
                conn.recv(read_per_second // 10)
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, stop


def test_an_upload_to_a_slow_peer_is_progress_one_that_stopped_taking_data_is_not():
    """The kernel sends what restic handed it at the peer's pace while restic's own counters stay flat."""
    sender = ("import socket, sys, time\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 600000)\n"
              "s.connect(('127.0.0.1', int(sys.argv[1])))\ns.setblocking(False)\nsent = 0\n"
              "while sent < 400000:\n    try:\n        sent += s.send(b'x' * (400000 - sent))\n"
              "    except BlockingIOError:\n        break\ntime.sleep(60)")
    for rate, stuck in ((20000, False), (0, True)):
        server, stop = _slow_peer(rate)
        child = subprocess.Popen([sys.executable, "-c", sender, str(server.getsockname()[1])])
        try:
            time.sleep(1.0)
            assert any(tx for _, tx, _ in proc.socket_queues(child.pid)), "the peer should hold data back"
            assert _watch_for(_StuckWatch(2.0, whole_run=True), child, 6) is stuck
        finally:
            stop.set()
            child.kill()
            child.wait()
            server.close()


def test_the_stuck_error_names_the_last_file_and_blames_retries_only_when_they_are_recent(tmp_path):
    from vhbackup.errors import RepositoryUnreachable, ResticStuck
    from vhbackup.policy import Repository
    from vhbackup.restic import Restic, _RetryWatch

    restic = Restic("restic", Repository(url="rest:http://u:Sekr1t@127.0.0.1:9/r/", password_file="/x", timeout=5),
                    "host", "policy.yml")
    stuck = _StuckWatch(5, whole_run=True)
    stuck.line(*_status(total_files=3, files_done=1, current_files=["/srv/app/big.db"]))
    old = _RetryWatch(5)
    old("Load(<lock/ab>) returned error, retrying after 1s: connection refused")
    old.last -= 600  # a retry long ago, that then succeeded: not what stopped this restic
    error = restic.stuck_error("backup", old, stuck)
    assert isinstance(error, ResticStuck) and "/srv/app/big.db" in str(error) and "Sekr1t" not in str(error)
    recent = _RetryWatch(5)
    recent("Load(<lock/ab>) returned error, retrying after 1s: connection refused")
    assert isinstance(restic.stuck_error("backup", recent, stuck), RepositoryUnreachable)


def test_stopping_a_wrapper_also_stops_the_restic_it_left_running(tmp_path):
    """A wrapper that does not exec dies of SIGINT at once; its child (restic) holds our pipes: it must go too."""
    pidfile = tmp_path / "pid"
    child = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    watch = _StuckWatch(2.0, whole_run=True)
    started = time.monotonic()
    result = proc.stream(["sh", "-c", f'{sys.executable} -c "{child}"; true'], lambda line: None,
                         stop_signal=signal.SIGINT, poll=watch)
    assert watch.fired and result.returncode != 0
    assert time.monotonic() - started < 40, "the wrapper's child kept our pipes open"
    grandchild = int(pidfile.read_text())
    assert not _runs(grandchild, str(pidfile)), "the wrapper's child is still running"
