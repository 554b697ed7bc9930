"""prune: ten backup runs with faked times; --dry-run lists exactly what prune removes, per group."""

from __future__ import annotations

import json
import re
import subprocess

from tests.conftest import Env, restic_version

HOST = "prunehost"
RETENTION = {"last": 2, "daily": 3, "weekly": 2}
RESTIC_FLAGS = ["--keep-last", "2", "--keep-daily", "3", "--keep-weekly", "2"]
# Ten runs, newest first. 2026-02-19 is a Thursday (ISO week 8 = Feb 16-22); Feb 15 is in week 7.
TIMES = ["2026-02-19 20:00:00", "2026-02-19 14:00:00", "2026-02-19 02:00:00", "2026-02-18 14:00:00",
         "2026-02-18 02:00:00", "2026-02-17 02:00:00", "2026-02-16 02:00:00", "2026-02-15 02:00:00",
         "2026-02-08 02:00:00", "2026-02-01 02:00:00"]
FILES_TAGS = ("vhbackup", "service:hub", "service:system")
DB_TAGS = ("vhbackup", "db:main", "service:system")
DB_RUNS = 5  # the five newest runs also dumped database "main"
# files group: last 2 -> runs 0, 1; daily -> Feb 19 (0), Feb 18 (3), Feb 17 (5); weekly -> week 8 (0), week 7 (7)
FILES_KEPT = {0, 1, 3, 5, 7}
# db group (runs 0-4): last -> 0, 1; daily -> 0, 3; the daily and weekly rules still have room when they reach
# the oldest snapshot (run 4), so it is kept as well (restic >= 0.17 semantics)
DB_KEPT = {0, 1, 3, 4}


def restic_backup(env: Env, when: str, tags: tuple[str, ...], run: str, path: str | None = None,
                  stdin: bytes | None = None) -> str:
    args = [env.restic, "backup", "--json", "--host", HOST, "--time", when]
    for tag in (*tags, f"run:{run}"):
        args += ["--tag", tag]
    args += ["--stdin", "--stdin-filename", "main.sql"] if stdin is not None else [path]
    out = subprocess.run(args, env=env.restic_env(), input=stdin, capture_output=True, check=True).stdout
    summary = [json.loads(ln) for ln in out.splitlines() if b'"summary"' in ln][-1]
    return summary["snapshot_id"][:8]  # restic 0.14 reports the short id


def make_runs(env: Env, tree) -> dict[str, tuple[str, int]]:
    """Short snapshot id -> (group, run number), made straight with restic so that their times can be faked."""
    made = {}
    for nr, when in enumerate(TIMES):
        run = f"2026{nr:04d}-020000-ab{nr:02d}"
        (tree / "etc/app.conf").write_text(f"generation {nr}\n")
        made[restic_backup(env, when, FILES_TAGS, run, path=str(tree))] = ("files", nr)
        if nr < DB_RUNS:
            made[restic_backup(env, when, DB_TAGS, run, stdin=f"-- dump {nr}\n".encode())] = ("db", nr)
    return made


def snapshot_ids(env: Env) -> set[str]:
    return {s["id"][:8] for s in json.loads(env.run_restic("snapshots", "--json").stdout)}


def restic_keeps(env: Env, tag: str) -> set[str]:
    """restic's own decision for one group (selected by a tag only that group has)."""
    out = env.run_restic("forget", "--dry-run", "--json", "--group-by", "host", "--tag", tag, *RESTIC_FLAGS).stdout
    groups = json.loads(out)
    assert len(groups) == 1
    return {s["id"][:8] for s in groups[0]["keep"]}


def test_dry_run_lists_exactly_what_prune_removes(env, sample_tree):
    env.write_policy(host=HOST, paths=[str(sample_tree)], retention=RETENTION)
    assert env.vh("init").returncode == 0
    made = make_runs(env, sample_tree)
    assert len(made) == len(TIMES) + DB_RUNS
    expected_kept = {i for i, (g, nr) in made.items() if nr in (FILES_KEPT if g == "files" else DB_KEPT)}

    # cross-check against restic's own forget on each group
    files_ids = {i for i, (g, _) in made.items() if g == "files"}
    assert restic_keeps(env, "service:hub") == expected_kept & files_ids
    restic_db = restic_keeps(env, "db:main")
    oldest_db = next(i for i, (g, nr) in made.items() if g == "db" and nr == DB_RUNS - 1)
    if restic_version(env.restic) >= (0, 18, 0):
        assert restic_db == expected_kept - files_ids
    else:  # restic 0.14 predates "keep the oldest while a rule has room"; vhbackup follows the newer rule
        assert restic_db == (expected_kept - files_ids) - {oldest_db}

    dry = env.vh("prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert snapshot_ids(env) == set(made), "prune --dry-run removed something"
    listed = {m.group(2): m.group(1) for m in re.finditer(r"^  (keep|remove)\s+([0-9a-f]{8})\s", dry.stdout, re.M)}
    assert len(listed) == len(made)
    dry_removed = {short for short, what in listed.items() if what == "remove"}
    assert dry_removed == set(made) - expected_kept
    assert len(re.findall(r"^group host prunehost, tags ", dry.stdout, re.M)) == 2
    assert "group host prunehost, tags db:main,service:system,vhbackup: keep 4, remove 1" in dry.stdout
    keep_line = next(ln for ln in dry.stdout.splitlines() if ln.startswith("  keep") and "ab00" in ln
                     and ln.split()[1] in files_ids)
    assert keep_line.endswith("last snapshot, daily snapshot, weekly snapshot")

    real = env.vh("prune")
    assert real.returncode == 0, real.stderr
    remaining = snapshot_ids(env)
    assert remaining == expected_kept
    assert set(made) - remaining == dry_removed
    record = json.loads((env.state_dir / "last-prune.json").read_text())
    assert record["status"] == "success"
    assert {i[:8] for i in record["snapshot_ids"]} == set(made) - expected_kept
    assert record["details"]["repository_size_bytes"] > 0
    assert 'vhbackup_last_run_status{action="prune"} 0' in (env.state_dir / "vhbackup.prom").read_text()


def test_empty_retention_is_refused_before_touching_the_repository(env):
    env.write_policy(paths=["/etc/hostname"], retention={})
    result = env.vh("prune")
    assert result.returncode == 78
    assert "retention: no rule is set" in result.stderr and str(env.policy_file) in result.stderr
    assert not (env.state_dir / "last-prune.json").exists()
