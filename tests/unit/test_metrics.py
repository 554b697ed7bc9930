"""metrics: the Prometheus textfile, rebuilt from the state records; no secret in state or metrics."""

from __future__ import annotations

import json
import os
import re

from vhbackup import metrics, outcome, state
from vhbackup.policy import Policy, Repository

PASSWORD = "correct-horse-battery-staple-0123456789"
URL_SECRET = "s3cr3t-in-url"


def make_policy(tmp_path) -> Policy:
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    return Policy(source=str(tmp_path / "policy.yml"), host="web01", state_dir=str(tmp_path / "state"),
                  repository=Repository(url=f"rest:https://backup:{URL_SECRET}@example.org/web01",
                                        password_file=str(pw), env={"AWS_SECRET_ACCESS_KEY": "awssecretvalue"}),
                  metrics_file=str(tmp_path / "textfile/vhbackup.prom"))


def parse(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


def save(policy, action, status, started, **kw):
    rec = outcome.Record(action=action, run_id=f"run-{action}", host="web01", started=started, status=status, **kw)
    outcome.save(policy, rec)
    return rec


def test_metrics_follow_each_action_and_keep_the_last_success(tmp_path):
    p = make_policy(tmp_path)
    save(p, "backup", "success", 1000.0, duration=60.0, bytes_added=12345)
    save(p, "prune", "success", 2000.0, duration=5.0, details={"repository_size_bytes": 999_000})
    save(p, "backup", "failure", 3000.0, duration=2.0, exit_code=1, error="boom")
    save(p, "verify", "partial", 4000.0)
    text = open(p.metrics_path).read()
    values = parse(text)
    assert values['vhbackup_last_run_status{action="backup"}'] == 1
    assert values['vhbackup_last_run_status{action="prune"}'] == 0
    assert values['vhbackup_last_run_status{action="verify"}'] == 3
    assert values['vhbackup_last_success_timestamp_seconds{action="backup"}'] == 1060.0  # the earlier success
    assert values['vhbackup_last_run_timestamp_seconds{action="backup"}'] == 3000.0
    assert values['vhbackup_last_run_duration_seconds{action="backup"}'] == 2.0
    assert values['vhbackup_last_run_bytes_added{action="backup"}'] == 0
    assert values["vhbackup_repository_size_bytes"] == 999_000
    assert 'vhbackup_last_success_timestamp_seconds{action="verify"}' in values
    for name in {n.split("{")[0] for n in values}:
        assert f"# TYPE {name} gauge" in text and f"# HELP {name} " in text
    assert re.fullmatch(r"(# .*\n|vhbackup_[a-z_]+(\{[a-z]+=\"[a-z]+\"\})? [0-9.e+]+\n)+", text)
    assert [f for f in os.listdir(os.path.dirname(p.metrics_path)) if f != "vhbackup.prom"] == []


def test_last_success_record_survives_a_failure(tmp_path):
    p = make_policy(tmp_path)
    save(p, "backup", "success", 1000.0, snapshot_ids=["abc"])
    save(p, "backup", "failure", 2000.0, error="boom")
    assert state.read_object(state.last_run_path(p.state_dir, "backup"))["status"] == "failure"
    success = state.read_object(state.last_success_path(p.state_dir, "backup"))
    assert success["started"] == 1000.0 and success["snapshot_ids"] == ["abc"]


def test_no_secret_reaches_state_or_metrics(tmp_path):
    p = make_policy(tmp_path)
    save(p, "backup", "failure", 1000.0,
         error=f"restic said: password {PASSWORD} rejected for rest:https://backup:{URL_SECRET}@example.org",
         details={"env": "awssecretvalue", "nested": [f"x{PASSWORD}y"]})
    files = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "state") for f in fs] + [p.metrics_path]
    assert len(files) >= 2
    for path in files:
        text = open(path).read()
        for secret in (PASSWORD, URL_SECRET, "awssecretvalue"):
            assert secret not in text, f"{secret} leaked into {path}"
    data = json.load(open(state.last_run_path(p.state_dir, "backup")))
    assert "***" in data["error"] and data["details"]["nested"] == ["x***y"]


def test_unreadable_records_are_skipped(tmp_path):
    p = make_policy(tmp_path)
    save(p, "prune", "success", 10.0)
    with open(state.last_run_path(p.state_dir, "backup"), "w") as fh:
        fh.write("not json")
    values = parse(metrics.render(metrics.collect(p.state_dir)))
    assert 'vhbackup_last_run_status{action="prune"}' in values
    assert not any('"backup"' in k for k in values)
