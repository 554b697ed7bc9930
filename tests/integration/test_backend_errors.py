"""What a user meets when an S3 or SFTP repository cannot be used, on restic 0.14 and 0.18.

Each case is one line on stderr naming the repository (its URL without
secrets) and the documented exit code (docs/backends.md): unreachable
(1), refused credentials or host key (78), wrong restic password (78), no
repository or bucket (1, "vhbackup init"), full storage (1). The time is
bounded by repository.timeout, also where restic 0.18 would retry for many
minutes. The AWS secret never shows up in the output or in state_dir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, backend_env, write_secret
from tests.servers import free_port

TIMEOUT = 5  # repository.timeout of these tests, seconds


def attempt(env, tmp_path: Path, *command: str, **policy) -> tuple[subprocess.CompletedProcess, float, str]:
    """Run a vhbackup command on the env's policy; (result, seconds, the one error line)."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "file").write_text("content\n")
    repository = {"timeout": f"{TIMEOUT}s", **policy.pop("repository", {})}
    env.write_policy(paths=[str(data)], repository=repository, **policy)
    started = time.monotonic()
    result = env.vh(*(command or ("backup",)), timeout=300)
    elapsed = time.monotonic() - started
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("vhbackup: error: ")]
    assert len(lines) == 1, result.stderr
    return result, elapsed, lines[0]


def assert_no_secret(env, result, secret: str) -> None:
    assert secret not in result.stdout + result.stderr
    for path in env.state_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


# --- S3 --------------------------------------------------------------------------------------------------

@pytest.fixture
def s3_env(request, tmp_path, restic_binary):
    return backend_env(request, tmp_path, restic_binary, "s3")


def _s3_env_file(env, tmp_path: Path, key: str, secret: str) -> None:
    env.repo_extra["env_file"] = write_secret(tmp_path / "s3.env",
                                              f"AWS_ACCESS_KEY_ID={key}\nAWS_SECRET_ACCESS_KEY={secret}")


def test_s3_wrong_secret_is_access_denied(s3_env, s3_server, tmp_path):
    env = s3_env
    env.write_policy()
    assert env.vh("init").returncode == 0
    wrong = "WRONGSECRET" + "x" * 29
    _s3_env_file(env, tmp_path, s3_server.access_key, wrong)
    result, elapsed, line = attempt(env, tmp_path)
    assert result.returncode == 78, line
    assert f"repository {env.repo_url} refused access" in line and "signature" in line, line
    assert elapsed < 30, elapsed
    assert_no_secret(env, result, wrong)
    assert_no_secret(env, result, s3_server.secret_key)


def test_s3_unknown_access_key_is_access_denied(s3_env, tmp_path):
    env = s3_env
    _s3_env_file(env, tmp_path, "AKIANOSUCHKEY0000000", "whatever-secret-1234567890")
    result, elapsed, line = attempt(env, tmp_path)
    assert result.returncode == 78, line
    assert f"repository {env.repo_url} refused access" in line and "Access Key Id" in line, line
    assert elapsed < 30, elapsed


def test_s3_missing_bucket_says_init(s3_env, s3_server, tmp_path):
    env = s3_env
    result, elapsed, line = attempt(env, tmp_path)
    assert result.returncode == 1, line
    assert f"no restic repository at {env.repo_url}; create it with 'vhbackup init'" in line, line
    assert elapsed < 30, elapsed
    assert_no_secret(env, result, s3_server.secret_key)


def test_s3_unreachable_is_bounded_by_the_timeout(s3_env, tmp_path):
    env = s3_env
    env.repo_url = f"s3:http://127.0.0.1:{free_port()}/bucket"
    result, elapsed, line = attempt(env, tmp_path)
    assert result.returncode == 1, line
    assert env.repo_url in line and ("cannot reach repository" in line or "did not answer" in line), line
    assert elapsed < TIMEOUT + 40, elapsed


def test_s3_wrong_restic_password(s3_env, tmp_path):
    env = s3_env
    env.write_policy()
    assert env.vh("init").returncode == 0
    write_secret(env.password_file, "another-password-that-is-long-enough-1234")
    result, _, line = attempt(env, tmp_path)
    assert result.returncode == 78, line
    assert f"wrong password for repository {env.repo_url}" in line, line


# --- SFTP ------------------------------------------------------------------------------------------------

@pytest.fixture
def sftp_env(request, tmp_path, restic_binary):
    return backend_env(request, tmp_path, restic_binary, "sftp")


def test_sftp_missing_repository_says_init(sftp_env, tmp_path):
    result, _, line = attempt(sftp_env, tmp_path)
    assert result.returncode == 1, line
    assert f"no restic repository at {sftp_env.repo_url}; create it with 'vhbackup init'" in line, line


def test_sftp_wrong_key_is_access_denied(sftp_env, sftp_server, tmp_path):
    env = sftp_env
    env.write_policy()
    assert env.vh("init").returncode == 0
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    result, _, line = attempt(env, tmp_path, repository={"timeout": f"{TIMEOUT}s",
                                                         "sftp": {**sftp_server.sftp_options(),
                                                                  "identity_file": str(other)}})
    assert result.returncode == 78, line
    assert f"repository {env.repo_url} refused the ssh login" in line and "Permission denied" in line, line


def test_sftp_changed_host_key_is_refused(sftp_env, sftp_server, tmp_path):
    env = sftp_env
    forged = tmp_path / "known_hosts"
    key = (sftp_server.dir / "client_key.pub").read_text().split()  # a valid key, but not the server's
    forged.write_text(f"[127.0.0.1]:{sftp_server.port} {key[0]} {key[1]}\n")
    result, _, line = attempt(env, tmp_path, repository={"timeout": f"{TIMEOUT}s",
                                                         "sftp": {**sftp_server.sftp_options(),
                                                                  "known_hosts": str(forged)}})
    assert result.returncode == 78, line
    assert f"repository {env.repo_url}: the ssh host key of 127.0.0.1:{sftp_server.port} is not the one " \
           f"pinned in {forged}" in line, line
    assert not (tmp_path / "sftp-repo").exists()


def test_sftp_unpinned_host_key_is_refused(sftp_env, sftp_server, tmp_path):
    env = sftp_env
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    result, _, line = attempt(env, tmp_path, "init", repository={"timeout": f"{TIMEOUT}s",
                                                                 "sftp": {**sftp_server.sftp_options(),
                                                                          "known_hosts": str(empty)}})
    assert result.returncode == 78, line
    assert f"is not pinned in {empty}" in line, line
    assert not (tmp_path / "sftp-repo").exists()


def test_sftp_unreachable(sftp_env, sftp_server, tmp_path):
    env = sftp_env
    port = free_port()
    result, elapsed, line = attempt(env, tmp_path, repository={"timeout": f"{TIMEOUT}s",
                                                               "sftp": {**sftp_server.sftp_options(), "port": port}})
    assert result.returncode == 1, line
    assert f"cannot reach repository {env.repo_url}" in line and "Connection refused" in line, line
    assert elapsed < TIMEOUT + 30


def test_sftp_wrong_restic_password(sftp_env, tmp_path):
    env = sftp_env
    env.write_policy()
    assert env.vh("init").returncode == 0
    write_secret(env.password_file, "another-password-that-is-long-enough-1234")
    result, _, line = attempt(env, tmp_path)
    assert result.returncode == 78, line
    assert f"wrong password for repository {env.repo_url}" in line, line


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs: the sftp server's disk that fills up."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_sftp_full_disk(request, tmp_path, restic_binary, small_disk, sftp_server):
    env = backend_env(request, tmp_path, restic_binary, "sftp")
    env.repo_url = sftp_server.url(small_disk / "repo")
    env.write_policy()
    init = env.vh("init")
    assert init.returncode == 0, init.stderr
    data = tmp_path / "data"
    data.mkdir()
    (data / "big.bin").write_bytes(os.urandom(24 * 1024 * 1024))
    env.write_policy(paths=[str(data)], repository={"timeout": f"{TIMEOUT}s"})
    started = time.monotonic()
    result = env.vh("backup", timeout=300)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("vhbackup: error:")]
    assert len(errors) == 1, result.stderr
    assert f"repository {env.repo_url} is full" in errors[0], errors[0]
    assert elapsed < 120, elapsed
    shutil.rmtree(data)


def test_s3_secret_never_on_a_command_line_or_in_output(s3_env, s3_server, tmp_path):
    """A backup to S3 with -v: the AWS secret reaches restic through its environment only."""
    from tests.integration.test_secrets import cmdlines, environ, parent
    env = s3_env
    data = tmp_path / "big"
    data.mkdir()
    for i in range(3):
        (data / f"chunk{i}").write_bytes(os.urandom(8 << 20))
    env.write_policy(paths=[str(data)])
    assert env.vh("init").returncode == 0
    secret = s3_server.secret_key.encode()
    proc = subprocess.Popen(["/usr/bin/python3", "-m", "vhbackup", "-v", "-c", str(env.policy_file), "backup"],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    leaks, restic_env = [], b""
    while proc.poll() is None:
        for pid, cmdline in cmdlines().items():
            if secret in cmdline:
                leaks.append(cmdline)
            if cmdline.split(b"\0")[0] == env.restic.encode() and parent(pid) == proc.pid:
                restic_env = environ(pid) or restic_env
        time.sleep(0.005)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert leaks == []
    assert b"AWS_SECRET_ACCESS_KEY=" + secret in restic_env.split(b"\0")
    listing = env.vh("-v", "restore", "--list")
    check = env.vh("config", "check")
    for text in (out, err, (listing.stdout + listing.stderr + check.stdout + check.stderr).encode()):
        assert secret not in text
    assert_no_secret(env, listing, s3_server.secret_key)
