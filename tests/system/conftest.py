"""Fixtures of the system tests: the cached roots, the built .deb, booted containers, sinks.

Every test here runs once per Debian release in VHBACKUP_TEST_RELEASES
(default "bookworm trixie": Debian 12 and 13); `make system-test` runs one
pytest per release, in parallel. The package is the one `make deb` builds
from this tree on the host (Debian 12), installed with apt in each release.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.system.container import Container

ROOT = Path(__file__).resolve().parents[2]
RELEASES = tuple(os.environ.get("VHBACKUP_TEST_RELEASES", "bookworm trixie").split())
#: What each release ships that the tests depend on.
RELEASE_FACTS = {
    "bookworm": {"debian": "12", "systemd": 252, "restic": "0.14", "python": "3.11", "postgresql": "15"},
    "trixie": {"debian": "13", "systemd": 257, "restic": "0.18", "python": "3.13", "postgresql": "17"},
}


def rootfs_of(release: str, flavour: str = "host") -> Path:
    """The cached root of ``release`` (tools/system-rootfs.sh builds it when missing or outdated)."""
    result = subprocess.run([str(ROOT / "tools/system-rootfs.sh"), release, flavour], capture_output=True,
                            text=True, timeout=1800)
    if result.returncode != 0:
        pytest.fail(f"tools/system-rootfs.sh {release} {flavour} failed:\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session", params=RELEASES)
def release(request) -> str:
    if request.param not in RELEASE_FACTS:
        pytest.fail(f"VHBACKUP_TEST_RELEASES names {request.param!r}; known: {' '.join(RELEASE_FACTS)}")
    return request.param


@pytest.fixture(scope="session")
def rootfs(release) -> Path:
    """The cached root of the release under test, a vhbackup host (the \"host\" flavour)."""
    return rootfs_of(release)


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory) -> Path:
    """`make deb`'s output: the .deb, the source package (.dsc, .tar.xz) and the build log.

    `make system-test` builds it once for every release (VHBACKUP_DEB_DIR); run alone, the session builds
    its own copy (without the build-time unit tests, which `make unit` runs).
    """
    given = os.environ.get("VHBACKUP_DEB_DIR")
    if given:
        out = Path(given).resolve()
    else:
        out = tmp_path_factory.mktemp("deb")
        result = subprocess.run(["make", "-C", str(ROOT), "-s", "deb", f"DEB_DIR={out}"], capture_output=True,
                                text=True, timeout=900, env={**os.environ, "DEB_BUILD_OPTIONS": "nocheck"})
        if result.returncode != 0:
            pytest.fail(f"make deb failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    if not list(out.glob("vhbackup_*_all.deb")) or not list(out.glob("vhbackup_*.dsc")):
        pytest.fail(f"no vhbackup_*_all.deb and .dsc in {out}: run `make deb DEB_DIR={out}`")
    return out


@pytest.fixture(scope="session")
def deb(package_dir) -> Path:
    """The package built from this tree."""
    return max(package_dir.glob("vhbackup_*_all.deb"), key=lambda p: p.stat().st_mtime)


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

            do_GET = do_POST

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
def boot(rootfs, release, tmp_path_factory):
    """boot(name, binds=(), **options) -> a booted Container of the release under test, shut down and
    discarded at the end of the module (options: memory, private_network, binds_ro, image)."""
    started: list[Container] = []

    def _boot(name: str, binds: tuple[tuple[str, str], ...] = (), image: Path | None = None,
              **options) -> Container:
        box = Container(image or rootfs, tmp_path_factory.mktemp(f"{name}-{release}"), f"{name}-{release}",
                        binds, **options)
        started.append(box)
        box.boot()
        return box

    yield _boot
    for box in reversed(started):
        box.stop()
        # what the container wrote (up to gigabytes); its console log stays for the record
        for sub in ("upper", "work"):
            shutil.rmtree(box.workdir / sub, ignore_errors=True)
