"""health.evaluate with copies: a copy behind the primary by more than checks.max_age is CRITICAL, named."""

from __future__ import annotations

from vhbackup import health, metrics, outcome, state
from vhbackup.policy import Checks, Policy, Repository

NOW = 1_800_000_000.0
HOUR = 3600.0


def make_policy(tmp_path) -> Policy:
    main = Repository(url="/srv/repo", password_file=str(tmp_path / "pw"), name="main")
    nas = Repository(url="/mnt/nas", password_file=str(tmp_path / "pw"), name="nas", role="copy")
    vault = Repository(url="rest:http://vault/", password_file=str(tmp_path / "pw"), name="vault", role="copy",
                       append_only=True)
    return Policy(source=str(tmp_path / "policy.yml"), host="web01", state_dir=str(tmp_path / "state"),
                  restic_binary="/nonexistent/restic", repository=main, repositories=(main, nas, vault),
                  checks=Checks(max_age=24 * HOUR))


def backup(policy: Policy, started: float) -> None:
    rec = outcome.Record(action="backup", run_id=f"run-{int(started)}", host="web01", started=started,
                         status="success", duration=60)
    state.write_json_atomic(state.last_run_path(policy.state_dir, "backup"), rec.as_json())
    state.write_json_atomic(state.last_success_path(policy.state_dir, "backup"), rec.as_json())


def test_copies_up_to_date_are_ok_and_listed(tmp_path):
    p = make_policy(tmp_path)
    backup(p, NOW - HOUR)
    for name in ("nas", "vault"):
        state.record_copy(p.state_dir, name, "run-x", NOW - HOUR, True, None, ["abc"])
    h = health.evaluate(p, now=NOW)
    assert h.level == health.OK, h.summary
    assert "repositories: main primary, nas copy ok, vault copy ok (append-only, pruned elsewhere)" in h.summary
    assert h.facts["repositories"]["vault"]["pruned_by"].startswith("the maintenance role")
    assert h.facts["repositories"]["nas"]["behind_seconds"] == 0


def test_a_copy_behind_by_more_than_max_age_is_critical_and_named(tmp_path):
    p = make_policy(tmp_path)
    state.record_copy(p.state_dir, "vault", "run-old", NOW - 50 * HOUR, True, None, ["abc"])
    state.record_copy(p.state_dir, "nas", "run-old", NOW - 50 * HOUR, True, None, ["abc"])
    state.record_copy(p.state_dir, "nas", "run-new", NOW - HOUR, False, "cannot reach repository /mnt/nas", [])
    state.record_copy(p.state_dir, "vault", "run-new", NOW - HOUR, True, None, ["def"])
    backup(p, NOW - HOUR)
    h = health.evaluate(p, now=NOW)
    assert h.level == health.CRITICAL, h.summary
    assert "copy nas is behind the primary by" in h.summary and "more than checks.max_age" in h.summary
    assert "copy vault" not in h.summary
    assert h.facts["repositories"]["nas"]["status"] == "behind"
    assert h.facts["repositories"]["vault"]["status"] == "ok"


def test_a_failed_copy_not_yet_behind_is_a_warning(tmp_path):
    p = make_policy(tmp_path)
    backup(p, NOW - HOUR)
    state.record_copy(p.state_dir, "nas", "run-a", NOW - 2 * HOUR, True, None, ["abc"])
    state.record_copy(p.state_dir, "nas", "run-b", NOW - HOUR, False, "wrong password", [])
    state.record_copy(p.state_dir, "vault", "run-b", NOW - HOUR, True, None, ["abc"])
    h = health.evaluate(p, now=NOW)
    assert h.level == health.WARNING and "copy nas: copy" in h.summary and "wrong password" in h.summary


def test_a_copy_that_never_succeeded_counts_from_its_first_attempt(tmp_path):
    p = make_policy(tmp_path)
    state.record_copy(p.state_dir, "nas", "run-a", NOW - 30 * HOUR, False, "unreachable", [])
    state.record_copy(p.state_dir, "vault", "run-a", NOW - HOUR, True, None, ["abc"])
    backup(p, NOW - HOUR)
    h = health.evaluate(p, now=NOW)
    assert h.level == health.CRITICAL and "copy nas is behind the primary" in h.summary
    assert "never copied" in h.summary


def test_repository_metrics(tmp_path):
    p = make_policy(tmp_path)
    backup(p, NOW - HOUR)
    state.record_copy(p.state_dir, "nas", "run-a", NOW - HOUR, False, "unreachable", [])
    text = metrics.render(metrics.collect(p.state_dir, "main"))
    assert 'vhbackup_repository_last_status{repository="main"} 0' in text
    assert 'vhbackup_repository_last_status{repository="nas"} 1' in text
    assert f'vhbackup_repository_last_success_timestamp_seconds{{repository="main"}} {int(NOW - HOUR)}' in text


def test_a_failed_verify_of_a_copy_stays_critical_after_the_primarys_verify_succeeds(tmp_path):
    p = make_policy(tmp_path)
    backup(p, NOW - HOUR)
    for name in ("nas", "vault"):
        state.record_copy(p.state_dir, name, "run-x", NOW - HOUR, True, None, ["abc"])
    on_nas = outcome.Record(action="verify", run_id="v1", host="web01", started=NOW - 50 * 60, status="failure",
                            error="pack 1234 is damaged", details={"repository": "nas"})
    assert outcome.save(p, on_nas)
    on_primary = outcome.Record(action="verify", run_id="v2", host="web01", started=NOW - 40 * 60,
                                status="success", details={"repository": "main"})
    assert outcome.save(p, on_primary)
    h = health.evaluate(p, now=NOW)
    assert h.level == health.CRITICAL, h.summary
    assert "last verify of repository nas" in h.summary and "pack 1234 is damaged" in h.summary
    assert h.facts["last_verify"]["run_id"] == "v2"  # the primary's own record
    assert h.facts["repositories"]["nas"]["last_verify"]["run_id"] == "v1"


def test_an_unreadable_copies_record_is_unknown(tmp_path):
    p = make_policy(tmp_path)
    backup(p, NOW - HOUR)
    with open(state.copies_path(p.state_dir), "w") as fh:
        fh.write("{not json")
    assert health.evaluate(p, now=NOW).level == health.UNKNOWN
