"""Append-only repositories, the maintenance role and failed copies, with real restic 0.14 and 0.18.

The append-only copy is served by ``rclone serve restic --append-only``: from the host, restic itself
cannot forget or prune there, and vhbackup does not try. The maintenance role runs with its own policy
(as a trusted machine would), reaching the same repository directly on disk, and applies retention;
a snapshot forged with a time in the future is reported, not counted and not removed.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from datetime import datetime, timezone

import pytest
import yaml

from tests.conftest import free_port

HOST = "vh-ao"


@pytest.fixture
def append_only_server(tmp_path):
    """``rclone serve restic --append-only`` on 127.0.0.1: (url, directory it serves)."""
    root = tmp_path / "served"
    root.mkdir()
    port = free_port()
    server = subprocess.Popen(["rclone", "serve", "restic", "--append-only", "--addr", f"127.0.0.1:{port}",
                               str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                pytest.fail("rclone serve restic --append-only did not start")
            time.sleep(0.1)
    yield f"rest:http://127.0.0.1:{port}/vault/", root / "vault"
    server.terminate()
    server.wait(timeout=10)


def _policy(env, tree, repositories: dict, **extra) -> None:
    policy = env.policy(host=HOST, paths=[str(tree)], **extra)
    policy.pop("repository")
    common = {"password_file": str(env.password_file), "cache_dir": str(env.dir / "cache")}
    policy["repositories"] = {name: {**common, **repo} for name, repo in repositories.items()}
    env.policy_file.write_text(yaml.safe_dump(policy))


def _snapshots(env, url: str) -> list[dict]:
    result = env.run_restic("-r", url, "snapshots", "--json")
    return json.loads(result.stdout or "[]") or []


def test_append_only_copy_is_pruned_only_by_the_maintenance_role(env, tmp_path, append_only_server):
    vault_url, vault_dir = append_only_server
    tree = tmp_path / "data"
    tree.mkdir()
    (tree / "a.txt").write_text("one\n")
    _policy(env, tree, {"main": {"url": env.repo_url},
                        "vault": {"url": vault_url, "role": "copy", "append_only": True,
                                  "retention": {"within": "30d", "last": 5}}},
            retention={"last": 1})
    assert env.vh("init").returncode == 0
    for content in ("two\n", "three\n"):
        backup = env.vh("backup")
        assert backup.returncode == 0, backup.stderr
        (tree / "a.txt").write_text(content)
    vault = _snapshots(env, vault_url)
    assert len(vault) == 2

    # restic itself cannot remove anything there from this host: forget (also with --prune) is refused
    # (a bare prune that finds nothing to delete succeeds, removing nothing). restic 0.18 says "unable to
    # remove snapshot" yet exits 0, and 0.14 retries the refused delete for ~45 s first: one call only.
    refused = env.run_restic("-r", vault_url, "forget", "--prune", vault[0]["id"], check=False)
    assert refused.returncode != 0 or "unable to remove" in refused.stderr, refused.stderr
    assert "403" in refused.stderr
    assert len(_snapshots(env, vault_url)) == 2
    # ...and vhbackup does not try: it says who prunes, exits 0, and prunes the others.
    alone = env.vh("prune", "--repository", "vault")
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout.count("\n") == 1 and "repository vault is append-only from this host" in alone.stdout
    assert "--maintenance" in alone.stdout
    everything = env.vh("prune")
    assert everything.returncode == 0, everything.stderr
    assert "repository vault is append-only" in everything.stdout
    assert len(_snapshots(env, env.repo_url)) == 1  # main: last 1
    assert len(_snapshots(env, vault_url)) == 2
    status = env.vh("status", "--json")
    vault_facts = json.loads(status.stdout)["repositories"]["vault"]
    assert vault_facts["append_only"] and "maintenance" in vault_facts["pruned_by"]
    assert "vault copy ok (append-only, pruned elsewhere)" in env.vh("status").stdout

    # An attacker on the host forges a snapshot dated in the future (appending is allowed).
    forged = env.run_restic("-r", vault_url, "backup", "--host", HOST, "--tag", "vhbackup",
                            "--tag", "run:20991231-000000-dead", "--tag", "service:system",
                            "--time", "2099-12-31 00:00:00", str(tree))
    assert forged.returncode == 0
    forged_id = next(s for s in _snapshots(env, vault_url) if s["time"].startswith("2099"))["id"]
    # It is never "the latest" for a restore (or a drill) from that repository.
    target = tmp_path / "restored"
    restored = env.vh("restore", "--latest", "--repository", "vault", "--target", str(target))
    assert restored.returncode == 0, restored.stderr
    assert (target / str(tree).lstrip("/") / "a.txt").read_text() == "two\n"  # the last real run, not "three"

    # The maintenance role, on a trusted machine: its own policy, the repository reached directly.
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    maintenance = {"host": HOST, "state_dir": str(trusted / "state"), "restic_binary": env.restic,
                   "repositories": {"vault": {"url": str(vault_dir), "password_file": str(env.password_file),
                                              "cache_dir": str(trusted / "cache"), "append_only": True,
                                              "retention": {"within": "1s", "last": 1}}},
                   "retention": {"last": 1}}
    (trusted / "policy.yml").write_text(yaml.safe_dump(maintenance))
    pruned = env.vh("-c", str(trusted / "policy.yml"), "prune", "--maintenance")
    assert pruned.returncode == 3, pruned.stderr  # partial: the forged snapshot is reported
    assert f"snapshot {forged_id[:8]} is dated 2099-12-31" in pruned.stderr and "in the future" in pruned.stderr
    left = _snapshots(env, vault_url)
    assert forged_id in [s["id"] for s in left]  # not removed...
    assert len(left) == 2  # ...and not counted: the newest real snapshot is kept, the older one removed
    record = json.loads((trusted / "state" / "last-prune.json").read_text())
    assert record["details"]["future_snapshots"] == [forged_id] and record["status"] == "partial"

    # Without --maintenance the trusted machine leaves an append-only repository alone too.
    plain = env.vh("-c", str(trusted / "policy.yml"), "prune")
    assert plain.returncode == 0 and "append-only" in plain.stdout


def test_maintenance_needs_a_within_rule(env, tmp_path):
    tree = tmp_path / "data"
    tree.mkdir()
    _policy(env, tree, {"main": {"url": env.repo_url}}, retention={"last": 1})
    refused = env.vh("prune", "--maintenance")
    assert refused.returncode == 78 and "needs a 'within' rule" in refused.stderr, refused.stderr
    _policy(env, tree, {"main": {"url": env.repo_url},
                        "vault": {"url": str(tmp_path / "vault"), "append_only": True}}, retention={"last": 1})
    check = env.vh("config", "check")
    assert check.returncode == 78 and "repositories.vault.append_only" in check.stderr, check.stderr


def test_a_failed_copy_makes_the_run_partial_and_names_the_copy(env, tmp_path):
    tree = tmp_path / "data"
    tree.mkdir()
    (tree / "a.txt").write_text("one\n")
    dead = f"rest:http://127.0.0.1:{free_port()}/gone/"
    _policy(env, tree, {"main": {"url": env.repo_url},
                        "nas": {"url": str(tmp_path / "nas"), "role": "copy"},
                        "offsite": {"url": dead, "role": "copy", "timeout": "5s"}})
    env.run_restic("init")
    env.run_restic("-r", str(tmp_path / "nas"), "init")
    backup = env.vh("backup")
    assert backup.returncode == 3, backup.stderr
    warning = [ln for ln in backup.stderr.splitlines() if "copy to repository offsite failed" in ln]
    assert len(warning) == 1 and "127.0.0.1" in warning[0], backup.stderr
    assert len(_snapshots(env, str(tmp_path / "nas"))) == 1  # the other copy got the run
    status = env.vh("status")
    assert status.returncode == 1 and status.stdout.startswith("WARNING:"), status.stdout
    assert "copy offsite" in status.stdout and "offsite copy failed" in status.stdout
    facts = json.loads(env.vh("status", "--json").stdout)
    assert facts["repositories"]["nas"]["status"] == "ok"
    assert facts["repositories"]["offsite"]["status"] == "failed"
    prom = (env.state_dir / "vhbackup.prom").read_text()
    assert 'vhbackup_repository_last_status{repository="offsite"} 1' in prom
    assert 'vhbackup_repository_last_status{repository="nas"} 0' in prom
    # The primary holds the run: restore reads it from there.
    assert json.loads((env.state_dir / "last-backup.json").read_text())["status"] == "partial"
    assert datetime.now(timezone.utc).year >= 2024


def test_an_unreachable_primary_falls_back_to_a_copy(env, tmp_path):
    tree = tmp_path / "data"
    tree.mkdir()
    (tree / "a.txt").write_text("kept off-site\n")
    copy = str(tmp_path / "nas")
    dead = f"rest:http://127.0.0.1:{free_port()}/gone/"
    _policy(env, tree, {"main": {"url": dead, "timeout": "5s"}, "nas": {"url": copy, "role": "copy"}})
    env.run_restic("-r", copy, "init")
    env.run_restic("-r", copy, "backup", "--host", HOST, "--tag", "vhbackup", "--tag", "run:20260101-000000-abcd",
                   "--tag", "service:system", str(tree))
    listed = env.vh("restore", "--list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == ["20260101-000000-abcd"]
    said = [ln for ln in listed.stderr.splitlines() if "using copy nas instead" in ln]
    assert len(said) == 1 and "primary repository main cannot be used" in said[0], listed.stderr
    assert ("cannot reach repository" in said[0] or "did not answer" in said[0]) and "127.0.0.1" in said[0]
    target = tmp_path / "restored"
    restored = env.vh("restore", "--latest", "--target", str(target))
    assert restored.returncode == 0, restored.stderr
    assert (target / str(tree).lstrip("/") / "a.txt").read_text() == "kept off-site\n"
    # A wrong password on the primary is an error to fix, never a reason to read elsewhere.
    _policy(env, tree, {"main": {"url": copy}, "other": {"url": str(tmp_path / "other"), "role": "copy"}})
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not the password of this repository\n")
    wrong.chmod(0o600)
    policy = yaml.safe_load(env.policy_file.read_text())
    policy["repositories"]["main"]["password_file"] = str(wrong)
    env.policy_file.write_text(yaml.safe_dump(policy))
    refused = env.vh("restore", "--list")
    assert refused.returncode == 78 and "wrong password" in refused.stderr and "using copy" not in refused.stderr
