"""A restic backup that stops making progress is stopped within repository.timeout and the run fails.

restic 0.14 waits for ever, printing nothing but its progress line, for a REST server that stopped
answering (here: rclone paused with SIGSTOP while restic holds its lock), and after a pack write that
failed on a full disk (tests/integration/test_truth_state.py). Nothing of the run may be saved, and
status must say CRITICAL until a good backup follows. The same for a dump:
tests/integration/databases/test_db_truth.py."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from tests.conftest import PYTHON, ROOT, make_env
from tests.servers import RestServer, SlowLink


@pytest.mark.parametrize("wrapped", [False, True], ids=["restic", "wrapper"])
def test_a_server_that_stops_answering_mid_backup_fails_the_run_within_the_timeout(tmp_path, restic_binary, wrapped):
    """``wrapper``: restic_binary is a script that runs restic as its child (no exec): the wrapper dies of
    SIGINT at once, and the restic it leaves behind, holding vhbackup's pipes, must be stopped too."""
    root = tmp_path / "rest"
    root.mkdir()
    server = RestServer(root)
    try:
        env = make_env(tmp_path, restic_binary, server.url + "repo/")
        if wrapped:
            wrapper = tmp_path / "restic-wrapper"
            wrapper.write_text(f'#!/bin/sh\n{restic_binary} "$@"\n')
            wrapper.chmod(0o755)
        data = tmp_path / "data"
        data.mkdir()
        env.write_policy(services={"hub": {"paths": [str(data)]}}, repository={"timeout": "5s"},
                         **({"restic_binary": str(wrapper)} if wrapped else {}))
        assert env.vh("init").returncode == 0
        locks = root / "repo" / "locks"
        for _attempt in range(5):
            (data / "f.bin").write_bytes(os.urandom(3 << 20))  # below one pack: uploaded only at the end
            backup = subprocess.Popen([PYTHON, "-m", "vhbackup", "-c", str(env.policy_file), "backup"],
                                      env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
            deadline = time.monotonic() + 60
            while not any(locks.glob("*")) and backup.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            server.pause()
            paused = time.monotonic()
            try:
                _, err = backup.communicate(timeout=120)
            finally:
                server.resume()
            if backup.returncode != 0:
                break
            time.sleep(0.5)  # it ended before the server stopped answering: once more
        else:
            raise AssertionError("every backup ended before the server could be paused")
        waited = time.monotonic() - paused
        last = err.strip().splitlines()[-1]
        assert backup.returncode == 1, err
        assert "stopped making progress" in last or "did not answer for 5 s" in last, err
        # timeout + SIGKILL grace (twice with a wrapper: it, then the restic it left) + a busy machine's slack
        assert waited < 5 + 15 * (2 if wrapped else 1) + 30, f"the run ended {waited:.0f} s after the server stopped"
        run_id = re.search(r"backup run (\S+) ", err).group(1)
        listed = env.run_restic("snapshots", "--json", "--tag", f"run:{run_id}")
        assert listed.stdout.strip() in ("[]", "null"), "nothing of the stopped run may be saved"
        assert env.vh("status").returncode == 2, "status must be CRITICAL after the failed run"
        assert env.vh("backup").returncode == 0  # the server answers again: the next run works
        assert env.vh("status").returncode == 0
    finally:
        server.kill()


def test_a_repository_behind_a_slow_link_is_not_stopped(tmp_path, restic_binary):
    """restic hands the kernel hundreds of KB at once and waits while a slow link carries them: its own
    counters stay flat for longer than the timeout, its socket's send queue does not."""
    root = tmp_path / "rest"
    root.mkdir()
    server = RestServer(root)
    link = SlowLink(server.port, 100_000)  # the upload below takes about 20 s
    try:
        env = make_env(tmp_path, restic_binary, f"rest:http://127.0.0.1:{link.port}/repo/")
        data = tmp_path / "data"
        data.mkdir()
        env.write_policy(services={"hub": {"paths": [str(data)]}}, repository={"timeout": "5s"})
        assert env.vh("init").returncode == 0
        (data / "f.bin").write_bytes(os.urandom(2 << 20))
        started = time.monotonic()
        result = env.vh("backup")
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - started > 10, "the link was not slow: this test proves nothing"
    finally:
        link.close()
        server.kill()
