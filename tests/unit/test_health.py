"""health.evaluate: Nagios levels from the state records alone."""

from __future__ import annotations

import json
import re
import textwrap

import pytest

from vhbackup import health, outcome, state
from vhbackup.errors import PolicyError
from vhbackup.policy import Checks, Policy, Repository, load_policy

NOW = 1_800_000_000.0
GIB = 1 << 30


def make_policy(tmp_path, **checks) -> Policy:
    return Policy(source=str(tmp_path / "policy.yml"), host="web01", state_dir=str(tmp_path / "state"),
                  restic_binary="/nonexistent/restic",
                  repository=Repository(url="/srv/repo", password_file=str(tmp_path / "pw")),
                  checks=Checks(**checks))


def record(policy: Policy, action="backup", status="success", started=NOW - 8 * 3600, duration=12 * 60,
           error=None, free=None, total=int(2.5 * GIB)) -> None:
    rec = outcome.Record(action=action, run_id="20260223-020000-a1b2", host="web01", started=started,
                         status=status, duration=duration, error=error, bytes_total=total, bytes_added=1000)
    if free is not None:
        rec.details["free_space"] = {"cache": {"path": "/var/cache/vhbackup", "free_bytes": free}}
    state.write_json_atomic(state.last_run_path(policy.state_dir, action), rec.as_json())
    if status in ("success", "partial"):
        state.write_json_atomic(state.last_success_path(policy.state_dir, action), rec.as_json())


def test_no_record_is_unknown(tmp_path):
    h = health.evaluate(make_policy(tmp_path), now=NOW)
    assert (h.level, h.code) == ("UNKNOWN", 3)
    assert h.summary.startswith("UNKNOWN: no backup recorded yet")


def test_unreadable_state_is_unknown(tmp_path):
    p = make_policy(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state/last-backup.json").write_text("{half a record")
    h = health.evaluate(p, now=NOW)
    assert h.code == 3 and "cannot read the backup state" in h.summary


def test_recent_success_is_ok_with_the_documented_line(tmp_path):
    p = make_policy(tmp_path)
    record(p, free=10 * GIB)
    h = health.evaluate(p, now=NOW)
    assert h.code == 0
    assert re.fullmatch(r"OK: last backup \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(8 h ago\), success, 2\.5 GiB, 12 min",
                        h.summary), h.summary
    assert h.facts["last_backup"]["run_id"] == "20260223-020000-a1b2"
    assert h.facts["age_seconds"] == pytest.approx(8 * 3600)
    json.dumps(h.as_json())


def test_older_than_max_age_is_critical(tmp_path):
    p = make_policy(tmp_path, max_age=6 * 3600)
    record(p)
    h = health.evaluate(p, now=NOW)
    assert h.code == 2
    assert "more than checks.max_age 6 h" in h.summary


def test_failed_backup_is_critical_even_after_a_recent_success(tmp_path):
    p = make_policy(tmp_path)
    record(p, started=NOW - 3600)
    record(p, status="failure", started=NOW - 60, duration=5, error="no restic repository at /srv/repo")
    h = health.evaluate(p, now=NOW)
    assert h.code == 2
    assert h.summary.startswith("CRITICAL: last backup ") and "failed after 5 s: no restic repository" in h.summary
    assert h.facts["last_success"]["started"] == NOW - 3600


def test_failure_without_any_success_is_critical(tmp_path):
    p = make_policy(tmp_path)
    record(p, status="failure", error="boom")
    h = health.evaluate(p, now=NOW)
    assert h.code == 2 and "no successful backup recorded" in h.summary


def test_partial_backup_is_a_warning(tmp_path):
    p = make_policy(tmp_path)
    record(p, status="partial")
    h = health.evaluate(p, now=NOW)
    assert h.code == 1 and h.summary.startswith("WARNING: last backup") and "partial" in h.summary


def test_low_free_space_is_a_warning(tmp_path):
    p = make_policy(tmp_path, min_free_space=2 * GIB)
    record(p, free=GIB)
    h = health.evaluate(p, now=NOW)
    assert h.code == 1
    assert "only 1.0 GiB free for the cache (/var/cache/vhbackup)" in h.summary


@pytest.mark.parametrize("action", ["verify", "drill"])
def test_failed_verify_or_drill_is_critical(tmp_path, action):
    p = make_policy(tmp_path, min_free_space=2 * GIB)
    record(p, free=GIB)  # a warning too: critical wins
    record(p, action=action, status="failure", error="verify found damage: pack 1234 damaged")
    h = health.evaluate(p, now=NOW)
    assert h.code == 2
    assert f"last {action}" in h.summary and "pack 1234 damaged" in h.summary and "only 1.0 GiB" in h.summary
    record(p, action=action, status="success")
    assert health.evaluate(p, now=NOW).code == 1


def _policy_text(tmp_path, body: str):
    pw = tmp_path / "pw"
    pw.write_text("x" * 40)
    pw.chmod(0o600)
    path = tmp_path / "policy.yml"
    path.write_text(f"repository: {{url: /srv/repo, password_file: {pw}}}\n" + textwrap.dedent(body))
    return load_policy(path)


def test_checks_and_verify_keys_parse(tmp_path):
    p = _policy_text(tmp_path, "checks:\n  max_age: 2 days\n  min_free_space: 500MB\nverify:\n  read_data_subset: 10%\n")
    assert (p.checks.max_age, p.checks.min_free_space, p.verify.read_data_subset) == (172800, 500_000_000, 10.0)


@pytest.mark.parametrize("body,line,key", [
    ("checks:\n  max_age: soon\n", 3, "checks.max_age"),
    ("checks:\n  max_age: 0\n", 3, "checks.max_age"),
    ("checks:\n  min_free_space: lots\n", 3, "checks.min_free_space"),
    ("checks:\n  min_free_space: 1 GiBs\n", 3, "checks.min_free_space"),
    ("checks:\n  max_age: 1d\n  min_age: 1d\n", 4, "checks.min_age"),
    ("verify:\n  read_data_subset: -5%\n", 3, "verify.read_data_subset"),
    ("verify:\n  read_data_subset: 150%\n", 3, "verify.read_data_subset"),
    ("verify:\n  read_data_subset: half\n", 3, "verify.read_data_subset"),
])
def test_bad_checks_and_verify_name_file_line_and_key(tmp_path, body, line, key):
    with pytest.raises(PolicyError) as exc:
        _policy_text(tmp_path, body)
    assert exc.value.exit_code == 78
    assert f"policy.yml:{line}: {key}:" in str(exc.value)


def test_an_item_recorded_in_the_future_is_critical_even_when_the_newest_run_is_not(tmp_path):
    """The clock ran a year ahead during one full run, then was put right, and later runs were partial
    selections (``--service web``): db:shop's "good" backup lies in the future, so its age is negative and
    would look fresh for a year. Like a run record in the future, its age cannot be trusted."""
    from vhbackup.policy import Database, Service
    p = Policy(source=str(tmp_path / "policy.yml"), host="web01", state_dir=str(tmp_path / "state"),
               restic_binary="/nonexistent/restic",
               repository=Repository(url="/srv/repo", password_file=str(tmp_path / "pw")),
               services=(Service("web", paths=("/srv/web",)),), databases=(Database("shop", "postgresql"),))
    record(p, started=NOW - 3600)
    future = NOW + 365 * 86400
    state.write_json_atomic(state.items_path(p.state_dir), {
        "files:web": {"last": {"run_id": "r2", "time": NOW - 3600, "status": "success"},
                      "good": {"run_id": "r2", "time": NOW - 3600, "status": "success"}},
        "db:shop": {"last": {"run_id": "r1", "time": future, "status": "success"},
                    "good": {"run_id": "r1", "time": future, "status": "success"}},
    })
    h = health.evaluate(p, now=NOW)
    assert h.level == "CRITICAL", h.summary
    assert "db:shop" in h.summary and "in the future" in h.summary
    assert "files:web" not in h.summary


def test_a_failed_prune_is_a_warning_until_a_prune_succeeds(tmp_path):
    """A prune failing every night (a lock, a full disk) left status OK for ever while the repository grew."""
    p = make_policy(tmp_path)
    record(p)
    record(p, action="prune", status="failure", error="repository is already locked exclusively")
    h = health.evaluate(p, now=NOW)
    assert h.level == "WARNING", h.summary
    assert "last prune" in h.summary and "already locked exclusively" in h.summary
    record(p, action="prune", status="success")
    assert health.evaluate(p, now=NOW).level == "OK"
