"""Fixtures of the system test: the cached root, the built .deb, booted containers, sinks."""

from __future__ import annotations

import http.server
import subprocess
import threading
from pathlib import Path

import pytest

from tests.system.container import Container

ROOT = Path(__file__).resolve().parents[2]
DEB_DIR = ROOT / "build" / "deb"


@pytest.fixture(scope="session")
def rootfs() -> Path:
    """The cached Debian 12 root, built by tools/system-rootfs.sh when missing or outdated."""
    result = subprocess.run([str(ROOT / "tools/system-rootfs.sh")], capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        pytest.fail(f"tools/system-rootfs.sh failed:\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def deb() -> Path:
    """The package built from this tree by `make deb`."""
    result = subprocess.run(["make", "-C", str(ROOT), "deb"], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"make deb failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    debs = sorted(DEB_DIR.glob("vhbackup_*_all.deb"), key=lambda p: p.stat().st_mtime)
    if not debs:
        pytest.fail(f"make deb left no vhbackup_*_all.deb in {DEB_DIR}")
    return debs[-1]


@pytest.fixture(scope="session")
def apt_source(deb, tmp_path_factory) -> Path:
    """A flat apt repository holding the .deb: how a host gets vhbackup with `apt-get install vhbackup`."""
    repo = tmp_path_factory.mktemp("apt-repo")
    (repo / deb.name).write_bytes(deb.read_bytes())
    packages = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo, capture_output=True,
                              text=True, check=True).stdout
    (repo / "Packages").write_text(packages)
    return repo


class Sink:
    """An HTTP server on the host's 127.0.0.1 (shared with the containers) that records requests."""

    def __init__(self):
        self.requests: list[dict] = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.requests.append({"path": self.path, "headers": dict(self.headers),
                                      "body": body.decode("utf-8", "replace")})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/vhbackup-alert"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def sink():
    s = Sink()
    yield s
    s.close()


@pytest.fixture(scope="module")
def boot(rootfs, tmp_path_factory):
    """boot(name, binds=()) -> a booted Container, shut down and discarded at the end of the module."""
    started: list[Container] = []

    def _boot(name: str, binds: tuple[tuple[str, str], ...] = ()) -> Container:
        box = Container(rootfs, tmp_path_factory.mktemp(name), name, binds)
        started.append(box)
        box.boot()
        return box

    yield _boot
    for box in reversed(started):
        box.stop()
