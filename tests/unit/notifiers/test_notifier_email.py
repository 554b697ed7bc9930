"""Email alerts delivered to a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import logging
import time

from tests.alert_sinks import closed_port
from vhbackup import alerts
from vhbackup.notifiers import smtp_email


def failure_event(**overrides) -> alerts.Event:
    values = dict(kind="failure", host="web01", title="backup failed", what="vhbackup backup run 20261128-020000-a1b2",
                  action="backup", error="no restic repository at /srv/repo; create it with 'vhbackup init'",
                  run_id="20261128-020000-a1b2", exit_code=1, log_lines=("02:00:00 info: backup run started",
                                                                         "02:00:01 error: it broke"),
                  next_steps=("vhbackup status", "vhbackup init"), facts={"duration_seconds": 1.5})
    values.update(overrides)
    return alerts.Event(**values)


def email_notify(port: int, extra: str = "") -> str:
    return (f"  email:\n    to: [ops@example.org, oncall@example.org]\n    from: backup@web01.example.org\n"
            f"    smtp: 127.0.0.1:{port}\n    user: alerts\n    password_file: {{dir}}/smtp-password\n{extra}")


def make(policy_factory, tmp_path, port: int, extra: str = ""):
    return policy_factory(email_notify(port, extra).replace("{dir}", str(tmp_path)))


def test_mail_carries_subject_body_and_logs_in_with_the_password_file(smtp, policy_factory, tmp_path, secret):
    policy = make(policy_factory, tmp_path, smtp.port)
    smtp_email.send(policy.notify.email, failure_event())
    [mail] = smtp.wait(1)
    assert smtp.logins == [("alerts", secret)]
    assert mail.recipients == ["ops@example.org", "oncall@example.org"]
    assert mail.sender == "backup@web01.example.org"
    assert mail.subject == "[vhbackup FAILURE] web01: backup failed"
    body = mail.body
    assert "Host:     web01" in body
    assert "no restic repository at /srv/repo" in body
    assert "02:00:01 error: it broke" in body  # the last lines of the log
    assert "  vhbackup init" in body  # what to run next
    assert "Run:      20261128-020000-a1b2" in body
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert secret.encode() not in mail.raw


def test_wrong_password_is_one_error_line_without_the_password(smtp, policy_factory, tmp_path, secret, logged):
    policy = make(policy_factory, tmp_path, smtp.port)
    (tmp_path / "smtp-password").write_text("not-the-password\n")
    [result] = alerts.deliver(policy, failure_event())
    assert not result.ok
    assert "535" in result.error or "uthentication" in result.error
    errors = [r for r in logged.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "email to ops@example.org" in errors[0].getMessage()
    assert secret not in logged.text and "not-the-password" not in logged.text
    assert smtp.mails == []


def test_starttls_against_a_server_without_it_fails_cleanly(smtp, policy_factory, tmp_path, logged):
    policy = make(policy_factory, tmp_path, smtp.port, "    starttls: true\n")
    [result] = alerts.deliver(policy, failure_event())
    assert not result.ok
    assert "STARTTLS" in result.error
    assert smtp.logins == []  # the password never went out over the unencrypted connection
    assert smtp.mails == []


def test_closed_port_is_one_error_line(policy_factory, tmp_path, logged):
    policy = make(policy_factory, tmp_path, closed_port())
    started = time.monotonic()
    [result] = alerts.deliver(policy, failure_event())
    assert time.monotonic() - started < 5
    assert not result.ok and result.error == "Connection refused"
    errors = [r.getMessage() for r in logged.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert "could not send the failure alert by email to ops@example.org" in errors[0]
    assert "notify.email" in errors[0]


def test_a_server_that_never_answers_costs_at_most_the_timeout(silent, policy_factory, tmp_path, logged):
    policy = make(policy_factory, tmp_path, silent.port, "    timeout: 1s\n")
    assert policy.notify.email.timeout == 1.0
    started = time.monotonic()
    [result] = alerts.deliver(policy, failure_event())
    elapsed = time.monotonic() - started
    assert not result.ok
    assert 0.9 <= elapsed <= 1.0 + alerts.GRACE + 0.5
    assert "no answer" in result.error


def test_describe_names_recipients_and_server_only(policy_factory, tmp_path):
    policy = make(policy_factory, tmp_path, 2525)
    assert smtp_email.describe(policy.notify.email) == \
        "email to ops@example.org, oncall@example.org via 127.0.0.1:2525"
    assert secret_free(repr(policy.notify.email))


def secret_free(text: str) -> bool:
    return "LEAKCHECK" not in text
