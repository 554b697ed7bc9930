"""Webhook alerts delivered to a real HTTP listener on 127.0.0.1."""

from __future__ import annotations

import logging
import time

from tests.alert_sinks import closed_port
from vhbackup import alerts
from vhbackup.notifiers import webhook

from test_notifier_email import failure_event


def test_post_carries_the_facts_as_json_with_headers_and_status_in_the_url(http, policy_factory, secret):
    policy = policy_factory(f"  webhook:\n    url: {http.url}/ping/{secret}/{{status}}?code={{exit_status}}\n"
                            f"    headers:\n      X-Api-Key: header-{secret}\n")
    webhook.send(policy.notify.webhook, failure_event(exit_code=3))
    [request] = http.requests
    assert request.path == f"/ping/{secret}/fail?code=3"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Api-Key"] == f"header-{secret}"
    body = request.json
    assert body["kind"] == "failure" and body["status"] == "fail"
    assert body["host"] == "web01"
    assert body["action"] == "backup"
    assert body["run_id"] == "20261128-020000-a1b2"
    assert body["error"].startswith("no restic repository")
    assert body["log_lines"][-1] == "02:00:01 error: it broke"
    assert body["text"] == "[vhbackup FAILURE] web01: backup failed"
    assert secret not in request.body.decode()


def test_status_placeholders_for_each_kind(http, policy_factory):
    policy = policy_factory(f"  webhook:\n    url: {http.url}/{{status}}/{{exit_status}}\n")
    for kind in ("success", "warning", "failure", "test"):
        webhook.send(policy.notify.webhook, failure_event(kind=kind, exit_code=3 if kind == "warning" else 1))
    assert [r.path for r in http.requests] == ["/success/0", "/warning/3", "/fail/1", "/test/0"]


def test_url_from_a_secret_file(http, policy_factory, tmp_path, secret):
    (tmp_path / "hook-url").write_text(f"{http.url}/hooks/{secret}\n")
    (tmp_path / "hook-url").chmod(0o600)
    policy = policy_factory(f"  webhook:\n    url_file: {tmp_path}/hook-url\n")
    assert secret not in repr(policy)
    webhook.send(policy.notify.webhook, failure_event())
    assert http.requests[0].path == f"/hooks/{secret}"


def test_log_lines_never_show_the_url_token(http, policy_factory, secret, logged):
    policy = policy_factory(f"  webhook:\n    url: {http.url}/hooks/{secret}\n")
    [result] = alerts.deliver(policy, failure_event())
    assert result.ok
    assert f"webhook to http://127.0.0.1:{http.port}" in logged.text
    assert secret not in logged.text


def test_http_error_status_is_one_error_line(policy_factory, logged, secret):
    from tests.alert_sinks import HttpSink

    sink = HttpSink(status=500)
    try:
        policy = policy_factory(f"  webhook:\n    url: {sink.url}/hooks/{secret}\n")
        [result] = alerts.deliver(policy, failure_event())
    finally:
        sink.stop()
    assert not result.ok and "500" in result.error
    errors = [r.getMessage() for r in logged.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and secret not in errors[0]


def test_closed_port_and_silent_listener_are_bounded(silent, policy_factory, logged):
    refused = policy_factory(f"  webhook:\n    url: http://127.0.0.1:{closed_port()}/x\n")
    [result] = alerts.deliver(refused, failure_event())
    assert not result.ok and result.error == "Connection refused"
    hanging = policy_factory(f"  webhook:\n    url: http://127.0.0.1:{silent.port}/x\n    timeout: 1s\n")
    started = time.monotonic()
    [result] = alerts.deliver(hanging, failure_event())
    assert time.monotonic() - started <= 1.0 + alerts.GRACE + 0.5
    assert not result.ok and "no answer" in result.error
    assert len([r for r in logged.records if r.levelno >= logging.ERROR]) == 2


def test_describe_hides_path_and_query():
    from vhbackup.policy import Webhook

    hook = Webhook(url="https://hc-ping.com/0f7d-secret-uuid/{status}?token=abc")
    assert webhook.describe(hook) == "webhook to https://hc-ping.com"
