"""alerts.after_run: which runs alert, what the alert says, and what the state record keeps."""

from __future__ import annotations

import json
import logging
import time
from types import SimpleNamespace

import pytest

from tests.alert_sinks import closed_port
from vhbackup import alerts, outcome, state
from vhbackup.errors import ResticError
from vhbackup.outcome import Record


def both(smtp_port: int, http_url: str, on: str = "[failure]") -> str:
    return (f"  on: {on}\n  email:\n    to: [ops@example.org]\n    smtp: 127.0.0.1:{smtp_port}\n"
            f"    user: alerts\n    password_file: {{dir}}/smtp-password\n"
            f"  webhook:\n    url: {http_url}/hook/{{status}}\n")


def record(action="backup", status="failure", error="restic backup failed (exit 1): disk full", **kw) -> Record:
    r = Record(action=action, run_id="20261128-020000-a1b2", host="web01", started=time.time() - 60,
               status=status, exit_code={"failure": 1, "partial": 3}.get(status, 0), duration=42.0,
               error=error if status == "failure" else None, **kw)
    return r


def test_failed_run_sends_one_mail_and_one_post_and_records_it(smtp, http, policy_factory, tmp_path, secret,
                                                                logged):
    """Through outcome.recorded: the alert is decided first, then the record is saved once, with its outcome."""
    policy = policy_factory(both(smtp.port, http.url).replace("{dir}", str(tmp_path)))
    ctx = SimpleNamespace(policy=policy, run_id="20261128-020000-a1b2")
    with pytest.raises(ResticError):
        with outcome.recorded(ctx, "backup") as rec:
            rec.snapshot_ids, rec.services = ["0123456789abcdef"], ["hub"]
            logging.getLogger("vhbackup").info("dumping database shop")
            raise ResticError("restic backup failed (exit 1): disk full")
    [mail] = smtp.wait(1)
    [post] = http.requests
    assert mail.subject == "[vhbackup FAILURE] web01: backup failed"
    assert "disk full" in mail.body and "dumping database shop" in mail.body
    assert post.path == "/hook/fail"
    assert post.json["error"] == "restic backup failed (exit 1): disk full"
    assert post.json["facts"]["services"] == "hub"
    saved = state.read_object(state.last_run_path(policy.state_dir, "backup"))
    assert not (tmp_path / "state" / "running-backup.json").exists()
    assert saved["details"]["alert"]["delivered"] == ["email", "webhook"]
    assert saved["details"]["alert"]["event"] == "failure"
    everything = mail.raw.decode() + post.body.decode() + json.dumps(saved)
    assert secret not in everything


@pytest.mark.parametrize("on,status,sent", [
    ("[failure]", "success", False),
    ("[failure]", "partial", False),
    ("[failure, warning]", "partial", True),
    ("[success]", "success", True),
    ("[success]", "failure", False),
])
def test_notify_on_filters_by_kind(http, policy_factory, on, status, sent):
    policy = policy_factory(f"  on: {on}\n  webhook:\n    url: {http.url}/{{status}}\n")
    alerts.after_run(policy, record(status=status))
    assert len(http.requests) == (1 if sent else 0)
    if sent:
        assert http.requests[0].path == "/" + {"success": "success", "partial": "warning", "failure": "fail"}[status]


def test_restore_runs_do_not_alert(http, policy_factory):
    policy = policy_factory(f"  on: [failure, success]\n  webhook:\n    url: {http.url}/x\n")
    assert alerts.after_run(policy, record(action="restore")) is None
    assert http.requests == []


def test_undeliverable_alert_never_raises_and_is_one_line(policy_factory, logged):
    policy = policy_factory(f"  webhook:\n    url: http://127.0.0.1:{closed_port()}/x\n")
    summary = alerts.after_run(policy, record())
    errors = [r for r in logged.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert summary == {**summary, "delivered": [], "failed": ["webhook"]}


def test_render_subject_is_one_line_and_body_lists_next_steps(policy_factory):
    policy = policy_factory("  on: [failure]\n")
    rec = record(error="no restic repository at /srv/repo; create it")
    rec.details["error_kind"] = "RepositoryMissing"
    event = alerts.event_from_record(policy, rec, ("02:00:00 info: started",))
    subject, body = alerts.render(event)
    assert "\n" not in subject
    assert "vhbackup init" in body  # the hint for a missing repository
    assert "Last lines of the log:\n  02:00:00 info: started" in body
    assert "duration_seconds: 42.0" in body


def test_secrets_quoted_in_an_error_are_masked_in_the_alert(http, policy_factory, tmp_path, secret):
    """A tool's error line may quote a secret (here the SMTP password): the alert masks it."""
    policy = policy_factory(f"  webhook:\n    url: {http.url}/x\n  email:\n    to: [ops@example.org]\n"
                            f"    smtp: 127.0.0.1:{closed_port()}\n    user: alerts\n"
                            f"    password_file: {tmp_path}/smtp-password\n    timeout: 1s\n")
    rec = record(error=f"mysqldump: Got error: 1045 with password {secret}")
    alerts.after_run(policy, rec)
    [post] = http.requests
    assert secret not in post.body.decode()
    assert post.json["error"] == "mysqldump: Got error: 1045 with password ***"
