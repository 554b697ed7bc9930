"""Monitor pings: the request each kind makes, the body bound, the secret parts of a URL, the retry bound."""

from __future__ import annotations

import time

import pytest

from tests.alert_sinks import Silent, closed_port
from vhbackup.notifiers import ping
from vhbackup.policy import Ping
from vhbackup.urls import secret_parts

UUID = "5f0c3a4b-9d2e-4c1f-8a7b-6c5d4e3f2a1b"


@pytest.mark.parametrize("status, path", [("start", f"/{UUID}/start"), ("success", f"/{UUID}"),
                                          ("fail", f"/{UUID}/fail")])
def test_healthchecks_paths_keep_the_query(status, path):
    req = ping.request(Ping("healthchecks", f"https://hc-ping.com/{UUID}?create=1"), "backup", status, "web01",
                       "msg", "tail")
    assert req.full_url == f"https://hc-ping.com{path}?create=1" and req.get_method() == "POST"
    assert req.data == (b"" if status == "start" else b"msg\n\ntail\n")


def test_uptime_kuma_replaces_its_status_and_msg_and_sends_no_start():
    p = Ping("uptime_kuma", "https://kuma.example.org/api/push/Tok3nTok3n?status=up&msg=OK&ping=")
    assert not ping.sends(p, "start")
    req = ping.request(p, "drill", "fail", "web01", "drill failed: x", "")
    assert req.get_method() == "GET" and req.data is None
    assert req.full_url == "https://kuma.example.org/api/push/Tok3nTok3n?status=down&msg=drill+failed%3A+x&ping="


def test_url_template_placeholders_are_encoded():
    p = Ping("url", "https://x.example/{host}/{action}?s={status}", method="GET")
    req = ping.request(p, "verify", "success", "web 01", "m", "b")
    assert req.full_url == "https://x.example/web%2001/verify?s=success" and req.data is None


def test_the_body_is_bounded_and_keeps_the_summary_and_the_last_lines():
    tail = "\n".join(f"line {i} " + "x" * 80 for i in range(2000))
    req = ping.request(Ping("healthchecks", "https://hc-ping.com/x"), "backup", "fail", "h", "backup failed", tail)
    assert len(req.data) <= ping.MAX_BODY
    assert req.data.startswith(b"backup failed\n") and req.data.endswith(b"line 1999 " + b"x" * 80 + b"\n")


def test_secret_parts_of_monitor_urls():
    assert UUID in secret_parts(f"https://hc-ping.com/{UUID}")
    assert "mytopic7" in secret_parts("https://ntfy.sh/mytopic7")
    assert "Tok3nTok3n" in secret_parts("https://k/api/push/Tok3nTok3n?status=up&msg=OK")
    assert "pingkey123" in secret_parts("https://hc-ping.com/pingkey123/{host}-{action}")
    assert "api" not in secret_parts("https://k/api/push/Tok3nTok3n")


def test_describe_shows_no_path():
    assert ping.describe(Ping("healthchecks", f"https://hc-ping.com/{UUID}")) == "healthchecks at https://hc-ping.com"


def test_retries_never_outlast_the_deadline():
    silent = Silent()
    try:
        p = Ping("healthchecks", f"http://127.0.0.1:{silent.port}/x", timeout=1.5, retries=5)
        started = time.monotonic()
        with pytest.raises(Exception):
            ping.send(p, ping.request(p, "backup", "start", "h", "m", ""), started + 1.5)
        assert time.monotonic() - started < 2.5
    finally:
        silent.stop()
    p = Ping("healthchecks", f"http://127.0.0.1:{closed_port()}/x", timeout=10, retries=2)
    started = time.monotonic()
    with pytest.raises(OSError):
        ping.send(p, ping.request(p, "backup", "start", "h", "m", ""), started + 10)
    assert time.monotonic() - started < 3.5  # three attempts, 1 s apart
