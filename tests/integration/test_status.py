"""status reads only state_dir; pre-checks fail a backup before anything happens; no secret in state."""

from __future__ import annotations

import json
import re
import time

from tests.conftest import sample_policy

OK_LINE = re.compile(r"OK: last backup \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(\d+ s ago\), success, [\d.]+ (B|KiB|MiB), \d+ s\n")


def snapshot_count(env) -> int:
    return len(json.loads(env.run_restic("snapshots", "--json").stdout))


def test_status_follows_backups_and_needs_no_restic(env, sample_tree):
    sections = {**sample_policy(sample_tree), "host": "statushost"}
    env.write_policy(**sections)
    none_yet = env.vh("status")
    assert none_yet.returncode == 3 and none_yet.stdout.startswith("UNKNOWN: no backup recorded yet")

    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0

    env.write_policy(**sections, restic_binary="/nonexistent/restic")
    ok = env.vh("status")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert OK_LINE.fullmatch(ok.stdout), ok.stdout
    as_json = json.loads(env.vh("status", "--json").stdout)
    assert (as_json["level"], as_json["code"]) == ("OK", 0)
    assert as_json["last_backup"]["status"] == "success" and len(as_json["last_backup"]["snapshot_ids"]) == 1
    assert set(as_json["free_space"]) == {"cache", "temp", "repository"}

    env.write_policy(**sections, restic_binary="/nonexistent/restic", checks={"max_age": "1s"})
    time.sleep(1.2)
    stale = env.vh("status")
    assert stale.returncode == 2 and stale.stdout.startswith("CRITICAL: last backup ")
    assert "more than checks.max_age 1 s" in stale.stdout

    # a failed pre-check: exit 1, one line, nothing stopped, dumped or snapshotted
    env.write_policy(**{**sections, "services": {
        **sections["services"], "app": {"paths": [str(sample_tree / "etc")], "units": ["vhbackup-test-absent.service"]}}},
        checks={"min_free_space": "100000TB"})
    before = snapshot_count(env)
    failed = env.vh("backup", "-q")
    assert failed.returncode == 1
    lines = failed.stderr.splitlines()
    assert len(lines) == 1, lines
    assert re.search(r"only .* free for the cache directory .*checks.min_free_space is [\d.]+ TiB", lines[0])
    assert "free some space" in lines[0]
    assert snapshot_count(env) == before
    record = json.loads((env.state_dir / "last-backup.json").read_text())
    assert record["status"] == "failure" and record["snapshot_ids"] == []
    assert record["details"]["free_space"]["cache"]["free_bytes"] > 0

    env.write_policy(**sections, restic_binary="/nonexistent/restic")
    critical = env.vh("status")
    assert critical.returncode == 2
    assert critical.stdout.startswith("CRITICAL: last backup ") and "failed after" in critical.stdout
    assert "checks.min_free_space" in critical.stdout
    prom = (env.state_dir / "vhbackup.prom").read_text()
    assert 'vhbackup_last_run_status{action="backup"} 1' in prom
    assert re.search(r'^vhbackup_last_success_timestamp_seconds\{action="backup"\} \d', prom, re.M)

    password = env.password_file.read_text().strip()
    for path in [*env.state_dir.rglob("*")]:
        if path.is_file() and path.name != "lock":
            assert password not in path.read_text(errors="replace"), path


def test_bad_checks_value_is_unknown_with_file_line_and_key(env):
    """status is a monitoring plugin: a broken policy is UNKNOWN (3) on stdout, never exit 78."""
    env.write_policy(checks={"max_age": "soon"})
    result = env.vh("status")
    assert result.returncode == 3
    assert re.fullmatch(rf"UNKNOWN: {re.escape(str(env.policy_file))}:\d+: checks\.max_age: not a duration.*\n",
                        result.stdout)
    assert env.vh("config", "check").returncode == 78
