"""vhbackup run by an unprivileged user, where files can really be unreadable.

Root reads everything, so these tests run the CLI with ``runuser`` as a
system user created for the session; its policy, password, repository, state
and cache live in a directory it owns under /var/tmp.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from vhbackup.treediff import describe, differences

ROOT = Path(__file__).resolve().parents[2]
USER = "vhbackup-test"


@pytest.fixture(scope="session")
def test_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", USER], check=True)
        return pwd.getpwnam(USER)


class UserEnv:
    def __init__(self, user: pwd.struct_passwd, restic: str):
        self.user = user
        self.dir = Path(tempfile.mkdtemp(prefix="vhbackup-unpriv-", dir="/var/tmp"))
        self.give(self.dir)
        self.dir.chmod(0o700)
        self.password_file = self.dir / "restic-password"
        self.password_file.write_text(secrets.token_urlsafe(33) + "\n")
        self.password_file.chmod(0o600)
        self.give(self.password_file)
        self.policy_file = self.dir / "policy.yml"
        self.restic = restic

    def give(self, path: Path) -> None:
        os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def write_policy(self, **sections) -> None:
        policy = {"repository": {"url": str(self.dir / "repo"), "password_file": str(self.password_file),
                                 "cache_dir": str(self.dir / "cache")},
                  "state_dir": str(self.dir / "state"), "restic_binary": self.restic}
        for key, value in sections.items():
            policy[key] = {**policy[key], **value} if isinstance(policy.get(key), dict) else value
        self.policy_file.write_text(yaml.safe_dump(policy))
        self.give(self.policy_file)

    def vh(self, *args: str) -> subprocess.CompletedProcess:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
        return subprocess.run(["runuser", "-u", USER, "--", "/usr/bin/python3", "-m", "vhbackup",
                               "-c", str(self.policy_file), *args],
                              env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def user_env(test_user, restic_binary):
    env = UserEnv(test_user, restic_binary)
    yield env
    env.remove()


def test_unreadable_file_gives_exit_3_and_a_usable_snapshot(user_env):
    tree = user_env.dir / "data"
    (tree / "sub").mkdir(parents=True)
    (tree / "ok.txt").write_text("readable\n")
    (tree / "sub/also-ok.bin").write_bytes(os.urandom(100_000))
    (tree / "locked.txt").write_text("the user cannot read this\n")
    for path in [tree, tree / "sub", tree / "ok.txt", tree / "sub/also-ok.bin", tree / "locked.txt"]:
        user_env.give(path)
    (tree / "locked.txt").chmod(0o000)
    user_env.write_policy(paths=[str(tree)])
    expected = describe(str(tree))
    del expected["locked.txt"]

    assert user_env.vh("init").returncode == 0
    result = user_env.vh("backup")
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert str(tree / "locked.txt") in result.stderr
    assert "could not be read" in result.stderr

    record = json.loads((user_env.dir / "state/last-backup.json").read_text())
    assert record["status"] == "partial" and record["exit_code"] == 3 and len(record["snapshot_ids"]) == 1

    runs = json.loads(user_env.vh("restore", "--list", "--json").stdout)
    assert len(runs) == 1 and runs[0]["snapshots"][0]["id"] == record["snapshot_ids"][0]

    target = user_env.dir / "restored"
    result = user_env.vh("restore", "--latest", "--target", str(target))
    assert result.returncode == 0, result.stderr
    restored = describe(str(target / str(tree).lstrip("/")))
    assert "locked.txt" not in restored
    assert differences(expected, restored) == []


def test_env_file_the_user_cannot_read(user_env):
    env_file = user_env.dir / "restic.env"
    env_file.write_text("AWS_ACCESS_KEY_ID=x\n")
    env_file.chmod(0o600)
    user_env.write_policy(repository={"env_file": str(env_file)}, paths=["/etc/hostname"])
    result = user_env.vh("init")
    assert result.returncode == 78
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and str(env_file) in lines[0] and "cannot be read" in lines[0], lines
    assert f"{user_env.policy_file}:" in lines[0] and "repository.env_file" in lines[0]
    assert not (user_env.dir / "repo").exists() and not (user_env.dir / "state").exists()


def test_password_file_of_another_non_root_user(user_env):
    os.chown(user_env.password_file, 65534, 65534)
    user_env.write_policy(paths=["/etc/hostname"])
    result = user_env.vh("init")
    assert result.returncode == 78
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and str(user_env.password_file) in lines[0] and "65534" in lines[0], lines
    assert not (user_env.dir / "repo").exists()


def test_an_unreadable_directory_names_the_reason_not_an_empty_object(user_env):
    """restic 0.14 reports some read errors as ``{}``: vhbackup looks at the path and says why (issue 9.13)."""
    tree = user_env.dir / "data"
    (tree / "closed").mkdir(parents=True)
    (tree / "ok.txt").write_text("readable\n")
    for path in [tree, tree / "closed", tree / "ok.txt"]:
        user_env.give(path)
    (tree / "closed").chmod(0o000)
    user_env.write_policy(paths=[str(tree)])
    assert user_env.vh("init").returncode == 0
    result = user_env.vh("backup")
    assert result.returncode == 3, result.stderr
    line = next(ln for ln in result.stderr.splitlines() if str(tree / "closed") in ln and "could not read" in ln)
    assert line.endswith("Permission denied") or "permission denied" in line.lower(), line
    assert "{}" not in result.stderr
