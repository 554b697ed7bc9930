"""Storage servers on 127.0.0.1 that the backend tests start themselves: S3 (moto) and SFTP (sshd).

- ``S3Server``: moto's S3 server (``moto[server]`` from PyPI, test-only). On
  this host it runs from the venv that ``tools/test-venv.sh`` makes under
  /var/cache/vhbackup-tests/venv (``make test`` runs it; the fixture runs it
  when the venv is missing); in another Debian release's userland (the
  trixie container of ``make integration-trixie``, which has no network) from
  the wheels the same script unpacks for that Python,
  /var/cache/vhbackup-tests/pydeps-py3.13, which the container gets bound in.
  IAM authentication is on: the server accepts exactly one access key (made
  at start), so a wrong secret is refused as on AWS.
- ``RestServer``: ``rclone serve restic`` of one directory, which a test can
  kill, or pause (SIGSTOP: a server that stops answering) and resume.
- ``SshServer``: Debian's ``/usr/sbin/sshd`` with a config of its own, throwaway
  host and user keys in a temporary directory, on a free port, internal-sftp,
  logging in as the user running the tests (root) with the key only.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("VHBACKUP_TEST_CACHE", "/var/cache/vhbackup-tests"))
SSHD = "/usr/sbin/sshd"


class ServerError(Exception):
    pass


class RestServer:
    """``rclone serve restic`` of one directory (the repository at the server's root)."""

    def __init__(self, root: Path, *options: str):
        self.port = free_port()
        self.url = f"rest:http://127.0.0.1:{self.port}/"
        self.proc = subprocess.Popen(["rclone", "serve", "restic", *options, "--addr", f"127.0.0.1:{self.port}",
                                      str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc, "rclone serve restic")

    def pause(self) -> None:
        """The server stops answering: connections are accepted by the kernel, and nothing more."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()


class SlowLink:
    """A TCP relay on 127.0.0.1 that carries what the client sends at ``rate`` bytes a second, as a slow
    network link does: the client's data waits in its own send queue (the relay's receive buffer is small)."""

    def __init__(self, target_port: int, rate: int):
        self.target_port, self.rate = target_port, rate
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._carry, args=(client, upstream, self.rate), daemon=True).start()
            threading.Thread(target=self._carry, args=(upstream, client, 0), daemon=True).start()

    @staticmethod
    def _carry(src: socket.socket, dst: socket.socket, rate: int) -> None:
        try:
            while data := src.recv(4096 if rate else 1 << 16):
                dst.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"{what} exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise ServerError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- S3 ------------------------------------------------------------------------------

def moto_python() -> tuple[str, dict[str, str]]:
    """The Python that runs moto here, and the environment it needs (PYTHONPATH for the unpacked wheels)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    venv_python = CACHE / "venv/bin/python3"
    pydeps = CACHE / f"pydeps-py{version}"
    if (pydeps / ".vhbackup-stamp").exists():
        return sys.executable, {"PYTHONPATH": str(pydeps)}
    if not (CACHE / "venv/.vhbackup-stamp").exists() and version == "3.11":
        subprocess.run([str(ROOT / "tools/test-venv.sh")], check=True)
    if (CACHE / "venv/.vhbackup-stamp").exists() and subprocess.run(
            [str(venv_python), "-c", "import moto.server"], capture_output=True).returncode == 0:
        return str(venv_python), {}
    raise ServerError(f"no moto server for Python {version}: run tools/test-venv.sh (make test does) "
                      f"to make {CACHE}/venv and {CACHE}/pydeps-py3.13")


_MAKE_KEY = """
import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="setup", aws_secret_access_key="setup")
iam.create_user(UserName="backup")
iam.put_user_policy(UserName="backup", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="backup")["AccessKey"]
print(json.dumps([key["AccessKeyId"], key["SecretAccessKey"]]))
"""


@dataclass
class S3Server:
    process: subprocess.Popen
    port: int
    access_key: str
    secret_key: str

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, bucket: str) -> str:
        """The repository URL, written as the original system writes it (``s3:HOST/bucket``)."""
        return f"s3:{self.endpoint}/{bucket}"

    @classmethod
    def start(cls, workdir: Path) -> S3Server:
        python, extra = moto_python()
        port = free_port()
        env = {**os.environ, **extra, "INITIAL_NO_AUTH_ACTION_COUNT": "3", "MOTO_CALL_RESET_API": "false"}
        env.pop("AWS_ACCESS_KEY_ID", None)
        env.pop("AWS_SECRET_ACCESS_KEY", None)
        log = open(workdir / "moto.log", "wb")
        process = subprocess.Popen([python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir,
                                   start_new_session=True)
        log.close()
        try:
            wait_for_port(port, process, "moto_server", timeout=60)
            # The first three requests (unauthenticated): a user allowed s3:*, and its access key.
            made = subprocess.run([python, "-c", _MAKE_KEY, f"http://127.0.0.1:{port}"], env=env,
                                  capture_output=True, text=True, timeout=120)
            if made.returncode != 0:
                raise ServerError(f"could not make the S3 access key: {made.stderr.strip()[-500:]}")
            access, secret = json.loads(made.stdout)
        except BaseException:
            stop(process)
            raise
        return cls(process, port, access, secret)

    def stop(self) -> None:
        stop(self.process)


# --- SFTP ----------------------------------------------------------------------------

def keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)


@dataclass
class SshServer:
    process: subprocess.Popen
    port: int
    dir: Path
    user: str

    @property
    def identity_file(self) -> Path:
        return self.dir / "client_key"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    def url(self, path: str | Path) -> str:
        return f"sftp:{self.user}@127.0.0.1:{path}"

    def sftp_options(self) -> dict:
        return {"identity_file": str(self.identity_file), "known_hosts": str(self.known_hosts), "port": self.port}

    @classmethod
    def start(cls, workdir: Path) -> SshServer:
        if not os.access(SSHD, os.X_OK):
            raise ServerError(f"{SSHD} is missing: apt install openssh-server (make test-deps does)")
        workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(workdir, 0o700)
        keygen(workdir / "host_key", "vhbackup-test-host")
        keygen(workdir / "client_key", "vhbackup-test-client")
        shutil.copy(workdir / "client_key.pub", workdir / "authorized_keys")
        os.chmod(workdir / "authorized_keys", 0o600)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        port = free_port()
        user = pwd.getpwuid(os.geteuid()).pw_name
        (workdir / "sshd_config").write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {workdir}/host_key
PidFile {workdir}/sshd.pid
AuthorizedKeysFile {workdir}/authorized_keys
AllowUsers {user}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
X11Forwarding no
AllowTcpForwarding no
Subsystem sftp internal-sftp
# OpenSSH >= 9.8 (Debian 13) refuses a source address for a while after failed logins: the tests fail logins
# on purpose, all from 127.0.0.1 (dropped below where sshd does not know the option).
PerSourcePenalties no
""")
        check = subprocess.run([SSHD, "-t", "-f", str(workdir / "sshd_config")], capture_output=True, text=True)
        if check.returncode != 0 and "PerSourcePenalties" in check.stderr:
            config = (workdir / "sshd_config").read_text()
            (workdir / "sshd_config").write_text(config.replace("PerSourcePenalties no\n", ""))
        host_key = (workdir / "host_key.pub").read_text().split()
        (workdir / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
        log = open(workdir / "sshd.log", "wb")
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(workdir / "sshd_config")], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        wait_for_port(port, process, "sshd")
        return cls(process, port, workdir, user)

    def stop(self) -> None:
        stop(self.process)
