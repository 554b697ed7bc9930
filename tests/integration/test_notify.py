"""Alerts end to end: the vhbackup CLI, real restic, a real SMTP server and a real HTTP listener on 127.0.0.1."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.alert_sinks import Silent, closed_port
from tests.conftest import make_env, restic_for, write_secret

SMTP_USER = "alerts"


def notify_section(env, smtp_port: int, hook_url: str, secret: str, on=("failure",)) -> dict:
    return {
        "on": list(on),
        "email": {"to": ["ops@example.org"], "from": "vhbackup@web01.example.org", "smtp": f"127.0.0.1:{smtp_port}",
                  "user": SMTP_USER, "password_file": write_secret(env.dir / "smtp-password", secret)},
        "webhook": {"url": hook_url, "headers": {"Authorization": f"Bearer {secret}"}, "timeout": "2s"},
    }


def everything_written(env, result) -> str:
    """All that vhbackup left behind or printed: output plus every file in the state directory."""
    texts = [result.stdout, result.stderr]
    for path in env.state_dir.rglob("*"):
        if path.is_file():
            texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


def test_failed_backup_sends_one_mail_and_one_webhook(env, tmp_path, smtp, http, secret):
    data = tmp_path / "data"
    data.mkdir()
    (data / "file").write_text("x\n")
    env.write_policy(host="web01", paths=[str(data)],
                     notify=notify_section(env, smtp.port, f"{http.url}/ping/{secret}/{{status}}", secret))
    result = env.vh("backup")  # the repository was never initialised
    assert result.returncode == 1
    [mail] = smtp.wait(1)
    time.sleep(0.5)  # anything extra would have arrived by now
    assert len(smtp.mails) == 1 and len(http.requests) == 1
    assert smtp.logins == [(SMTP_USER, secret)]
    assert mail.recipients == ["ops@example.org"]
    assert mail.subject == "[vhbackup FAILURE] web01: backup failed"
    body = mail.body
    assert "Host:     web01" in body
    assert f"no restic repository at {env.repo_url}" in body
    assert re.search(r"Run:      \d{8}-\d{6}-[0-9a-f]{4}", body)
    assert "Last lines of the log:" in body and "backup run" in body
    assert "vhbackup init" in body
    post = http.requests[0]
    assert post.path == f"/ping/{secret}/fail"
    assert post.headers["Authorization"] == f"Bearer {secret}"
    payload = post.json
    assert payload["kind"] == "failure" and payload["action"] == "backup" and payload["host"] == "web01"
    assert payload["exit_code"] == 1
    assert payload["error"].startswith("no restic repository")
    assert payload["text"] == mail.subject
    record = json.loads((env.state_dir / "last-backup.json").read_text())
    assert record["details"]["alert"]["delivered"] == ["email", "webhook"]
    # the alerts were logged with their MESSAGE_ID-bearing line, and nothing leaks the secret
    assert "failure alert sent by email to ops@example.org" in result.stderr
    assert f"failure alert sent by webhook to http://127.0.0.1:{http.port}" in result.stderr
    assert secret not in everything_written(env, result)
    assert secret not in body and secret not in post.body.decode()


def test_undeliverable_alerts_are_one_line_each_and_keep_the_exit_code(tmp_path, secret):
    env = make_env(tmp_path, restic_for("0.18"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "file").write_text("x\n")
    hook = f"http://127.0.0.1:{closed_port()}/hook/{secret}"
    env.write_policy(paths=[str(data)], notify=notify_section(env, closed_port(), hook, secret,
                                                              on=("failure", "success")))
    failed = env.vh("backup")
    assert failed.returncode == 1
    errors = [ln for ln in failed.stderr.splitlines() if "could not send" in ln]
    assert len(errors) == 2, failed.stderr
    assert any("by email to ops@example.org via 127.0.0.1" in e and "Connection refused" in e for e in errors)
    assert any(f"by webhook to http://127.0.0.1:" in e for e in errors)
    assert secret not in everything_written(env, failed)
    # a successful backup stays a success (exit 0) when its success alert cannot be delivered
    assert env.vh("init").returncode == 0
    ok = env.vh("backup")
    assert ok.returncode == 0, ok.stderr
    assert len([ln for ln in ok.stderr.splitlines() if "could not send the success alert" in ln]) == 2
    record = json.loads((env.state_dir / "last-backup.json").read_text())
    assert record["status"] == "success"
    assert record["details"]["alert"]["failed"] == ["email", "webhook"]


def test_a_silent_receiver_costs_at_most_its_timeout(tmp_path, secret):
    env = make_env(tmp_path, restic_for("0.14"))
    data = tmp_path / "data"
    data.mkdir()
    silent_smtp, silent_http = Silent(), Silent()
    try:
        section = notify_section(env, silent_smtp.port, f"http://127.0.0.1:{silent_http.port}/x", secret)
        section["email"]["timeout"] = "2s"
        env.write_policy(paths=[str(data)], notify=section)
        started = time.monotonic()
        result = env.vh("backup")
        elapsed = time.monotonic() - started
    finally:
        silent_smtp.stop()
        silent_http.stop()
    assert result.returncode == 1
    errors = [ln for ln in result.stderr.splitlines() if "could not send" in ln]
    assert len(errors) == 2 and all("no answer within 2 s" in e for e in errors), result.stderr
    # both notifiers wait in parallel: about 2 s, not 4 s, plus restic and Python start-up
    assert elapsed < 2 + 2 + 6


def test_notify_test_sends_through_every_notifier(tmp_path, smtp, http, secret):
    env = make_env(tmp_path, restic_for("0.14"))
    env.write_policy(host="web01", notify=notify_section(env, smtp.port, f"{http.url}/{{status}}", secret))
    result = env.vh("notify", "--test")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "email: sent\nwebhook: sent\n"
    assert smtp.wait(1)[0].subject == "[vhbackup TEST] web01: test message"
    assert http.requests[0].path == "/test"
    # one notifier down: the test says which one and fails
    env.write_policy(host="web01", notify=notify_section(env, closed_port(), f"{http.url}/{{status}}", secret))
    broken = env.vh("notify", "--test")
    assert broken.returncode == 1
    assert "email: FAILED: Connection refused" in broken.stdout
    assert "webhook: sent" in broken.stdout


def test_notify_check_alerts_when_the_last_backup_is_too_old(tmp_path, http):
    env = make_env(tmp_path, restic_for("0.18"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "file").write_text("x\n")
    env.write_policy(paths=[str(data)], checks={"max_age": "6s", "min_free_space": "1MiB"},
                     notify={"on": ["failure"], "webhook": {"url": f"{http.url}/{{status}}"}})
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    assert env.vh("notify", "--check").returncode == 0
    assert http.requests == []  # fresh backup: OK, nothing to say
    started = json.loads((env.state_dir / "last-backup.json").read_text())["started"]
    time.sleep(max(0.0, started + 6.5 - time.time()))
    result = env.vh("notify", "--check")
    assert result.returncode == 0, result.stderr
    [post] = http.requests
    assert post.path == "/fail"
    assert post.json["action"] == "check"
    assert "more than checks.max_age" in post.json["error"]
    assert env.vh("notify", "--check").returncode == 0  # still stale: not sent again within a day
    assert len(http.requests) == 1


def test_notify_without_any_notifier_configured(tmp_path):
    env = make_env(tmp_path, restic_for("0.14"))
    env.write_policy()
    result = env.vh("notify", "--test")
    assert result.returncode == 1
    assert "no notifier is configured" in result.stderr


@pytest.mark.parametrize("notify_yaml,line,key,message", [
    ("notify:\n  on: [failure, sometimes]\n", 6, "notify.on", "unknown event 'sometimes'"),
    ("notify:\n  on: [failure]\n  email:\n    to: []\n", 8, "notify.email.to", "at least one recipient"),
    ("notify:\n  email:\n    from: me@example.org\n", 7, "notify.email.to", "missing"),
    ("notify:\n  email:\n    to: [ops@example.org]\n    smtp: localhost:smtp\n", 8, "notify.email.smtp", "host:port"),
    ("notify:\n  email:\n    to: [ops@example.org]\n    smtp: localhost:70000\n", 8, "notify.email.smtp", "1 to 65535"),
    ("notify:\n  email:\n    to: [ops@example.org]\n    smtp: 'mail host:25'\n", 8, "notify.email.smtp", "host:port"),
    ("notify:\n  email:\n    to: [ops@example.org]\n    user: alerts\n", 8, "notify.email.user", "go together"),
    ("notify:\n  webhook:\n    url: ftp://example.org/x\n", 7, "notify.webhook.url", "http://"),
    ("notify:\n  webhook:\n    url: http://example.org/x\n    timeout: 1h\n", 8, "notify.webhook.timeout",
     "at most"),
    ("notify:\n  webhook:\n    url: http://example.org/x\n    secret: abc\n", 8, "notify.webhook.secret",
     "unknown key"),
])
def test_bad_notify_settings_exit_78_with_file_line_and_key(tmp_path, notify_yaml, line, key, message):
    env = make_env(tmp_path, restic_for("0.14"))
    env.policy_file.write_text(
        f"repository:\n  url: {env.repo_url}\n  password_file: {env.password_file}\n"
        f"state_dir: {env.state_dir}\n" + notify_yaml)
    result = env.vh("notify", "--test")
    assert result.returncode == 78, result.stderr
    [error] = [ln for ln in result.stderr.splitlines() if ln.startswith("vhbackup: error:")]
    assert f"{env.policy_file}:{line}: {key}: " in error
    assert message in error


def test_plain_on_key_in_a_hand_written_policy(tmp_path, http):
    """YAML 1.1 reads a bare `on:` as a boolean; the policy must still take it as the key 'on'."""
    env = make_env(tmp_path, restic_for("0.14"))
    env.policy_file.write_text(
        f"repository:\n  url: {env.repo_url}\n  password_file: {env.password_file}\n"
        f"state_dir: {env.state_dir}\n"
        f"notify:\n  on: [failure, warning]\n  webhook:\n    url: {http.url}/x\n")
    result = env.vh("config", "check")
    assert result.returncode == 0, result.stderr


def test_an_alert_goes_out_although_the_repository_password_file_became_a_fifo(tmp_path, http):
    """notify never reads the repository's password for use, only to mask it: a FIFO there (an admin's
    mistake, or a credential helper that is not running) must not hang the OnFailure= alert for ever."""
    import os
    env = make_env(tmp_path, restic_for("0.14"))
    env.write_policy(host="web01", notify={"webhook": {"url": f"{http.url}/{{status}}", "timeout": "2s"}})
    env.password_file.unlink()
    os.mkfifo(env.password_file, 0o600)
    started = time.monotonic()
    result = env.vh("notify", "--test", timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "webhook: sent\n"
    assert time.monotonic() - started < 30
