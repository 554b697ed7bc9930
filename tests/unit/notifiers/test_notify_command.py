"""vhbackup notify --unit (OnFailure= handler, with an injected journal) and --check (with health states)."""

from __future__ import annotations

import time

import pytest

from vhbackup import alerts, health_alerts, journal, state
from vhbackup import log as vlog
from vhbackup.commands import notify
from vhbackup.context import Context
from vhbackup.errors import UsageError
from vhbackup.health import Health

INVOCATION = "5f0c3a4b9d2e4c1f8a7b6c5d4e3f2a1b"


def both(tmp_path, smtp_port: int, http_url: str, on: str = "[failure]") -> str:
    return (f"  on: {on}\n  email:\n    to: [ops@example.org]\n    smtp: 127.0.0.1:{smtp_port}\n"
            f"    user: alerts\n    password_file: {tmp_path}/smtp-password\n"
            f"  webhook:\n    url: {http_url}/hook/{{status}}\n")


def crash_entries() -> list[dict]:
    """A backup that was killed before vhbackup could record or report anything."""
    t = time.time()
    return [
        {"MESSAGE": "backup run 20261128-020000-a1b2 started", "PRIORITY": "6", "SYSLOG_IDENTIFIER": "vhbackup",
         "MESSAGE_ID": vlog.RUN_STARTED, "VHBACKUP_RUN_ID": "20261128-020000-a1b2", "VHBACKUP_ACTION": "backup",
         "__REALTIME_TIMESTAMP": str(t - 5)},
        {"MESSAGE": "dumping database shop", "PRIORITY": "6", "SYSLOG_IDENTIFIER": "vhbackup",
         "VHBACKUP_RUN_ID": "20261128-020000-a1b2", "VHBACKUP_ACTION": "backup", "__REALTIME_TIMESTAMP": str(t - 4)},
        {"MESSAGE": "vhbackup-backup.service: Main process exited, code=killed, status=9/KILL", "PRIORITY": "5",
         "SYSLOG_IDENTIFIER": "systemd", "INVOCATION_ID": INVOCATION, "UNIT": "vhbackup-backup.service",
         "__REALTIME_TIMESTAMP": str(t - 1)},
        {"MESSAGE": "vhbackup-backup.service: Failed with result 'signal'.", "PRIORITY": "4",
         "SYSLOG_IDENTIFIER": "systemd", "INVOCATION_ID": INVOCATION, "__REALTIME_TIMESTAMP": str(t)},
    ]


def reported_entries(notifiers=("email", "webhook")) -> list[dict]:
    """A backup that failed cleanly and sent its own alert."""
    base = {"SYSLOG_IDENTIFIER": "vhbackup", "VHBACKUP_RUN_ID": "20261128-030000-beef", "VHBACKUP_ACTION": "backup"}
    entries = [{**base, "MESSAGE": "backup run failed after 1 s: no restic repository", "PRIORITY": "3",
                "MESSAGE_ID": vlog.RUN_FAILED}]
    for name in notifiers:
        entries.append({**base, "MESSAGE": f"failure alert sent by {name}", "PRIORITY": "6",
                        "MESSAGE_ID": vlog.ALERT_SENT, "VHBACKUP_NOTIFIER": name, "VHBACKUP_EVENT": "failure"})
    return entries


def run_unit(policy, entries, seen: list | None = None) -> int:
    def lookup(unit):
        return INVOCATION

    def reader(unit, invocation, limit):
        if seen is not None:
            seen.append((unit, invocation, limit))
        return entries

    return notify.unit_failed(Context(policy=policy), "vhbackup-backup.service", lookup=lookup, reader=reader)


def test_crash_before_vhbackup_reported_is_alerted_with_the_journal_lines(smtp, http, policy_factory, tmp_path,
                                                                         secret):
    policy = policy_factory(both(tmp_path, smtp.port, http.url))
    seen = []
    assert run_unit(policy, crash_entries(), seen) == 0
    assert seen == [("vhbackup-backup.service", INVOCATION, journal.JOURNAL_LINES)]
    [mail] = smtp.wait(1)
    [post] = http.requests
    assert mail.subject == "[vhbackup FAILURE] web01: vhbackup-backup.service failed"
    assert "Main process exited, code=killed, status=9/KILL" in mail.body
    assert "vhbackup: dumping database shop" in mail.body
    assert "systemctl status vhbackup-backup.service" in mail.body
    body = post.json
    assert post.path == "/hook/fail"
    assert body["unit"] == "vhbackup-backup.service"
    assert body["run_id"] == "20261128-020000-a1b2"
    assert body["action"] == "backup"
    assert body["error"] == "vhbackup-backup.service: Main process exited, code=killed, status=9/KILL"
    assert secret not in mail.raw.decode() + post.body.decode()


def test_failure_the_run_already_reported_is_not_sent_again(smtp, http, policy_factory, tmp_path):
    policy = policy_factory(both(tmp_path, smtp.port, http.url))
    assert run_unit(policy, reported_entries()) == 0
    assert smtp.mails == [] and http.requests == []


def test_only_the_notifier_that_failed_during_the_run_is_tried_again(smtp, http, policy_factory, tmp_path):
    policy = policy_factory(both(tmp_path, smtp.port, http.url))
    assert run_unit(policy, reported_entries(notifiers=("email",))) == 0
    assert smtp.mails == []
    assert len(http.requests) == 1
    assert http.requests[0].json["error"] == "backup run failed after 1 s: no restic repository"


def test_state_record_of_the_same_run_counts_as_reported(http, policy_factory, tmp_path):
    """The journal lost the ALERT_SENT lines (rate limit, rotation): the run's state record still tells."""
    policy = policy_factory(f"  webhook:\n    url: {http.url}/x\n")
    entries = [e for e in reported_entries() if e.get("MESSAGE_ID") != vlog.ALERT_SENT]
    state.write_json_atomic(state.last_run_path(policy.state_dir, "backup"), {
        "action": "backup", "run_id": "20261128-030000-beef", "status": "failure", "started": time.time(),
        "details": {"alert": {"event": "failure", "delivered": ["webhook"], "failed": []}}})
    assert run_unit(policy, entries) == 0
    assert http.requests == []
    # a state record of an older run does not count
    state.write_json_atomic(state.last_run_path(policy.state_dir, "backup"), {
        "action": "backup", "run_id": "20261127-030000-0000", "status": "failure", "started": time.time(),
        "details": {"alert": {"event": "failure", "delivered": ["webhook"], "failed": []}}})
    assert run_unit(policy, entries) == 0
    assert len(http.requests) == 1


def test_empty_journal_still_alerts(http, policy_factory):
    policy = policy_factory(f"  webhook:\n    url: {http.url}/x\n")
    assert run_unit(policy, []) == 0
    assert "journalctl -u vhbackup-backup.service" in http.requests[0].json["error"]


def test_no_alert_when_failures_are_not_wanted(http, policy_factory):
    policy = policy_factory(f"  on: [success]\n  webhook:\n    url: {http.url}/x\n")
    assert run_unit(policy, crash_entries()) == 0
    assert http.requests == []


@pytest.mark.parametrize("unit", ["", "-x", "a b", "foo;rm -rf /", "x" * 300])
def test_bad_unit_names_are_refused(policy_factory, unit):
    policy = policy_factory("  on: [failure]\n")
    with pytest.raises(UsageError):
        notify.unit_failed(Context(policy=policy), unit, lookup=lambda u: "", reader=lambda *a: [])


# --- --check -----------------------------------------------------------------------------

def health(level: str, summary: str = "", **facts) -> Health:
    code = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}[level]
    return Health(level, code, summary or f"{level}: something", facts)


def run_check(policy, result: Health, now: float) -> int:
    return health_alerts.check(policy, now=now, evaluate=lambda p, now=None: result)


def test_check_alerts_once_per_level_and_repeats_daily(http, policy_factory):
    policy = policy_factory(f"  on: [failure, warning, success]\n  webhook:\n    url: {http.url}/{{status}}\n")
    now = time.time()
    stale = health("CRITICAL", "CRITICAL: last successful backup is 2 d old, more than checks.max_age 1 d",
                   problems=["last successful backup is 2 d old"])
    assert run_check(policy, stale, now) == 0
    assert [r.path for r in http.requests] == ["/fail"]
    body = http.requests[0].json
    assert body["error"].startswith("CRITICAL: last successful backup is 2 d old")
    assert body["facts"]["problems"] == "last successful backup is 2 d old"
    assert run_check(policy, stale, now + 3600) == 0  # an hour later: already told
    assert len(http.requests) == 1
    assert run_check(policy, health("WARNING", "WARNING: only 100 MiB free"), now + 7200) == 0  # changed
    assert http.requests[-1].path == "/warning"
    assert run_check(policy, health("WARNING"), now + 7200 + health_alerts.CHECK_REPEAT + 1) == 0  # a day later
    assert len(http.requests) == 3
    assert run_check(policy, health("OK", "OK: last backup 1 h ago"), now + 2 * health_alerts.CHECK_REPEAT) == 0
    assert http.requests[-1].path == "/success"  # recovered
    assert run_check(policy, health("OK"), now + 2 * health_alerts.CHECK_REPEAT + 3600) == 0
    assert len(http.requests) == 4


def test_check_does_not_repeat_a_failure_the_run_already_reported(http, policy_factory):
    policy = policy_factory(f"  webhook:\n    url: {http.url}/{{status}}\n")
    now = time.time()
    state.write_json_atomic(state.last_run_path(policy.state_dir, "backup"), {
        "action": "backup", "run_id": "20261128-020000-a1b2", "status": "failure", "started": now - 3600,
        "details": {"alert": {"event": "failure", "delivered": ["webhook"], "failed": [], "time": now - 3500}}})
    assert run_check(policy, health("CRITICAL", "CRITICAL: last backup failed"), now) == 0
    assert http.requests == []


def test_check_with_warnings_filtered_out_sends_nothing(http, policy_factory):
    policy = policy_factory(f"  on: [failure]\n  webhook:\n    url: {http.url}/x\n")
    assert run_check(policy, health("WARNING", "WARNING: low space"), time.time()) == 0
    assert http.requests == []


def test_check_with_the_real_health_of_an_empty_state_dir(http, policy_factory):
    policy = policy_factory(f"  on: [failure, warning]\n  webhook:\n    url: {http.url}/{{status}}\n")
    assert health_alerts.check(policy) == 0
    [request] = http.requests
    assert request.path == "/warning"
    assert request.json["error"].startswith("UNKNOWN: no backup recorded yet")


def test_test_message_goes_through_every_notifier(smtp, http, policy_factory, tmp_path, capsys):
    policy = policy_factory(both(tmp_path, smtp.port, http.url, on="[failure]"))
    assert notify.send_test(Context(policy=policy)) == 0
    [mail] = smtp.wait(1)
    assert mail.subject == "[vhbackup TEST] web01: test message"
    assert http.requests[0].path == "/hook/test"
    assert capsys.readouterr().out == "email: sent\nwebhook: sent\n"


def test_event_kinds_are_the_documented_ones():
    assert set(alerts.KINDS) == {"failure", "warning", "success", "test"}


def test_env_file_secrets_in_the_journal_are_masked_although_notify_never_loads_the_env_file(http, tmp_path):
    """notify loads the policy without the repository's credentials; the env file's secrets are secrets still."""
    from tests.conftest import write_secret
    from vhbackup.policy import load_policy

    aws = "AKIA-leaked-secret-value-0123456789"
    write_secret(tmp_path / "restic-password", "p" * 40)
    env_file = write_secret(tmp_path / "s3.env", f"AWS_ACCESS_KEY_ID=AKIAEXAMPLE\nAWS_SECRET_ACCESS_KEY={aws}")
    path = tmp_path / "policy.yml"
    path.write_text(f"repository:\n  url: s3:127.0.0.1/bucket\n  password_file: {tmp_path}/restic-password\n"
                    f"  env_file: {env_file}\nstate_dir: {tmp_path}/state\npaths: [/etc/hostname]\n"
                    f"notify:\n  webhook:\n    url: {http.url}/x\n")
    policy = load_policy(path, repository_credentials=False)
    assert policy.repository.env == {}
    entries = crash_entries()
    entries.insert(1, {"MESSAGE": f"restic: Fatal: s3 said InvalidAccessKeyId for key {aws}", "PRIORITY": "3",
                       "SYSLOG_IDENTIFIER": "vhbackup", "VHBACKUP_RUN_ID": "20261128-020000-a1b2"})
    assert run_unit(policy, entries) == 0
    [post] = http.requests
    assert aws not in post.body.decode()
    assert "InvalidAccessKeyId for key ***" in post.body.decode()


# --- monitor pings from the OnFailure= handler -------------------------------------------

def with_monitor(http_url: str, notify: str = "  on: [failure]\n") -> str:
    """A notify section followed by a top-level monitor section (policy_factory appends its text last)."""
    return f"{notify}monitor:\n  healthchecks:\n    url: {http_url}/hc/5f0c3a4b-check\n    timeout: 3s\n"


def test_a_crash_pings_fail_with_the_journal_lines_even_without_notifiers(http, policy_factory):
    policy = policy_factory(with_monitor(http.url))
    assert run_unit(policy, crash_entries()) == 0
    [ping] = http.requests
    assert ping.path == "/hc/5f0c3a4b-check/fail"
    body = ping.body.decode()
    assert body.startswith("vhbackup-backup.service failed on web01: vhbackup-backup.service: Main process exited")
    assert "dumping database shop" in body


def test_a_fail_the_run_pinged_itself_is_not_pinged_again(http, policy_factory):
    policy = policy_factory(with_monitor(http.url))
    state.write_json_atomic(state.last_run_path(policy.state_dir, "backup"), {
        "action": "backup", "run_id": "20261128-030000-beef", "status": "failure", "started": time.time(),
        "details": {"monitor": {"event": "fail", "sent": ["healthchecks"], "failed": []}}})
    assert run_unit(policy, reported_entries(notifiers=())) == 0
    assert http.requests == []
    # a record of another run does not count: this invocation's run never pinged its end
    assert run_unit(policy, crash_entries()) == 0
    assert [r.path for r in http.requests] == ["/hc/5f0c3a4b-check/fail"]


def test_a_monitor_that_is_down_makes_the_handler_fail_but_costs_at_most_its_timeout(policy_factory):
    from tests.alert_sinks import Silent
    silent = Silent()
    try:
        policy = policy_factory(with_monitor(f"http://127.0.0.1:{silent.port}"))
        started = time.monotonic()
        assert run_unit(policy, crash_entries()) == 1
        assert time.monotonic() - started < 3 + 1.5
    finally:
        silent.stop()


def test_a_monitor_the_run_could_not_reach_gets_the_fail_ping_from_the_handler(http, policy_factory):
    policy = policy_factory(with_monitor(http.url))
    state.write_json_atomic(state.last_run_path(policy.state_dir, "backup"), {
        "action": "backup", "run_id": "20261128-030000-beef", "status": "failure", "started": time.time(),
        "details": {"monitor": {"event": "fail", "sent": [], "failed": ["healthchecks"]}}})
    assert run_unit(policy, reported_entries(notifiers=())) == 0
    assert [r.path for r in http.requests] == ["/hc/5f0c3a4b-check/fail"]
