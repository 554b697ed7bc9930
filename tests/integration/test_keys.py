"""Key rotation and key listing, on restic 0.14 and 0.18.

The rotation is killed (SIGKILL, by itself, right after each step) in a
child process that runs ``keys.rotate`` with a step callback: the same code
the CLI runs, with no test hook in the product. After each kill, the
password file or its side file opens the repository, and ``vhbackup key
rotate`` finishes the job.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import textwrap

import pytest

from tests.conftest import PYTHON, ROOT, Env
from vhbackup import keys


def opens(env: Env, password_file) -> bool:
    result = subprocess.run([env.restic, "cat", "config"], capture_output=True, text=True,
                            env={**env.restic_env(), "RESTIC_PASSWORD_FILE": str(password_file)})
    return result.returncode == 0


def key_ids(env: Env) -> list[dict]:
    result = env.vh("key", "list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def repo(env: Env) -> Env:
    env.write_policy(paths=[str(env.dir / "policy.yml")])
    assert env.vh("init").returncode == 0
    return env


def test_key_list_marks_the_key_of_the_password_file(repo):
    listed = key_ids(repo)
    assert len(listed) == 1 and listed[0]["current"] is True and listed[0]["id"]
    text = repo.vh("key", "list")
    assert text.returncode == 0 and f"* {listed[0]['id'][:8]}" in text.stdout


def test_rotate_replaces_the_password_and_removes_the_old_key(repo):
    old_password = repo.password_file.read_text()
    old_copy = repo.dir / "old-password"
    old_copy.write_text(old_password)
    old_copy.chmod(0o600)
    before = key_ids(repo)
    result = repo.vh("key", "rotate")
    assert result.returncode == 0, result.stderr
    new_password = repo.password_file.read_text()
    assert new_password != old_password and len(new_password.strip()) >= 32
    st = os.stat(repo.password_file)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid()
    assert opens(repo, repo.password_file) and not opens(repo, old_copy)
    after = key_ids(repo)
    assert len(after) == 1 and after[0]["current"] and after[0]["id"] != before[0]["id"]
    assert f"new key: {after[0]['id']}" in result.stdout
    assert before[0]["id"][:8] in result.stdout
    assert not os.path.exists(keys.side_file(str(repo.password_file)))
    assert not os.path.exists(keys.new_file(str(repo.password_file)))
    record = json.loads((repo.state_dir / "last-key-rotate.json").read_text())
    assert record["status"] == "success" and record["details"]["new_key"] == after[0]["id"]
    for text in (result.stdout, result.stderr, json.dumps(record)):
        assert old_password.strip() not in text and new_password.strip() not in text
    assert repo.vh("backup").returncode == 0  # the new password works for everything


KILLER = textwrap.dedent("""
    import os, signal, sys
    from vhbackup import keys
    from vhbackup.policy import load_policy
    from vhbackup.restic import Restic
    policy = load_policy(sys.argv[1])
    restic = Restic(policy.restic_binary, policy.repository, policy.host, policy.source)
    def on_step(step):
        if step == sys.argv[2]:
            os.kill(os.getpid(), signal.SIGKILL)
    keys.rotate(restic, on_step=on_step)
""")


def restic_keys(env: Env) -> list[dict]:
    return json.loads(env.run_restic("key", "list", "--json").stdout)


def test_rotation_killed_at_every_step_stays_openable_and_a_rerun_finishes(repo):
    """One repository, a rotation killed after each step in turn, each finished by a rerun."""
    password_file = str(repo.password_file)
    side = keys.side_file(password_file)
    before = restic_keys(repo)[0]["id"]
    for step in keys.STEPS:
        password = repo.password_file.read_text()
        killed = subprocess.run([PYTHON, "-c", KILLER, str(repo.policy_file), step], capture_output=True,
                                text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
        assert killed.returncode == -9, f"{step}: {killed.stderr}"
        assert opens(repo, password_file) or (os.path.exists(side) and opens(repo, side)), \
            f"killed after {step}: neither {password_file} nor {side} opens the repository"
        if step != "done":
            assert os.path.exists(side), f"killed after {step}: the side file is gone before the end"
            assert stat.S_IMODE(os.stat(side).st_mode) == 0o600
        rerun = repo.vh("key", "rotate")
        assert rerun.returncode == 0, f"{step}: {rerun.stderr}"
        assert not os.path.exists(side) and not os.path.exists(keys.new_file(password_file)), step
        assert repo.password_file.read_text() != password, step
        listed = restic_keys(repo)  # opened with the password file: one key left, the new one
        assert len(listed) == 1 and listed[0]["current"] and listed[0]["id"] != before, \
            f"killed after {step}: keys left after the rerun: {listed}"
        before = listed[0]["id"]


def test_no_password_on_any_restic_command_line(repo, tmp_path):
    log = tmp_path / "argv.log"
    wrapper = tmp_path / "restic-wrapper"
    wrapper.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> {log}\nexec {repo.restic} \"$@\"\n")
    wrapper.chmod(0o755)
    repo.write_policy(paths=[str(repo.dir / "policy.yml")], restic_binary=str(wrapper))
    old_password = repo.password_file.read_text().strip()
    assert repo.vh("key", "list").returncode == 0
    result = repo.vh("key", "rotate")
    assert result.returncode == 0, result.stderr
    new_password = repo.password_file.read_text().strip()
    calls = log.read_text()
    assert "key add --new-password-file=" in calls and "key remove" in calls
    assert old_password not in calls and new_password not in calls


def test_a_separate_copy_for_the_systemd_units_is_refused_before_anything_changes(repo, tmp_path):
    copy = tmp_path / "unit-credential"
    copy.write_text(repo.password_file.read_text())
    copy.chmod(0o600)
    with pytest.raises(Exception, match="lock the units out"):
        keys.check_rotatable(str(repo.password_file), credential_source=str(copy))
    keys.check_rotatable(str(repo.password_file), credential_source=str(tmp_path / "absent"))


def test_rotate_refuses_systemds_read_only_copy(repo, tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "restic-password").write_text(repo.password_file.read_text())
    (creds / "restic-password").chmod(0o600)
    result = repo.vh("key", "rotate", env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert result.returncode == 2 and "systemd's read-only copy" in result.stderr, result.stderr
    assert len(key_ids(repo)) == 1


def test_rotate_waits_for_vhbackups_lock_and_dry_run_changes_nothing(repo):
    import fcntl

    password = repo.password_file.read_text()
    dry = repo.vh("key", "rotate", "--dry-run")
    assert dry.returncode == 0 and "would add a new key" in dry.stdout, dry.stderr
    repo.state_dir.mkdir(exist_ok=True)
    with open(repo.state_dir / "lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        busy = repo.vh("key", "rotate")
    assert busy.returncode == 75, busy.stderr
    assert repo.password_file.read_text() == password and len(key_ids(repo)) == 1
    assert not os.path.exists(keys.side_file(str(repo.password_file)))
