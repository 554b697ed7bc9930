"""Fixtures shared by every test: real restic binaries, repositories and a policy writer.

The restic-facing tests run once per restic version (Debian 12's 0.14 and
Debian 13's 0.18) and, where marked, once per backend (a local directory and
a REST server served by `rclone serve restic`). Each version is found by
asking the binaries: /usr/bin/restic is whatever the release ships (0.14 on
Debian 12, 0.18 on Debian 13) and the other release's restic is fetched into
/var/cache/vhbackup-tests/restic-<version>/ (`make restic`), so the same tests
run in both userlands.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

# A test run started in the background of a non-interactive shell (`make test &`) inherits SIGINT
# ignored, and every Python child keeps ignoring it: the tests that press Ctrl-C on vhbackup (SIGINT)
# would then see a run that cannot be interrupted. A handler here is reset to the default in children.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
PYTHON = "/usr/bin/python3"
#: The restic versions every restic-facing test runs with.
RESTIC_VERSIONS = ("0.14", "0.18")
RESTIC_CACHE = "/var/cache/vhbackup-tests"


def restic_version(binary: str) -> tuple[int, int, int] | None:
    """The version a restic binary reports (``restic version``), or None when it does not run."""
    try:
        out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None
    match = re.search(r"restic (\d+)\.(\d+)\.(\d+)", out)
    return tuple(map(int, match.groups())) if match else None


class _Restics(dict):
    """version ("0.14") -> binary; a missing version maps to a path that says how to get it."""

    def __missing__(self, version: str) -> str:
        return f"/nonexistent/restic-{version}-run-make-restic"


def find_restics() -> _Restics:
    """The binaries of RESTIC_VERSIONS, by what they report: the system's first, then the fetched ones."""
    candidates = ["/usr/bin/restic"] + [os.environ.get(f"RESTIC_{v.replace('.', '')}", "") or
                                        f"{RESTIC_CACHE}/restic-{v}/usr/bin/restic" for v in RESTIC_VERSIONS]
    found = _Restics()
    for binary in candidates:
        version = restic_version(binary) if os.access(binary, os.X_OK) else None
        if version is not None:
            found.setdefault(f"{version[0]}.{version[1]}", binary)
    return found


RESTIC = find_restics()

sys.path.insert(0, str(ROOT))

# The alert sinks listen on 127.0.0.1 and must be reached directly, never through a proxy (pybuild sets
# http_proxy=http://127.0.0.1:9/ and no_proxy=localhost while the package build runs the unit tests).
for _variable in ("no_proxy", "NO_PROXY"):
    os.environ[_variable] = ",".join(filter(None, [os.environ.get(_variable), "127.0.0.1", "localhost"]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def rest_server(tmp_path_factory):
    """A restic REST server on 127.0.0.1 (Debian's rclone); each test uses its own path below it."""
    yield from _rclone_rest(tmp_path_factory.mktemp("rest"))


@pytest.fixture(scope="session")
def rest_server_append_only(tmp_path_factory):
    """The same, started with ``--append-only``: nothing can be deleted through it (no forget, no prune)."""
    yield from _rclone_rest(tmp_path_factory.mktemp("rest-append-only"), "--append-only")


def _rclone_rest(root: Path, *options: str):
    port = free_port()
    server = subprocess.Popen(["rclone", "serve", "restic", *options, "--addr", f"127.0.0.1:{port}", str(root)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        server.kill()
        pytest.fail("rclone serve restic did not start")
    yield f"rest:http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


def restic_for(version: str) -> str:
    """The binary of restic ``version``; fails the test when there is none."""
    if version not in RESTIC:
        pytest.fail(f"no restic {version} found (/usr/bin/restic, {RESTIC_CACHE}/restic-{version}/usr/bin/restic): "
                    f"run `make restic` (make test does it)")
    return RESTIC[version]


@pytest.fixture(params=RESTIC_VERSIONS, ids=lambda v: f"restic{v}")
def restic_binary(request) -> str:
    return restic_for(request.param)


@dataclass
class Env:
    """A private world for one test: password, policy, state, cache, and the CLI."""

    dir: Path
    restic: str
    repo_url: str
    #: More repository: keys (env_file, sftp), and what restic run by the test itself needs for them.
    repo_extra: dict = field(default_factory=dict)
    extra_env: dict = field(default_factory=dict)
    extra_args: tuple = ()

    @property
    def password_file(self) -> Path:
        return self.dir / "restic-password"

    @property
    def policy_file(self) -> Path:
        return self.dir / "policy.yml"

    @property
    def state_dir(self) -> Path:
        return self.dir / "state"

    def policy(self, **sections) -> dict:
        base = {
            "repository": {"url": self.repo_url, "password_file": str(self.password_file),
                           "cache_dir": str(self.dir / "cache"), **self.repo_extra},
            "state_dir": str(self.state_dir),
            "restic_binary": self.restic,
        }
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        return base

    def write_policy(self, **sections) -> Path:
        self.policy_file.write_text(yaml.safe_dump(self.policy(**sections), allow_unicode=True))
        return self.policy_file

    def restic_env(self) -> dict:
        return {**os.environ, "RESTIC_REPOSITORY": self.repo_url, "RESTIC_PASSWORD_FILE": str(self.password_file),
                "RESTIC_CACHE_DIR": str(self.dir / "cache"), **self.extra_env}

    def run_restic(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([self.restic, *self.extra_args, *args], env=self.restic_env(), capture_output=True,
                              text=True, check=check)

    def vh(self, *args: str, env: dict | None = None, input: str | None = None,
           timeout: float = 600) -> subprocess.CompletedProcess:
        """Run the vhbackup CLI as a user would (a new /usr/bin/python3 process)."""
        full_env = {k: v for k, v in os.environ.items() if k not in ("DRY_RUN", "VHBACKUP_CONFIG", "JOURNAL_STREAM",
                                                                       "NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY")}
        full_env["PYTHONPATH"] = str(ROOT)
        full_env.update(env or {})
        return subprocess.run([PYTHON, "-m", "vhbackup", "-c", str(self.policy_file), *args],
                              env=full_env, capture_output=True, text=True, input=input, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)


def make_env(tmp_path: Path, restic: str, repo_url: str | None = None) -> Env:
    env = Env(dir=tmp_path, restic=restic, repo_url=repo_url or str(tmp_path / "repo"))
    fd = os.open(env.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (secrets.token_urlsafe(33) + "\n").encode())
    os.close(fd)
    return env


@pytest.fixture
def env(tmp_path, restic_binary) -> Env:
    """A local repository (not yet initialised) for each restic version."""
    return make_env(tmp_path, restic_binary)


@pytest.fixture(params=["local", "rest"])
def any_env(request, tmp_path, restic_binary) -> Env:
    """A repository on each backend, for each restic version."""
    if request.param == "rest":
        base = request.getfixturevalue("rest_server")
        return make_env(tmp_path, restic_binary, f"{base}/{tmp_path.name}-{secrets.token_hex(4)}/")
    return make_env(tmp_path, restic_binary)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 server on 127.0.0.1 with IAM authentication: one access key (tests/servers.py)."""
    from tests.servers import S3Server
    server = S3Server.start(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory):
    """An sshd of its own on 127.0.0.1 (throwaway host and user keys, internal-sftp; tests/servers.py)."""
    from tests.servers import SshServer
    server = SshServer.start(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


#: The storage backends the backend tests run on (tests/integration/test_backends.py).
BACKENDS = ("s3", "sftp", "rest", "rest-append-only")


def backend_env(request, tmp_path: Path, restic: str, backend: str, name: str | None = None) -> Env:
    """An Env whose repository (not yet initialised) is on ``backend``, configured as a user would.

    s3: ``url: s3:http://127.0.0.1:PORT/BUCKET`` and the AWS keys in ``env_file``
    (as the original system configures it); sftp: ``url: sftp:USER@127.0.0.1:/PATH``
    and ``repository.sftp`` (key, pinned host key, port); rest: ``rclone serve
    restic`` (``rest-append-only``: with ``--append-only``).
    """
    name = name or f"{tmp_path.name}-{secrets.token_hex(4)}".lower().replace("_", "-")[-40:].strip("-")
    if backend == "s3":
        server = request.getfixturevalue("s3_server")
        env_file = write_secret(tmp_path / "s3.env", f"AWS_ACCESS_KEY_ID={server.access_key}\n"
                                                     f"AWS_SECRET_ACCESS_KEY={server.secret_key}")
        env = make_env(tmp_path, restic, server.url(f"vh-{name}"))
        env.repo_extra = {"env_file": env_file}
        env.extra_env = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}
        return env
    if backend == "sftp":
        server = request.getfixturevalue("sftp_server")
        env = make_env(tmp_path, restic, server.url(tmp_path / "sftp-repo"))
        env.repo_extra = {"sftp": server.sftp_options()}
        from vhbackup.policy import Repository, Sftp
        from vhbackup.restic import sftp_command
        command = sftp_command(Repository(url=env.repo_url, password_file="", sftp=Sftp(**server.sftp_options())))
        env.extra_args = ("-o", "sftp.command=" + " ".join(command))
        return env
    if backend in ("rest", "rest-append-only"):
        base = request.getfixturevalue("rest_server" if backend == "rest" else "rest_server_append_only")
        return make_env(tmp_path, restic, f"{base}/{name}/")
    if backend == "local":
        return make_env(tmp_path, restic)
    raise ValueError(backend)


@pytest.fixture
def sample_tree(tmp_path) -> Path:
    """Files that a restore must bring back exactly: modes, mtimes, symlinks, empty dirs, odd names."""
    return make_sample_tree(tmp_path)


def make_sample_tree(tmp_path: Path) -> Path:
    """The ``sample_tree`` fixture's files under ``tmp_path/data``, for module-scoped fixtures."""
    root = tmp_path / "data"
    (root / "etc").mkdir(parents=True)
    (root / "srv/hub/data/empty").mkdir(parents=True)
    (root / "srv/agent/data").mkdir(parents=True)
    (root / "etc/app.conf").write_text("key = value\n")
    (root / "etc/app.conf").chmod(0o640)
    (root / "srv/hub/data/a file with spaces").write_text("spaces\n")
    (root / "srv/hub/data/new\nline").write_text("newline in the name\n")
    (root / "srv/hub/data/ünïcødé-データ.txt").write_text("utf-8\n")
    (root / "srv/hub/data/big.bin").write_bytes(secrets.token_bytes(3 * 1024 * 1024 + 17))
    (root / "srv/hub/data/script.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "srv/hub/data/script.sh").chmod(0o755)
    (root / "srv/hub/data/secret.key").write_text("not really\n")
    (root / "srv/hub/data/secret.key").chmod(0o600)
    (root / "srv/hub/data/skip.tmp").write_text("excluded\n")
    os.symlink("a file with spaces", root / "srv/hub/data/link")
    os.symlink("/nonexistent/target", root / "srv/hub/data/dangling")
    (root / "srv/agent/data/state.db").write_bytes(b"\x00\x01binary" * 1000)
    old = time.time() - 86400 * 400
    for path in [root / "etc/app.conf", root / "srv/hub/data/big.bin"]:
        os.utime(path, (old, old))
    os.utime(root / "srv/hub/data/empty", (old, old))
    return root


def sample_policy(tree: Path) -> dict:
    return {
        "paths": [str(tree / "etc")],
        "exclude": ["*.tmp"],
        "services": {
            "hub": {"paths": [str(tree / "srv/hub/data")]},
            "agent": {"paths": [str(tree / "srv/agent/data")]},
        },
    }


def write_secret(path: Path, text: str) -> str:
    """A credential file as vhbackup demands it: mode 600 from the start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, (text + "\n").encode())
    os.close(fd)
    return str(path)


@pytest.fixture
def secret() -> str:
    """A unique string that must never show up in anything vhbackup writes, logs or sends."""
    return f"LEAKCHECK{secrets.token_hex(12)}"


@pytest.fixture
def smtp(secret):
    """A real SMTP server on 127.0.0.1 that accepts the login alerts / ``secret``."""
    from tests.alert_sinks import SmtpSink
    sink = SmtpSink(user="alerts", password=secret)
    yield sink
    sink.stop()


@pytest.fixture
def http():
    """A real HTTP listener on 127.0.0.1 that records every request."""
    from tests.alert_sinks import HttpSink
    sink = HttpSink()
    yield sink
    sink.stop()


@pytest.fixture
def silent():
    """A listener that accepts connections and never answers."""
    from tests.alert_sinks import Silent
    sink = Silent()
    yield sink
    sink.stop()
