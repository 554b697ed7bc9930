"""Start, success and fail pings (``monitor:``) end to end: the CLI, real restic, a real HTTP server on 127.0.0.1.

Pings do not depend on restic's version (they go out before and after the
run's work), so these tests use one version; the spot check and the run
record flow they hook into are tested on both elsewhere.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from tests.alert_sinks import Silent, closed_port
from tests.conftest import PYTHON, ROOT, make_env, restic_for, write_secret


def hc_path(check: str, status: str) -> str:
    return {"start": f"/hc/{check}/start", "success": f"/hc/{check}", "fail": f"/hc/{check}/fail"}[status]


@pytest.fixture
def world(tmp_path, http, secret):
    """A policy with every kind of monitor on the sink, a credential (in the env file) that the log will quote."""
    env = make_env(tmp_path, restic_for("0.18"))
    check = str(uuid.uuid4())
    data = tmp_path / "data"
    data.mkdir()
    (data / "file").write_text("x\n")
    env_file = write_secret(tmp_path / "restic.env", f"AWS_SECRET_ACCESS_KEY={secret}")
    url_file = write_secret(tmp_path / "hc-url", f"{http.url}/hc/{check}")
    sections = dict(
        host="web01",
        paths=[str(data), {"path": f"/nonexistent/{secret}", "optional": True}],
        retention={"last": 3},
        repository={"env_file": env_file},
        monitor={
            "healthchecks": {"url_file": url_file, "timeout": "5s"},
            "ntfy": {"url": f"{http.url}/ntfy/topic-{check}", "actions": ["backup"]},
            "uptime_kuma": {"url": f"{http.url}/api/push/kuma{check[:8]}?status=up&msg=OK&ping=",
                            "actions": ["backup"]},
            "url": {"url": f"{http.url}/any/{{host}}/{{action}}/{{status}}?k={check}", "method": "GET",
                    "actions": ["backup"]},
        },
    )
    env.write_policy(**sections)
    assert env.vh("init").returncode == 0
    return env, check, sections, data


def hc(http, check):
    return [r for r in http.requests if r.path.startswith(f"/hc/{check}")]


def everything_written(env, result) -> str:
    texts = [result.stdout, result.stderr]
    for path in env.state_dir.rglob("*"):
        if path.is_file():
            texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


def test_start_and_success_pings_for_backup_prune_verify_and_drill(world, http, secret):
    env, check, _, _ = world
    shown = env.vh("config", "check")
    assert shown.returncode == 0, shown.stderr
    assert f"monitor: healthchecks at http://127.0.0.1:{http.port} (backup, prune, verify, drill; timeout 5 s, " \
           f"2 retries)" in shown.stdout
    assert check not in shown.stdout + shown.stderr and check[:8] not in shown.stdout
    for action in ("backup", "prune", "verify", "drill"):
        before = len(hc(http, check))
        result = env.vh(action)
        assert result.returncode == 0, result.stderr
        got = hc(http, check)[before:]
        assert [r.path for r in got] == [hc_path(check, "start"), hc_path(check, "success")], (action, got)
        assert all(r.method == "POST" for r in got)
        body = got[1].body.decode()
        assert f"{action} run" in body and "finished: success" in body  # the log's last lines
        assert len(got[1].body) <= 10_000
        record = json.loads((env.state_dir / f"last-{action}.json").read_text())
        assert record["details"]["monitor"]["sent"][0] == "healthchecks"
        assert check not in everything_written(env, result)
        # the log on stderr quotes the path named in the policy as it is; the ping's body masks it
        assert secret not in everything_written(env, result).replace(result.stderr, "")
        assert f"success ping sent to healthchecks at http://127.0.0.1:{http.port}" in result.stderr
    # the backup's log quoted the credential (the missing optional path's name): masked in the ping's body
    backup_end = [r for r in http.requests if r.path == hc_path(check, "success")][0]
    assert "/nonexistent/***" in backup_end.body.decode() and secret not in backup_end.body.decode()
    # the other kinds, for the backup only (actions: [backup])
    ntfy = [r for r in http.requests if r.path.startswith("/ntfy/")]
    assert [r.headers["Priority"] for r in ntfy] == ["1", "2"]
    assert "succeeded" in ntfy[1].headers["Title"] and "web01" in ntfy[1].headers["Title"]
    kuma = [r for r in http.requests if r.path.startswith("/api/push/")]
    assert len(kuma) == 1 and kuma[0].method == "GET"
    assert "status=up" in kuma[0].path and "msg=vhbackup+backup+run" in kuma[0].path
    generic = [r.path for r in http.requests if r.path.startswith("/any/")]
    assert generic == [f"/any/web01/backup/start?k={check}", f"/any/web01/backup/success?k={check}"]


def test_a_failed_run_pings_start_then_fail_with_the_error(world, http, secret, tmp_path):
    env, check, sections, _ = world
    env.write_policy(**{**sections, "repository": {**sections["repository"], "url": str(tmp_path / "missing")}})
    result = env.vh("backup")
    assert result.returncode == 1
    got = hc(http, check)
    assert [r.path for r in got] == [hc_path(check, "start"), hc_path(check, "fail")]
    body = got[1].body.decode()
    assert "no restic repository" in body and secret not in body
    kuma = [r for r in http.requests if r.path.startswith("/api/push/")]
    assert "status=down" in kuma[0].path
    assert "fail" in [r.path for r in http.requests if r.path.startswith("/any/")][-1]
    # verify and drill of the missing repository fail too, and say so
    for action in ("verify", "drill", "prune"):
        before = len(hc(http, check))
        assert env.vh(action).returncode != 0
        assert [r.path for r in hc(http, check)[before:]] == [hc_path(check, "start"), hc_path(check, "fail")]


def test_one_check_per_action_from_a_list_of_one_kind(tmp_path, http):
    env = make_env(tmp_path, restic_for("0.18"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "file").write_text("x\n")
    backup_check, verify_check = str(uuid.uuid4()), str(uuid.uuid4())
    env.write_policy(paths=[str(data)], monitor={"healthchecks": [
        {"url": f"{http.url}/hc/{backup_check}", "actions": ["backup"]},
        {"url": f"{http.url}/hc/{verify_check}", "actions": ["verify"]},
    ]})
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    assert env.vh("verify").returncode == 0
    assert [r.path for r in http.requests] == [hc_path(backup_check, "start"), hc_path(backup_check, "success"),
                                               hc_path(verify_check, "start"), hc_path(verify_check, "success")]
    record = json.loads((env.state_dir / "last-verify.json").read_text())
    assert record["details"]["monitor"]["sent"] == ["healthchecks#2"]


def test_a_hanging_or_refusing_monitor_delays_the_run_by_at_most_its_timeout(tmp_path):
    env = make_env(tmp_path, restic_for("0.18"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "file").write_text("x\n")
    env.write_policy(paths=[str(data)])
    assert env.vh("init").returncode == 0
    started = time.monotonic()
    assert env.vh("backup").returncode == 0
    baseline = time.monotonic() - started
    silent = Silent()
    try:
        env.write_policy(paths=[str(data)], monitor={
            "healthchecks": {"url": f"http://127.0.0.1:{silent.port}/hc/x", "timeout": "3s", "retries": 5},
            "url": {"url": f"http://127.0.0.1:{closed_port()}/{{status}}", "timeout": "3s", "retries": 5},
        })
        started = time.monotonic()
        result = env.vh("backup")
        elapsed = time.monotonic() - started
    finally:
        silent.stop()
    assert result.returncode == 0, result.stderr
    record = json.loads((env.state_dir / "last-backup.json").read_text())
    assert record["status"] == "success"
    assert record["details"]["monitor"] == {**record["details"]["monitor"], "sent": [],
                                            "failed": ["healthchecks", "url"]}
    assert "could not send the success ping to healthchecks at http://127.0.0.1" in result.stderr
    assert "no answer within 3 s" in result.stderr
    assert "Connection refused" in result.stderr
    print(f"baseline {baseline:.1f} s, with a hanging and a refusing monitor {elapsed:.1f} s")
    # both monitors at once, start and end within one timeout (3 s) + 1 s grace, plus generous slack
    assert elapsed - baseline < 3 + 1 + 4, (elapsed, baseline)


def test_the_onfailure_handler_pings_fail_after_a_sigkilled_backup(tmp_path, http):
    env = make_env(tmp_path, restic_for("0.18"))
    check = str(uuid.uuid4())
    data = tmp_path / "data"
    data.mkdir()
    (data / "file").write_text("x\n")
    slow = tmp_path / "slow-restic"
    slow.write_text(f'#!/bin/sh\ncase " $* " in *" backup "*) sleep 60;; esac\nexec {env.restic} "$@"\n')
    slow.chmod(0o755)
    env.write_policy(paths=[str(data)], restic_binary=str(slow),
                     monitor={"healthchecks": {"url": f"{http.url}/hc/{check}"}})
    assert env.vh("init").returncode == 0
    full_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    backup = subprocess.Popen([PYTHON, "-m", "vhbackup", "-c", str(env.policy_file), "backup"], env=full_env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        http.wait(1)
        deadline = time.monotonic() + 30
        while not (env.state_dir / "running-backup.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        backup.send_signal(signal.SIGKILL)
        backup.wait(timeout=10)
    finally:
        if backup.poll() is None:
            backup.kill()
    assert [r.path for r in hc(http, check)] == [hc_path(check, "start")]
    result = env.vh("notify", "--unit", "vhbackup-backup.service")
    assert result.returncode == 0, result.stderr
    got = hc(http, check)
    assert [r.path for r in got] == [hc_path(check, "start"), hc_path(check, "fail")]
    assert got[1].body.decode().startswith("vhbackup-backup.service failed on ")
    assert check not in result.stderr
    # a unit that is not a monitored run pings nothing
    assert env.vh("notify", "--unit", "vhbackup-check.service").returncode == 0
    assert len(hc(http, check)) == 2


@pytest.mark.parametrize("monitor_yaml, line, key, message", [
    ("monitor:\n  healthchecks:\n    url: ftp://x/y\n", 3, "monitor.healthchecks.url", "http:// or https://"),
    ("monitor:\n  url:\n    url: https://x/{action}\n", 3, "monitor.url.url", "{status} placeholder"),
    ("monitor:\n  ntfy:\n    url: https://x/{job}\n", 3, "monitor.ntfy.url", "unknown placeholder {job}"),
    ("monitor:\n  healthchecks:\n    url: https://x/y\n    retries: 9\n", 4, "monitor.healthchecks.retries",
     "at most 5"),
    ("monitor:\n  healthchecks:\n    url: https://x/y\n    timeout: 5min\n", 4, "monitor.healthchecks.timeout",
     "at most 1 min"),
    ("monitor:\n  healthchecks:\n    url: https://x/y\n    actions: [restore]\n", 4,
     "monitor.healthchecks.actions", "unknown action 'restore'"),
    ("monitor:\n  pingdom:\n    url: https://x/y\n", 2, "monitor.pingdom", "unknown key"),
    ("monitor:\n  healthchecks: []\n", 2, "monitor.healthchecks", "at least one"),
    ("monitor:\n  healthchecks:\n    - url: https://x/y\n    - url: https://x/{host}\n      retries: -1\n", 5,
     "monitor.healthchecks[1].retries", "integer >= 0"),
])
def test_bad_monitor_settings_exit_78_with_file_line_and_key(tmp_path, monitor_yaml, line, key, message):
    env = make_env(tmp_path, restic_for("0.18"))
    env.write_policy(paths=["/etc/hostname"])
    env.policy_file.write_text(env.policy_file.read_text() + monitor_yaml)
    base = len(env.policy_file.read_text().splitlines()) - len(monitor_yaml.splitlines())
    result = env.vh("config", "check")
    assert result.returncode == 78, result.stderr
    assert f"{env.policy_file}:{base + line}: {key}:" in result.stderr and message in result.stderr, result.stderr
