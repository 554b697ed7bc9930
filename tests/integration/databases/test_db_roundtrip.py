"""Backup, drop, restore: identical data in real PostgreSQL and MariaDB, on restic 0.14 and 0.18."""

from __future__ import annotations

import json

from dbhelpers import (maria, maria_exists, maria_fingerprint, maria_schema_objects, pg_exists, pg_fingerprint,
                       psql, snapshots)


def _policy(env, tmp_path, pg_name: str, maria_name: str) -> None:
    data = tmp_path / "hubdata"
    data.mkdir()
    (data / "config.ini").write_text("answer = 42\n")
    env.write_policy(
        databases={
            "pg": {"type": "postgresql", "host": "127.0.0.1", "port": 5432, "user": "postgres", "names": [pg_name]},
            "shop": {"type": "mariadb", "host": "127.0.0.1", "port": 3306, "user": "root", "names": [maria_name]},
        },
        services={"hub": {"paths": [str(data)], "databases": ["pg", "shop"]}},
    )


def test_backup_drop_restore_brings_back_identical_data(env, tmp_path, dbs):
    pg_name, maria_name = dbs.pgbench("pg"), dbs.mariadb("shop")
    _policy(env, tmp_path, pg_name, maria_name)
    pg_before, maria_before = pg_fingerprint(pg_name), maria_fingerprint(maria_name)
    objects_before = maria_schema_objects(maria_name)
    assert pg_before["pgbench_accounts"][0] == 100000 and maria_before["items"][0] == 2003
    assert objects_before == {"view": "expensive", "trigger": "items_audit", "routine": "price_with_tax"}

    assert env.vh("init").returncode == 0
    backup = env.vh("backup")
    assert backup.returncode == 0, backup.stderr
    run_id = json.loads((env.state_dir / "last-backup.json").read_text())["run_id"]

    for name, filename in (("pg", "/postgresql-pg.dump"), ("shop", "/mariadb-shop.sql")):
        [snap] = snapshots(env, f"db:{name}")
        assert set(snap["tags"]) == {"vhbackup", f"run:{run_id}", f"db:{name}", "service:hub"}
        assert snap["paths"] == [filename]
    dumped = env.run_restic("dump", "latest", "/mariadb-shop.sql", "--tag", "db:shop").stdout
    assert "items_audit" in dumped and "price_with_tax" in dumped and "CREATE DATABASE" not in dumped

    refused = env.vh("restore", "--latest", "--databases-only")
    assert refused.returncode == 1
    assert f"database {pg_name} on 127.0.0.1:5432 is not empty; pass --yes" in refused.stderr
    assert pg_fingerprint(pg_name) == pg_before

    psql(f'DROP DATABASE "{pg_name}"')
    maria(f"DROP DATABASE `{maria_name}`")
    assert not pg_exists(pg_name) and not maria_exists(maria_name)
    restored = env.vh("restore", "--latest", "--databases-only", "--yes")
    assert restored.returncode == 0, restored.stderr
    assert pg_fingerprint(pg_name) == pg_before
    assert maria_fingerprint(maria_name) == maria_before
    assert maria_schema_objects(maria_name) == objects_before
    assert maria("SELECT price_with_tax(10)", maria_name) == "12.00"
    maria("INSERT INTO items (name) VALUES ('after restore')", maria_name)
    assert maria("SELECT msg FROM audit ORDER BY id DESC LIMIT 1", maria_name) == "added after restore"

    restored_again = env.vh("restore", "--latest", "--databases-only", "--yes")
    assert restored_again.returncode == 0, restored_again.stderr
    assert pg_fingerprint(pg_name) == pg_before
    assert maria_fingerprint(maria_name) == maria_before


def test_into_database_restores_beside_the_original(env, tmp_path, dbs):
    pg_name, maria_name = dbs.pgbench("pg"), dbs.mariadb("shop")
    _policy(env, tmp_path, pg_name, maria_name)
    assert env.vh("init").returncode == 0
    assert env.vh("backup", "--databases-only").returncode == 0
    saved = snapshots(env)
    assert len(saved) == 2 and all(any(t.startswith("db:") for t in s["tags"]) for s in saved)
    psql("UPDATE pgbench_accounts SET abalance = 7 WHERE aid <= 10", pg_name)
    maria("DELETE FROM items WHERE id > 1000", maria_name)
    pg_live, maria_live = pg_fingerprint(pg_name), maria_fingerprint(maria_name)

    pg_copy, maria_copy = dbs.pg_name("pgcopy"), dbs.maria_name("shopcopy")
    result = env.vh("restore", "--latest", "--database", "pg", "--into-database", pg_copy)
    assert result.returncode == 0, result.stderr
    result = env.vh("restore", "--latest", "--database", "shop", "--into-database", maria_copy)
    assert result.returncode == 0, result.stderr

    assert pg_fingerprint(pg_name) == pg_live
    assert maria_fingerprint(maria_name) == maria_live
    copy = pg_fingerprint(pg_copy)
    assert copy["pgbench_accounts"][0] == 100000 and copy != pg_live
    psql("UPDATE pgbench_accounts SET abalance = 0 WHERE aid <= 10", pg_name)
    assert pg_fingerprint(pg_copy) == pg_fingerprint(pg_name)
    assert maria_fingerprint(maria_copy)["items"][0] == 2003
    assert maria_schema_objects(maria_copy)["trigger"] == "items_audit"

    again = env.vh("restore", "--latest", "--database", "pg", "--into-database", pg_copy)
    assert again.returncode == 1 and f"database {pg_copy} on 127.0.0.1:5432 is not empty" in again.stderr


def test_restore_service_brings_back_files_and_databases_of_one_run(env, tmp_path, dbs):
    pg_name, maria_name = dbs.pgbench("pg"), dbs.mariadb("shop")
    _policy(env, tmp_path, pg_name, maria_name)
    pg_before = pg_fingerprint(pg_name)
    assert env.vh("init").returncode == 0
    assert env.vh("backup", "--service", "hub").returncode == 0
    [run] = [r for r in json.loads(env.vh("restore", "--list", "--json").stdout)]
    assert run["services"] == ["hub"] and sorted(run["databases"]) == ["pg", "shop"]

    (tmp_path / "hubdata" / "config.ini").write_text("changed\n")
    psql(f'DROP DATABASE "{pg_name}"')
    maria("DELETE FROM items WHERE id > 3", maria_name)
    result = env.vh("restore", "--latest", "--service", "hub", "--yes")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "hubdata" / "config.ini").read_text() == "answer = 42\n"
    assert pg_fingerprint(pg_name) == pg_before
    assert maria_fingerprint(maria_name)["items"][0] == 2003


def test_into_database_refuses_system_databases_and_databases_the_policy_backs_up(env, tmp_path, dbs):
    """--into-database means "beside the original". template1 and postgres are empty, so no --yes was asked:
    the app's tables went into template1 (and so into every database created later) or the maintenance
    database; into mysql they land beside the grants. The original's own name (or another database of the
    policy) was replaced while its service's units kept running. All refused before anything is done
    (``--dry-run`` here, so that a regression can never touch this server's own databases)."""
    pg_name, maria_name = dbs.pgbench("pg"), dbs.mariadb("shop")
    _policy(env, tmp_path, pg_name, maria_name)
    assert env.vh("init").returncode == 0
    assert env.vh("backup", "--databases-only").returncode == 0
    cases = [("pg", "template1", "that is the postgresql server's own database"),
             ("pg", "postgres", "that is the postgresql server's own database"),
             ("pg", "TEMPLATE0", "that is the postgresql server's own database"),
             ("shop", "mysql", "that is the mariadb server's own database"),
             ("shop", "performance_schema", "that is the mariadb server's own database"),
             ("pg", pg_name, f"that is database pg of the policy, not a new one; restore it in place with "
                             f"--database pg --yes"),
             ("shop", maria_name, "that is database shop of the policy")]
    for database, into, message in cases:
        result = env.vh("restore", "--latest", "--database", database, "--into-database", into, "--yes",
                        "--dry-run")
        assert result.returncode == 2, (into, result.stdout, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    ok = env.vh("restore", "--latest", "--database", "pg", "--into-database", f"{pg_name}_x", "--dry-run")
    assert ok.returncode == 0, ok.stderr
