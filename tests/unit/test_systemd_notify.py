"""sd_notify: datagrams on a socket bound in a temp dir, as systemd's NOTIFY_SOCKET would receive them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from vhbackup import systemd_notify

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    """A bound datagram socket; NOTIFY_SOCKET points at it. Yields a function returning what arrived."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    systemd_notify.reset()

    def received() -> list[str]:
        out = []
        while True:
            try:
                out.append(sock.recv(4096).decode())
            except BlockingIOError:
                return out

    yield received
    monkeypatch.delenv("NOTIFY_SOCKET")
    systemd_notify._get()  # drops the connection to the removed socket
    sock.close()


def test_status_sends_one_datagram_per_call(notify_socket):
    systemd_notify.status("dumping hub (2/3)")
    systemd_notify.status("backing up files of system, hub")
    assert notify_socket() == ["STATUS=dumping hub (2/3)", "STATUS=backing up files of system, hub"]


def test_status_is_one_utf8_line(notify_socket):
    systemd_notify.status("dumping café\nsecond line")
    assert notify_socket() == ["STATUS=dumping café second line"]


def test_progress_is_throttled_and_extends_only_while_bytes_grow(notify_socket, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(systemd_notify.time, "monotonic", lambda: clock[0])
    window = f"EXTEND_TIMEOUT_USEC={int(systemd_notify.EXTEND_WINDOW * 1_000_000)}"

    systemd_notify.progress("uploading: 1 MB", 1_000_000)
    systemd_notify.progress("uploading: 1.1 MB", 1_100_000)  # same second: dropped
    clock[0] += 1.5
    systemd_notify.progress("uploading: 2 MB", 2_000_000)
    clock[0] += 1.5
    systemd_notify.progress("uploading: 2 MB", 2_000_000)  # no progress: no extension
    clock[0] += 1.5
    systemd_notify.progress("uploading: 3 MB", 3_000_000)
    assert notify_socket() == [
        "STATUS=uploading: 1 MB",
        f"STATUS=uploading: 2 MB\n{window}",
        "STATUS=uploading: 2 MB",
        f"STATUS=uploading: 3 MB\n{window}",
    ]


def test_extend_timeout_is_in_microseconds(notify_socket):
    systemd_notify.extend_timeout(90)
    assert notify_socket() == ["EXTEND_TIMEOUT_USEC=90000000"]


def test_abstract_socket(monkeypatch):
    name = f"vhbackup-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        systemd_notify.status("abstract")
        assert sock.recv(4096) == b"STATUS=abstract"
    finally:
        monkeypatch.delenv("NOTIFY_SOCKET")
        systemd_notify._get()
        sock.close()


def test_nothing_without_notify_socket(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd_notify.send("STATUS=x") is False
    systemd_notify.status("x")
    systemd_notify.progress("x", 1)


def test_a_vanished_socket_never_raises(tmp_path, monkeypatch):
    path = tmp_path / "gone"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    assert systemd_notify.send("STATUS=first") is True
    sock.close()
    path.unlink()
    assert systemd_notify.send("STATUS=second") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "never-existed"))
    assert systemd_notify.send("STATUS=third") is False
    monkeypatch.delenv("NOTIFY_SOCKET")
    systemd_notify._get()


def test_backup_progress_reaches_the_socket_from_a_real_process(tmp_path):
    """The CLI's progress callback (Context._backup_progress) in a fresh interpreter, as under systemd."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from vhbackup.context import Context\n"
        "ctx = Context(policy=None, quiet=True)\n"
        "ctx._backup_progress('files', {'bytes_done': 1500000, 'total_bytes': 3000000, 'percent_done': 0.5})\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    env["NOTIFY_SOCKET"] = path
    subprocess.run([sys.executable, "-c", code, ROOT], env=env, check=True, timeout=30)
    message = sock.recv(4096).decode()
    sock.close()
    assert message == "STATUS=uploading: 1.4 MiB of 2.9 MiB"
