"""The recovery bundle (the policy in every files snapshot) and the recovery sheet, on restic 0.14 and 0.18."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import yaml

from tests.conftest import make_sample_tree, sample_policy
from vhbackup.commands.recovery_sheet import BEGIN, END


def sheet_commands(text: str, part: str) -> list[str]:
    block = text.split(BEGIN.format(part=part) + "\n", 1)[1].split(END.format(part=part), 1)[0]
    return block.splitlines()


def test_every_files_snapshot_holds_the_policy_but_restore_leaves_it_alone(env, tmp_path):
    tree = make_sample_tree(tmp_path)
    env.write_policy(**sample_policy(tree), host="web1")
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    assert env.vh("backup", "--service", "hub").returncode == 0
    policy_path = os.path.realpath(env.policy_file)
    snaps = json.loads(env.run_restic("snapshots", "--json").stdout)
    assert len(snaps) == 2 and all(policy_path in s["paths"] for s in snaps)
    assert not any(str(env.password_file) in p for s in snaps for p in s["paths"])
    for snap in snaps:
        listed = env.run_restic("ls", snap["id"]).stdout.splitlines()
        assert str(env.password_file) not in listed and policy_path in listed
    # the sheet's command gets it back, from the newest files snapshot
    sheet = env.vh("recovery-sheet")
    assert sheet.returncode == 0, sheet.stderr
    dump = next(c for c in sheet_commands(sheet.stdout, "get-policy") if " restic dump " in c)
    dump = dump.replace(" restic dump ", f" {env.restic} dump ").rsplit(" > ", 1)[0]
    got = subprocess.run(["sh", "-c", dump], capture_output=True, env=env.restic_env())
    assert got.returncode == 0, got.stderr
    assert got.stdout == env.policy_file.read_bytes()
    # a restore of everything brings the files back but never the policy file over the live one
    target = tmp_path / "restored"
    result = env.vh("restore", "--latest", "--target", str(target))
    assert result.returncode == 0, result.stderr
    assert (target / str(tree / "srv/hub/data/script.sh").lstrip("/")).read_text() == "#!/bin/sh\necho hi\n"
    assert (target / str(tree / "etc/app.conf").lstrip("/")).exists()
    assert not (target / policy_path.lstrip("/")).exists()


def test_a_snapshot_with_only_empty_paths_is_still_partial_although_it_holds_the_policy(env, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    env.write_policy(paths=[str(empty)])
    assert env.vh("init").returncode == 0
    result = env.vh("backup")
    assert result.returncode == 3 and "holds no file" in result.stderr, result.stderr


def test_recovery_sheet_names_everything_and_no_secret(env, tmp_path):
    env_file = tmp_path / "restic.env"
    env_file.write_text("AWS_SECRET_ACCESS_KEY=wJalrSECRETvalue1234\n")
    env_file.chmod(0o600)
    env.write_policy(paths=[str(tmp_path)], host="web1", repository={"env_file": str(env_file)},
                     databases={"shop": {"type": "postgresql"}})
    assert env.vh("init").returncode == 0
    text = env.vh("recovery-sheet")
    data = env.vh("recovery-sheet", "--json")
    assert text.returncode == 0 and data.returncode == 0, text.stderr + data.stderr
    sheet = json.loads(data.stdout)
    repo_id = json.loads(env.run_restic("cat", "config").stdout)["id"]
    assert sheet["repository"]["id"] == repo_id and repo_id in text.stdout
    assert sheet["host"] == "web1" and sheet["policy"] == os.path.realpath(env.policy_file)
    assert re.match(r"\d+\.\d+\.\d+$", sheet["restic"]["version"])
    paths = [c["path"] for c in sheet["credentials"]]
    assert str(env.password_file) in paths and str(env_file) in paths
    restore = sheet["commands"]["restore"]
    assert restore[-1].endswith("restore --latest --yes")
    assert any("apt-get install -y vhbackup restic postgresql" in c for c in sheet["commands"]["get-policy"])
    assert any(c.startswith("(set -a; . ") for c in sheet["commands"]["get-policy"])
    for secret in (env.password_file.read_text().strip(), "wJalrSECRETvalue1234"):
        assert secret not in text.stdout + text.stderr + data.stdout


def test_recovery_sheet_lists_a_copy_that_cannot_be_opened_without_its_id(env, tmp_path):
    policy = env.policy(paths=[str(tmp_path / "data")], host="web1")
    (tmp_path / "data").mkdir()
    repo = policy.pop("repository")
    policy["repositories"] = {"main": repo, "nas": {**repo, "url": str(tmp_path / "nas"), "role": "copy"}}
    env.policy_file.write_text(yaml.safe_dump(policy))
    assert env.vh("init").returncode == 0
    shutil.rmtree(tmp_path / "nas")
    data = env.vh("recovery-sheet", "--json")
    assert data.returncode == 0, data.stderr
    sheet = json.loads(data.stdout)
    assert [(r["name"], r["role"], r["id"] is None) for r in sheet["repositories"]] == \
        [("main", "primary", False), ("nas", "copy", True)]
    assert any(n.startswith("repository nas could not be opened now") for n in sheet["notes"]), sheet["notes"]
    assert sheet["commands"]["restore@nas"][-1].endswith("restore --latest --repository nas --yes")
    text = env.vh("recovery-sheet")
    assert "# --- vhbackup recovery: restore from copy nas ---" in text.stdout
    assert "id:        unknown (could not be opened when the sheet was printed)" in text.stdout
