"""Backup and restore through the CLI with real restic (0.14 and 0.18), local and REST repositories.

One module-scoped "world" per restic version and backend holds a repository
with two runs: a full backup (run A) and a ``--service hub`` backup (run B).
The tests read from it (restores go to their own targets) so that the costly
restic calls are paid once per world; the restored trees are compared with
the tree as it was when it was backed up.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Env, make_env, make_sample_tree, restic_for, sample_policy
from vhbackup.treediff import describe, differences

HOST = "vh-test-host"
EXCLUDED = "srv/hub/data/skip.tmp"


@dataclass
class World:
    env: Env
    tree: Path
    expected: dict
    inits: list
    full: subprocess.CompletedProcess
    hub: subprocess.CompletedProcess
    runs: list  # restore --list --json, newest first

    @property
    def run_a(self) -> dict:
        return self.runs[1]

    @property
    def run_b(self) -> dict:
        return self.runs[0]

    def restored(self, target: Path) -> Path:
        return target / str(self.tree).lstrip("/")

    def target(self, name: str) -> Path:
        path = self.env.dir / "targets" / name
        assert not path.exists()
        return path


def describe_without_excluded(tree: Path) -> dict:
    entries = describe(str(tree))
    assert EXCLUDED in entries
    del entries[EXCLUDED]
    return entries


def subtree(entries: dict, *prefixes: str) -> dict:
    return {k: v for k, v in entries.items() if any(k == p or k.startswith(p + "/") for p in prefixes)}


@pytest.fixture(scope="module", params=[("0.14", "local"), ("0.14", "rest"), ("0.18", "local"), ("0.18", "rest")],
                ids=lambda p: f"restic{p[0]}-{p[1]}")
def world(request, tmp_path_factory) -> World:
    version, backend = request.param
    base = tmp_path_factory.mktemp(f"world-{version}-{backend}")
    url = None
    if backend == "rest":
        url = f"{request.getfixturevalue('rest_server')}/{base.name}-{secrets.token_hex(4)}/"
    env = make_env(base, restic_for(version), url)
    tree = make_sample_tree(base)
    env.write_policy(host=HOST, **sample_policy(tree))
    inits = [env.vh("init"), env.vh("init")]
    expected = describe_without_excluded(tree)
    full = env.vh("backup")
    assert full.returncode == 0, full.stderr
    hub = env.vh("backup", "--service", "hub")
    assert hub.returncode == 0, hub.stderr
    listing = env.vh("restore", "--list", "--json")
    assert listing.returncode == 0, listing.stderr
    return World(env=env, tree=tree, expected=expected, inits=inits, full=full, hub=hub,
                 runs=json.loads(listing.stdout))


def test_init_is_idempotent(world):
    first, second = world.inits
    assert first.returncode == 0 and "created repository" in first.stderr, first.stderr
    assert second.returncode == 0 and "already exists" in second.stderr, second.stderr
    if not world.env.repo_url.startswith("rest:"):
        assert len(os.listdir(Path(world.env.repo_url) / "keys")) == 1


def test_backup_prints_a_summary(world):
    err = world.full.stderr
    snap = world.run_a["snapshots"][0]["id"]
    assert f"snapshot {snap[:8]} saved" in err
    assert "new" in err and "changed" in err and "added" in err
    assert f"verified: 1 snapshot(s) of run {world.run_a['id']}" in err
    assert world.run_a["id"] in world.full.stderr
    assert "Traceback" not in err + world.hub.stderr


def test_every_snapshot_carries_the_run_tags_and_host(world):
    snaps = json.loads(world.env.run_restic("snapshots", "--json").stdout)
    assert len(snaps) == 2
    by_run = {next(t for t in s["tags"] if t.startswith("run:"))[4:]: s for s in snaps}
    assert set(by_run) == {world.run_a["id"], world.run_b["id"]}
    a, b = by_run[world.run_a["id"]], by_run[world.run_b["id"]]
    for snap in (a, b):
        assert snap["hostname"] == HOST
        assert "vhbackup" in snap["tags"]
    assert sorted(a["tags"]) == sorted(["vhbackup", f"run:{world.run_a['id']}", "service:system", "service:hub",
                                        "service:agent"])
    policy = os.path.realpath(world.env.policy_file)  # the recovery bundle: every files snapshot holds the policy
    assert sorted(a["paths"]) == sorted([*(str(world.tree / p) for p in ("etc", "srv/hub/data", "srv/agent/data")),
                                         policy])
    assert sorted(b["tags"]) == sorted(["vhbackup", f"run:{world.run_b['id']}", "service:hub"])
    assert sorted(b["paths"]) == sorted([str(world.tree / "srv/hub/data"), policy])


def test_service_backup_holds_only_that_service(world):
    snap_id = world.run_b["snapshots"][0]["id"]
    listed = world.env.run_restic("ls", "--json", snap_id).stdout.splitlines()
    paths = [json.loads(line)["path"] for line in listed if '"struct_type":"node"' in line.replace(" ", "")]
    policy = os.path.realpath(world.env.policy_file)  # the recovery bundle, beside the service's paths
    assert paths and all(p == "/" or str(world.tree / "srv/hub/data").startswith(p) or policy.startswith(p) or
                         p.startswith(str(world.tree / "srv/hub/data")) for p in paths), paths
    assert policy in paths
    assert not any("/etc/" in p or "/agent/" in p for p in paths)
    assert not any(p.endswith("skip.tmp") for p in paths)


def test_restore_latest_reproduces_the_tree_exactly(world):
    target = world.target("latest")
    result = world.env.vh("restore", "--latest", "--target", str(target))
    assert result.returncode == 0, result.stderr
    assert f"run {world.run_a['id']}" in result.stderr
    restored = describe(str(world.restored(target)))
    assert differences(world.expected, restored) == []
    assert EXCLUDED not in restored
    assert restored["srv/hub/data/dangling"].target == "/nonexistent/target"
    assert restored["srv/hub/data/new\nline"].kind == "file"
    assert restored["srv/hub/data/big.bin"].size > 3 * 1024 * 1024
    assert restored["srv/hub/data/empty"].kind == "dir"
    assert restored["etc/app.conf"].mode == 0o640
    assert os.listdir(target) == [str(world.tree).lstrip("/").split("/")[0]]


def test_restore_service_restores_only_its_paths(world):
    target = world.target("hub")
    result = world.env.vh("restore", "--latest", "--service", "hub", "--target", str(target))
    assert result.returncode == 0, result.stderr
    assert f"run {world.run_b['id']}" in result.stderr
    restored = describe(str(world.restored(target)))
    hub = subtree(world.expected, "srv/hub/data")
    assert differences(hub, subtree(restored, "srv/hub/data")) == []
    assert set(restored) - set(hub) <= {"srv", "srv/hub"}, sorted(restored)

    target = world.target("agent-of-a")
    result = world.env.vh("restore", "--snapshot", world.run_a["id"], "--service", "agent", "--target", str(target))
    assert result.returncode == 0, result.stderr
    restored = describe(str(world.restored(target)))
    agent = subtree(world.expected, "srv/agent/data")
    assert differences(agent, subtree(restored, "srv/agent/data")) == []
    assert set(restored) - set(agent) <= {"srv", "srv/agent"}, sorted(restored)


def test_restore_a_service_the_run_does_not_hold(world):
    result = world.env.vh("restore", "--snapshot", world.run_b["id"], "--service", "agent",
                          "--target", str(world.env.dir / "targets" / "none"))
    assert result.returncode == 1
    assert "does not hold agent" in result.stderr
    assert not (world.env.dir / "targets" / "none").exists()


def unique_prefix(snap_id: str, others: list[str], start: int = 5) -> str:
    for n in range(start, len(snap_id)):
        if not any(o.startswith(snap_id[:n]) for o in others):
            return snap_id[:n]
    raise AssertionError("no unique prefix")


def test_restore_by_run_id_and_by_snapshot_prefix(world):
    a_snap = world.run_a["snapshots"][0]["id"]
    prefix = unique_prefix(a_snap, [world.run_b["snapshots"][0]["id"]])
    for name, ref in (("by-run", world.run_a["id"]), ("by-prefix", prefix), ("by-upper-prefix", prefix.upper())):
        target = world.target(name)
        result = world.env.vh("restore", "--snapshot", ref, "--target", str(target))
        assert result.returncode == 0, (ref, result.stderr)
        assert differences(world.expected, describe(str(world.restored(target)))) == [], ref

    result = world.env.vh("restore", "--snapshot", "ffffffffff", "--target", str(world.env.dir / "targets" / "x"))
    assert result.returncode == 1 and "no backup run or snapshot matches" in result.stderr


def test_restore_list_and_json(world):
    runs = world.runs
    assert [r["id"] for r in runs] == [world.run_b["id"], world.run_a["id"]]
    assert runs[0]["time"] >= runs[1]["time"]
    assert runs[1]["services"][0] == "system" and sorted(runs[1]["services"]) == ["agent", "hub", "system"]
    assert runs[0]["services"] == ["hub"]
    assert all(r["host"] == HOST and r["databases"] == [] for r in runs)
    policy_size = os.path.getsize(world.env.policy_file)  # every files snapshot holds the policy too
    assert runs[1]["size"] == sum(e.size for e in world.expected.values() if e.kind == "file") + policy_size
    assert runs[0]["size"] == sum(e.size for k, e in world.expected.items()
                                  if e.kind == "file" and k.startswith("srv/hub/data/")) + policy_size
    restic_ids = {s["id"] for s in json.loads(world.env.run_restic("snapshots", "--json").stdout)}
    assert {s["id"] for r in runs for s in r["snapshots"]} == restic_ids
    assert all(s["short_id"] == s["id"][:8] for r in runs for s in r["snapshots"])

    text = world.env.vh("restore", "--list")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split()[:3] == ["RUN", "TIME", "HOST"]
    assert len(lines) == 3
    assert lines[1].startswith(world.run_b["id"]) and lines[1].rstrip().endswith("hub")
    assert lines[2].startswith(world.run_a["id"]) and lines[2].rstrip().endswith(", ".join(runs[1]["services"]))
    assert all(HOST in line for line in lines[1:])


def state_snapshot(env: Env) -> dict:
    out = {}
    for dirpath, _, files in os.walk(env.state_dir):
        for name in files:
            st = os.stat(os.path.join(dirpath, name))
            out[os.path.join(dirpath, name)] = (st.st_size, st.st_mtime_ns)
    return out


def repo_files(env: Env) -> set:
    if env.repo_url.startswith("rest:"):
        return set()
    root = Path(env.repo_url)
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_dry_run_changes_nothing(world):
    env = world.env
    before = (env.run_restic("snapshots", "--json").stdout, repo_files(env), state_snapshot(env))
    assert before[2], "the backups should have written state files"
    target = env.dir / "targets" / "dry"
    calls = [
        (["backup", "--dry-run"], {}),
        (["backup"], {"DRY_RUN": "true"}),
        (["backup", "--service", "hub"], {"DRY_RUN": "true"}),
        (["init", "--dry-run"], {}),
        (["restore", "--latest", "--dry-run", "--target", str(target)], {}),
        (["restore", "--latest"], {"DRY_RUN": "true"}),
    ]
    for args, extra in calls:
        result = env.vh(*args, env=extra)
        assert result.returncode == 0, (args, result.stderr)
        assert "would" in result.stdout, (args, result.stdout)
    assert f"files of {', '.join(world.run_a['services'])}" in env.vh("backup", env={"DRY_RUN": "true"}).stdout
    after = (env.run_restic("snapshots", "--json").stdout, repo_files(env), state_snapshot(env))
    assert after == before
    assert not target.exists()


def test_in_place_restore_needs_yes(world):
    tree = world.tree
    (tree / "etc/app.conf").write_text("changed by an admin\n")
    (tree / "srv/hub/data/script.sh").unlink()
    (tree / "srv/agent/data/state.db").write_bytes(b"corrupt")
    damaged = describe(str(tree))

    result = world.env.vh("restore", "--latest")
    assert result.returncode == 1
    assert "--yes" in result.stderr.splitlines()[-1]
    assert differences(damaged, describe(str(tree))) == []
    assert (tree / "etc/app.conf").read_text() == "changed by an admin\n"

    result = world.env.vh("restore", "--latest", input="no\n")
    assert result.returncode == 1
    assert (tree / "etc/app.conf").read_text() == "changed by an admin\n"

    result = world.env.vh("restore", "--latest", "--yes")
    assert result.returncode == 0, result.stderr
    assert differences(world.expected, describe_without_excluded(tree)) == []


def test_lock_second_backup_exits_75_or_waits(env, sample_tree):
    env.write_policy(**sample_policy(sample_tree))
    assert env.vh("init").returncode == 0
    lock_file = env.state_dir / "lock"

    def start_first() -> subprocess.Popen:
        proc = subprocess.Popen(
            ["/usr/bin/python3", "-m", "vhbackup", "-c", str(env.policy_file), "backup"],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if lock_file.exists() and lock_file.read_text().startswith(f"{proc.pid} "):
                return proc
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        raise AssertionError("the first backup never took the lock")

    first = start_first()
    first.send_signal(signal.SIGSTOP)  # it holds the lock for as long as the second one tries, however busy the machine
    try:
        second = env.vh("backup")
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.returncode == 75, second.stderr
    assert len(second.stderr.splitlines()) == 1
    assert f"pid {first.pid}" in second.stderr and "--wait" in second.stderr

    first = start_first()
    waited = env.vh("--wait", "120", "backup")
    assert first.poll() is not None
    first.communicate()
    assert first.returncode == 0
    assert waited.returncode == 0, waited.stderr
    listing = json.loads(env.vh("restore", "--list", "--json").stdout)
    assert len(listing) == 3
