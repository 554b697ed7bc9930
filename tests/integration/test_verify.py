"""verify: passes on a healthy repository, checks a run's content, and names a corrupted pack."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import sample_policy


def last(env, action: str) -> dict:
    return json.loads((env.state_dir / f"last-{action}.json").read_text())


def report(env, record: dict) -> str:
    path = Path(record["details"]["report"])
    assert path.parent == env.state_dir / "reports" and path.name == f"verify-{record['run_id']}.txt"
    return path.read_text()


def add_database_snapshot(env, run_id: str, host: str, content: bytes) -> None:
    args = [env.restic, "backup", "--host", host, "--stdin", "--stdin-filename", "main.sql"]
    for tag in ("vhbackup", f"run:{run_id}", "db:main", "service:system"):
        args += ["--tag", tag]
    subprocess.run(args, env=env.restic_env(), input=content, capture_output=True, check=True)


def test_verify_healthy_then_corrupted(env, sample_tree):
    env.write_policy(host="verifyhost", **sample_policy(sample_tree), verify={"read_data_subset": "50%"})
    assert env.vh("init").returncode == 0
    backup = env.vh("backup")
    assert backup.returncode == 0, backup.stderr
    run_id = last(env, "backup")["run_id"]
    dump = b"CREATE TABLE t (x int);\n" * 5000
    add_database_snapshot(env, run_id, "verifyhost", dump)

    default = env.vh("verify")
    assert default.returncode == 0, default.stderr
    rec = last(env, "verify")
    assert rec["status"] == "success" and rec["details"]["errors_found"] == 0
    text = report(env, rec)
    assert text.startswith("vhbackup verify report: PASSED")
    assert "structure and data slice " in text and "/2 (verify.read_data_subset 50%" in text

    content = env.vh("verify", "--snapshot", run_id)
    assert content.returncode == 0, content.stderr
    text = report(env, last(env, "verify"))
    assert f"content of run {run_id}" in text
    files_line = next(ln for ln in text.splitlines() if "(files: " in ln)
    assert ": ok, " in files_line and " 0 entries" not in files_line
    db_line = next(ln for ln in text.splitlines() if "(database: main)" in ln)
    assert ": ok, 1 entries" in db_line
    assert len(last(env, "verify")["snapshot_ids"]) == 2

    packs = sorted((env.dir / "repo/data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else -1)
    victim = packs[-1]
    data = bytearray(victim.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    victim.write_bytes(bytes(data))

    full = env.vh("verify", "--full", "-q")
    assert full.returncode == 1, full.stdout + full.stderr
    error_lines = [ln for ln in full.stderr.splitlines() if ln.startswith("vhbackup: error:")]
    assert len(error_lines) == 1 and "verify found damage:" in error_lines[0], full.stderr
    assert victim.name[:8] in error_lines[0]
    rec = last(env, "verify")
    assert rec["status"] == "failure" and rec["details"]["errors_found"] >= 1
    text = report(env, rec)
    assert text.startswith("vhbackup verify report: FAILED")
    assert "structure and all data (--full)" in text and victim.name in text

    status = env.vh("status")
    assert status.returncode == 2 and status.stdout.startswith("CRITICAL: ") and "last verify" in status.stdout
