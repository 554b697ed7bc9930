#!/usr/bin/python3
"""Run tests/integration in another Debian release's userland:

    tools/integration-in-release.py trixie [PYTEST ARGUMENTS]

The release's "dev" root (tools/system-rootfs.sh SUITE dev: its Python,
restic as /usr/bin/restic, PostgreSQL and MariaDB servers, pytest, the
package build tools and lintian) boots with systemd in a systemd-nspawn
container that has a network namespace of its own, so the database servers
that its systemd starts listen on the container's 127.0.0.1, not the host's.
This source tree is copied to /usr/src/vhbackup (readable by the test's
unprivileged user), the restic binaries fetched for either release
(tools/fetch-restic.sh) and the test-only S3 server's packages for the
release's Python (tools/test-venv.sh) are bound read-only at the same paths, and
`python3 -m pytest tests/integration` runs there with the release's
/usr/bin/python3 (PYTEST ARGUMENTS are added; paths under tests/ replace
tests/integration). Exits with pytest's status. The container, its overlay
and its cgroup are removed at the end, also on failure, SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.system.container import Container, ContainerError  # noqa: E402

RESTIC_CACHE = Path("/var/cache/vhbackup-tests")
SOURCE_INSIDE = "/usr/src/vhbackup"


def dev_root(release: str) -> Path:
    result = subprocess.run([str(ROOT / "tools/system-rootfs.sh"), release, "dev"], stdout=subprocess.PIPE,
                            text=True)
    if result.returncode != 0:
        raise SystemExit(f"integration-in-release: tools/system-rootfs.sh {release} dev failed")
    return Path(result.stdout.strip().splitlines()[-1])


def fetched_restics() -> list[Path]:
    """Both releases' restic in the cache (the container's own /usr/bin/restic is one of the versions)."""
    dirs = []
    for suite, version in (("bookworm", "0.14"), ("trixie", "0.18")):
        subprocess.run([str(ROOT / "tools/fetch-restic.sh"), suite], check=True, stdout=subprocess.DEVNULL)
        dirs.append(RESTIC_CACHE / f"restic-{version}")
    return dirs


def test_servers(release: str) -> list[Path]:
    """The test-only PyPI servers (moto's S3) as wheels for the release's Python (tools/test-venv.sh)."""
    subprocess.run([str(ROOT / "tools/test-venv.sh")], check=True, stdout=subprocess.DEVNULL)
    return [RESTIC_CACHE / "pydeps-py3.13"] if release == "trixie" else []


def copy_source(box: Container) -> None:
    """This tree without VCS data and build products, as the container's /root/vhbackup."""
    target = box.path(SOURCE_INSIDE)
    target.mkdir(parents=True)
    pack = subprocess.Popen(["tar", "-c", "--exclude-vcs", "--exclude=./build", "--exclude=./demo",
                             "--exclude=__pycache__", "--exclude=.pytest_cache", "."], cwd=ROOT,
                            stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(target)], stdin=pack.stdout, check=True)
    if pack.wait() != 0:
        raise SystemExit("integration-in-release: copying the source tree failed")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("bookworm", "trixie"):
        print("usage: tools/integration-in-release.py bookworm|trixie [PYTEST ARGUMENTS]", file=sys.stderr)
        return 2
    release, pytest_args = argv[0], argv[1:]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop the container, remove the overlay
    root = dev_root(release)
    binds = tuple((str(d), str(d)) for d in fetched_restics() + test_servers(release))
    workdir = Path(tempfile.mkdtemp(prefix=f"vhbackup-integration-{release}-", dir="/var/tmp"))
    box = Container(root, workdir, f"integration-{release}-{os.getpid()}", private_network=True, binds_ro=binds)
    started = time.monotonic()
    try:
        box.boot()
        copy_source(box)
        versions = box.run("sh", "-c", "python3 --version; restic version; psql --version; mariadb --version; "
                                       "systemctl --version | head -1").stdout
        print(f"integration tests in Debian {release} ({box.state}, booted in {time.monotonic() - started:.0f} s):",
              *versions.strip().splitlines(), sep="\n  ", flush=True)
        box.run(f"{SOURCE_INSIDE}/tools/start-services.sh", timeout=120)
        command = box.command("sh", "-c", f'cd {SOURCE_INSIDE} && exec python3 -m pytest -p no:cacheprovider "$@"',
                              "pytest", *pytest_args, *([] if any(a.startswith("tests/") for a in pytest_args)
                                                        else ["tests/integration"]),
                              env={"PYTHONDONTWRITEBYTECODE": "1"})
        return subprocess.run(command).returncode
    except ContainerError as exc:
        print(f"integration-in-release: {exc}", file=sys.stderr)
        return 1
    finally:
        box.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
