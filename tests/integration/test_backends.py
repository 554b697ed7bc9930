"""S3, SFTP and REST repositories end to end, each on restic 0.14 and 0.18, configured as a user would.

One module-scoped world per backend and restic version (the servers are
session-scoped: one moto S3 server, one sshd, two ``rclone serve restic``):
init, a backup of files and a real PostgreSQL database, an exact restore of
both, verify, drill and prune (on the append-only REST server, restic's
forget must fail: typed, one line, naming the repository).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Env, backend_env, make_sample_tree, restic_for, sample_policy
from tests.integration.databases.dbhelpers import pg_fingerprint, psql
from vhbackup.treediff import describe

EXCLUDED = "srv/hub/data/skip.tmp"
WORLDS = [(backend, version) for backend in ("s3", "sftp", "rest", "rest-append-only") for version in ("0.14", "0.18")]


@dataclass
class World:
    backend: str
    env: Env
    tree: Path
    db: str
    expected: dict
    db_before: dict


def _drop(name: str) -> None:
    psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", params=WORLDS, ids=lambda p: f"{p[0]}-restic{p[1]}")
def world(request, tmp_path_factory):
    backend, version = request.param
    base = tmp_path_factory.mktemp(f"backend-{backend}-{version}")
    env = backend_env(request, base, restic_for(version), backend)
    tree = make_sample_tree(base)
    db = f"vhbt_{secrets.token_hex(3)}_backend"
    psql(f'CREATE DATABASE "{db}"')
    psql("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(8,2)); "
         "INSERT INTO items (name, price) SELECT 'item ' || g || ' ünïcødé', g * 1.5 FROM generate_series(1, 2000) g",
         db)
    env.write_policy(host="vh-backend-test", **sample_policy(tree), retention={"last": 1},
                     databases={"pg": {"type": "postgresql", "host": "127.0.0.1", "port": 5432, "user": "postgres",
                                       "names": [db]}})
    expected = describe(str(tree))
    del expected[EXCLUDED]
    yield World(backend, env, tree, db, expected, pg_fingerprint(db))
    for name in (db, db + "_restored"):
        _drop(name)


def one_error_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("vhbackup: error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_init_and_backup(world):
    env = world.env
    for _ in range(2):  # init is idempotent
        init = env.vh("init")
        assert init.returncode == 0, init.stderr
    backup = env.vh("backup")
    assert backup.returncode == 0, backup.stderr
    snapshots = json.loads(env.run_restic("snapshots", "--json").stdout)
    assert {t for s in snapshots for t in s["tags"] if t.startswith(("db:", "service:"))} == {
        "db:pg", "service:system", "service:hub", "service:agent"}


def test_restore_files_and_database_exactly(world):
    env, target = world.env, world.env.dir / "restored"
    result = env.vh("restore", "--latest", "--files-only", "--target", str(target))
    assert result.returncode == 0, result.stderr
    assert describe(str(target / str(world.tree).lstrip("/"))) == world.expected
    into = world.db + "_restored"
    result = env.vh("restore", "--latest", "--database", "pg", "--into-database", into)
    assert result.returncode == 0, result.stderr
    assert pg_fingerprint(into) == world.db_before


def test_verify(world):
    result = world.env.vh("verify")
    assert result.returncode == 0, result.stderr
    assert json.loads((world.env.state_dir / "last-verify.json").read_text())["status"] == "success"


def test_drill(world):
    result = world.env.vh("drill")
    assert result.returncode == 0, result.stderr
    assert json.loads((world.env.state_dir / "last-drill.json").read_text())["status"] == "success"


def test_prune(world):
    """A second run makes the first one expendable (retention last: 1); append-only refuses to delete it."""
    env = world.env
    (world.tree / "etc/app.conf").write_text("second generation\n")
    backup = env.vh("backup")
    assert backup.returncode == 0, backup.stderr
    before = {s["id"] for s in json.loads(env.run_restic("snapshots", "--json").stdout)}
    result = env.vh("prune")
    after = {s["id"] for s in json.loads(env.run_restic("snapshots", "--json").stdout)}
    if world.backend == "rest-append-only":
        assert result.returncode == 78, result.stderr
        line = one_error_line(result)
        assert "refused to delete" in line and env.repo_url in line and "append-only" in line, line
        assert after == before
        return
    assert result.returncode == 0, result.stderr
    assert after < before and len(after) == len(before) // 2
