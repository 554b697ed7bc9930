"""Secrets stay out of argv, output and state; systemd's credential is used when present."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

from tests.conftest import ROOT


def cmdlines() -> dict[int, bytes]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as fh:
                    out[int(name)] = fh.read()
            except OSError:
                pass
    return out


def parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def test_secrets_never_on_a_command_line_or_in_output(env, tmp_path):
    password = env.password_file.read_text().strip()
    backend_secret = "wJalr" + secrets.token_hex(16)
    env_file = env.dir / "restic.env"
    env_file.write_text(f"AWS_ACCESS_KEY_ID=AKIA{secrets.token_hex(4)}\nAWS_SECRET_ACCESS_KEY={backend_secret}\n")
    env_file.chmod(0o600)
    data = tmp_path / "big"
    data.mkdir()
    for i in range(6):
        (data / f"chunk{i}").write_bytes(os.urandom(8 << 20))
    env.write_policy(repository={"env_file": str(env_file)}, paths=[str(data)])
    assert env.vh("init").returncode == 0

    proc = subprocess.Popen(["/usr/bin/python3", "-m", "vhbackup", "-v", "-c", str(env.policy_file), "backup"],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    seen_restic: dict[int, bytes] = {}
    restic_env = b""
    leaks = []
    while proc.poll() is None:
        for pid, cmdline in cmdlines().items():
            if password.encode() in cmdline or backend_secret.encode() in cmdline:
                leaks.append(cmdline)
            argv = cmdline.split(b"\0")
            if argv[0] == env.restic.encode() and b"backup" in argv and parent(pid) == proc.pid:
                seen_restic[pid] = cmdline
                restic_env = environ(pid) or restic_env
        time.sleep(0.005)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert leaks == []
    assert seen_restic, "never saw restic backup running; the tree is too small to watch it"
    variables = restic_env.split(b"\0")
    assert f"RESTIC_PASSWORD_FILE={env.password_file}".encode() in variables
    assert f"AWS_SECRET_ACCESS_KEY={backend_secret}".encode() in variables
    assert not any(v.startswith(b"RESTIC_PASSWORD=") for v in variables)

    listing = env.vh("-v", "restore", "--list", "--json")
    check = env.vh("config", "check")
    for text in (out, err, listing.stdout.encode(), listing.stderr.encode(), check.stdout.encode(),
                 check.stderr.encode()):
        assert password.encode() not in text and backend_secret.encode() not in text
    for path in Path(env.state_dir).rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert password.encode() not in content and backend_secret.encode() not in content, path


def test_password_from_credentials_directory_wins(env, sample_tree):
    env.write_policy(paths=[str(sample_tree / "etc")])
    assert env.vh("init").returncode == 0
    creds = env.dir / "credentials"
    creds.mkdir(mode=0o700)
    os.rename(env.password_file, creds / "restic-password")
    decoy = env.dir / "decoy-password"
    decoy.write_text(secrets.token_urlsafe(33) + "\n")
    decoy.chmod(0o600)
    env.write_policy(repository={"password_file": str(decoy)}, paths=[str(sample_tree / "etc")])

    result = env.vh("-q", "backup")
    assert result.returncode == 78 and "wrong password" in result.stderr and str(decoy) in result.stderr

    result = env.vh("backup", env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert result.returncode == 0, result.stderr
    check = env.vh("config", "check", env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert str(creds / "restic-password") in check.stdout

    (creds / "restic-password").chmod(0o644)
    result = env.vh("backup", env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert result.returncode == 78 and f"chmod 600 {creds / 'restic-password'}" in result.stderr
