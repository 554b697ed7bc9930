"""vhbackup drill against real restic (both versions): files restored into scratch, compared, cleaned up."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.alert_sinks import HttpSink
from tests.conftest import sample_policy


def _last_drill(env) -> dict:
    return json.loads((env.state_dir / "last-drill.json").read_text())


def _scratch_root(env) -> Path:
    return env.dir / "cache" / "drill"


@pytest.fixture
def backed_up(env, sample_tree):
    """A repository holding one backup run of the sample tree."""
    env.write_policy(**sample_policy(sample_tree))
    assert env.vh("init").returncode == 0
    result = env.vh("backup")
    assert result.returncode == 0, result.stderr
    return env


def test_drill_restores_compares_and_cleans_up(backed_up, sample_tree):
    env = backed_up
    result = env.vh("drill")
    assert result.returncode == 0, result.stderr
    record = _last_drill(env)
    assert record["status"] == "success"
    details = record["details"]
    runs = json.loads(env.vh("restore", "--list", "--json").stdout)
    assert details["drilled_run"] == runs[0]["id"]
    # every entry of the snapshot was compared: the tree's files, dirs and symlinks plus their parents
    entries = sum(1 for _ in sample_tree.rglob("*"))
    assert details["files_compared"] >= entries
    assert details["restored_bytes"] >= 3 * 1024 * 1024
    assert details["restore_seconds"] > 0
    assert details["recovery_seconds"] >= details["restore_seconds"]
    assert "kept_directory" not in details
    assert not _scratch_root(env).exists() or not any(_scratch_root(env).iterdir())
    assert "passed" in result.stderr


def test_drill_keep_leaves_an_identical_copy(backed_up, sample_tree):
    env = backed_up
    result = env.vh("drill", "--service", "hub", "--keep")
    assert result.returncode == 0, result.stderr
    details = _last_drill(env)["details"]
    kept = Path(details["kept_directory"])
    assert kept.parent == _scratch_root(env)
    restored = kept / str(sample_tree / "srv/hub/data").lstrip("/")
    assert (restored / "big.bin").read_bytes() == (sample_tree / "srv/hub/data/big.bin").read_bytes()
    assert os.readlink(restored / "link") == "a file with spaces"
    # --service hub restores only hub's paths
    assert not (kept / str(sample_tree / "etc").lstrip("/")).exists()
    assert not (kept / str(sample_tree / "srv/agent").lstrip("/")).exists()
    assert _last_drill(env)["services"] == ["hub"]


def test_drill_finds_a_damaged_repository_fails_and_alerts(backed_up, sample_tree):
    """A data pack that no longer matches its hash: restic's restore --verify or the comparison must notice."""
    env = backed_up
    hook = HttpSink()
    env.write_policy(**sample_policy(sample_tree), notify={"on": ["failure"], "webhook": {"url": f"{hook.url}/x"}})
    packs = sorted((Path(env.repo_url) / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    biggest = packs[-1]
    os.chmod(biggest, 0o600)
    data = bytearray(biggest.read_bytes())
    for offset in range(100, len(data) - 100, 4096):
        data[offset] ^= 0xFF
    biggest.write_bytes(bytes(data))
    try:
        result = env.vh("drill")
    finally:
        hook.stop()
    assert result.returncode == 1
    record = _last_drill(env)
    assert record["status"] == "failure"
    assert re.search(r"drill of run \S+ found \d+ problem", record["error"])
    [alert] = hook.requests
    assert alert.json["action"] == "drill" and alert.json["kind"] == "failure"
    assert alert.json["error"] == record["error"]
    assert alert.json["facts"]["drilled_run"] == record["details"]["drilled_run"]
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("vhbackup: error:")]
    assert errors, result.stderr
    assert not _scratch_root(env).exists() or not any(_scratch_root(env).iterdir())


def test_drill_without_any_backup_is_one_clear_line(env, sample_tree):
    env.write_policy(**sample_policy(sample_tree))
    assert env.vh("init").returncode == 0
    result = env.vh("drill")
    assert result.returncode == 1
    assert "no backup run to drill yet" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3


def test_drill_unknown_service_is_a_usage_error(backed_up):
    result = backed_up.vh("drill", "--service", "nope")
    assert result.returncode == 2
    assert "unknown service 'nope'" in result.stderr


# --- databases: real PostgreSQL and MariaDB on 127.0.0.1 ------------------------------------

PG = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
MARIA = ["-h", "127.0.0.1", "-P", "3306", "-u", "root"]


def psql(sql: str, db: str = "postgres") -> str:
    return subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", *PG, "-d", db, "-c", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def maria(sql: str, db: str | None = None) -> str:
    return subprocess.run(["mariadb", *MARIA, "-N", "-B", *([db] if db else []), "-e", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def pg_tables(db: str) -> int:
    return int(psql("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'", db))


def pg_exists(db: str) -> bool:
    return psql(f"SELECT count(*) FROM pg_database WHERE datname = '{db}'") == "1"


def maria_exists(db: str) -> bool:
    return maria(f"SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{db}'") == "1"


@pytest.fixture
def live_databases():
    """One PostgreSQL and one MariaDB database with tables; every name they leave behind is dropped."""
    token = os.urandom(3).hex()
    pg_name, maria_name = f"vhdt_{token}_pg", f"vhdt_{token}_maria"
    psql(f'CREATE DATABASE "{pg_name}"')
    psql("CREATE TABLE accounts (id serial PRIMARY KEY, name text NOT NULL); "
         "CREATE TABLE orders (id serial PRIMARY KEY, account int REFERENCES accounts(id), total numeric); "
         "INSERT INTO accounts (name) SELECT 'a' || g FROM generate_series(1, 500) g; "
         "INSERT INTO orders (account, total) SELECT g, g * 1.5 FROM generate_series(1, 500) g", pg_name)
    maria(f"CREATE DATABASE `{maria_name}`")
    maria("CREATE TABLE posts (id INT PRIMARY KEY AUTO_INCREMENT, title VARCHAR(100)); "
          "CREATE TABLE tags (id INT PRIMARY KEY, label VARCHAR(20)); "
          "CREATE TABLE post_tags (post INT, tag INT); "
          "INSERT INTO posts (title) VALUES ('hello'), ('world')", maria_name)
    made = {"pg": pg_name, "maria": maria_name, "scratch_pg": [], "scratch_maria": []}
    yield made
    for name in [pg_name, *made["scratch_pg"]]:
        subprocess.run(["psql", "-X", "-q", *PG, "-d", "postgres", "-c",
                        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], capture_output=True)
    for name in [maria_name, *made["scratch_maria"]]:
        subprocess.run(["mariadb", *MARIA, "-e", f"DROP DATABASE IF EXISTS `{name}`"], capture_output=True)


def test_drill_loads_postgresql_and_mariadb_dumps_into_scratch(env, sample_tree, live_databases):
    from vhbackup.commands.drill import scratch_db_name

    dbs = live_databases
    env.write_policy(
        paths=[str(sample_tree / "etc")],
        databases={
            "shop": {"type": "postgresql", "host": "127.0.0.1", "port": 5432, "user": "postgres",
                     "names": [dbs["pg"]]},
            "blog": {"type": "mariadb", "host": "127.0.0.1", "port": 3306, "user": "root",
                     "names": [dbs["maria"]]},
        },
    )
    assert env.vh("init").returncode == 0
    backup = env.vh("backup")
    assert backup.returncode == 0, backup.stderr
    run_id = json.loads(env.vh("restore", "--list", "--json").stdout)[0]["id"]
    scratch_pg, scratch_maria = scratch_db_name("shop", run_id), scratch_db_name("blog", run_id)
    assert re.fullmatch(r"shop_vhdrill_[0-9a-f]{4}", scratch_pg)
    dbs["scratch_pg"].append(scratch_pg)
    dbs["scratch_maria"].append(scratch_maria)

    # --keep: the scratch databases stay, loaded, for inspection
    kept = env.vh("drill", "--keep")
    assert kept.returncode == 0, kept.stderr
    assert pg_tables(scratch_pg) == 2
    assert int(psql("SELECT count(*) FROM orders", scratch_pg)) == 500
    assert maria(f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{scratch_maria}'") == "3"
    details = _last_drill(env)["details"]
    assert details["databases"]["shop"]["tables"] == 2
    assert details["databases"]["blog"]["tables"] == 3
    assert details["recovery_seconds"] >= details["databases"]["shop"]["restore_seconds"]
    psql(f'DROP DATABASE "{scratch_pg}"')
    maria(f"DROP DATABASE `{scratch_maria}`")
    shutil.rmtree(details["kept_directory"])

    # without --keep: loaded, counted, dropped; the originals untouched
    result = env.vh("drill")
    assert result.returncode == 0, result.stderr
    record = _last_drill(env)
    assert record["status"] == "success"
    assert sorted(record["databases"]) == ["blog", "shop"]
    assert record["details"]["databases"]["shop"]["tables"] == 2
    assert not pg_exists(scratch_pg)
    assert not maria_exists(scratch_maria)
    assert pg_tables(dbs["pg"]) == 2
    assert not _scratch_root(env).exists() or not any(_scratch_root(env).iterdir())


def test_drill_fails_when_a_dump_does_not_load(env, sample_tree, live_databases):
    """A scratch name that is already taken makes the load fail: the drill reports it and exits 1."""
    from vhbackup.commands.drill import scratch_db_name

    dbs = live_databases
    env.write_policy(paths=[str(sample_tree / "etc")], databases={
        "shop": {"type": "postgresql", "host": "127.0.0.1", "port": 5432, "user": "postgres", "names": [dbs["pg"]]}})
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    run_id = json.loads(env.vh("restore", "--list", "--json").stdout)[0]["id"]
    taken = scratch_db_name("shop", run_id)
    dbs["scratch_pg"].append(taken)
    psql(f'CREATE DATABASE "{taken}"')
    result = env.vh("drill")
    assert result.returncode == 1
    record = _last_drill(env)
    assert record["status"] == "failure"
    assert "database shop" in record["error"]
    assert pg_exists(taken), "a database the drill did not create must never be dropped"
