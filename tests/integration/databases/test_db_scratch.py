"""The restore drill's database hooks: scratch_restore / drop_database, and dumps holding several databases."""

from __future__ import annotations

import pytest
from dbhelpers import maria, maria_exists, maria_fingerprint, pg_exists, pg_fingerprint, snapshots

from vhbackup import databases
from vhbackup.context import Context
from vhbackup.errors import VhError
from vhbackup.policy import load_policy
from vhbackup.runs import group


def test_scratch_restore_loads_a_dump_beside_the_original_and_drop_removes_it(env, dbs):
    pg_name, maria_a, maria_b = dbs.pgbench("pg"), dbs.mariadb("a"), dbs.mariadb("b")
    env.write_policy(databases={
        "pg": {"type": "postgresql", "host": "127.0.0.1", "user": "postgres", "names": [pg_name]},
        "pair": {"type": "mariadb", "host": "127.0.0.1", "port": 3306, "user": "root", "names": [maria_a, maria_b]},
    })
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    [pair_snap] = snapshots(env, "db:pair")
    assert pair_snap["paths"] == ["/mariadb-pair.all.sql"]

    ctx = Context(policy=load_policy(str(env.policy_file)))
    run = group(ctx.restic.snapshots())[0]
    pg_db, pair_db = ctx.policy.database("pg"), ctx.policy.database("pair")
    scratch = dbs.pg_name("scratch")
    assert databases.scratch_restore(ctx, run.database("pg"), pg_db, scratch) == 4
    assert pg_fingerprint(scratch) == pg_fingerprint(pg_name)
    with pytest.raises(VhError, match="already exists"):
        databases.scratch_restore(ctx, run.database("pg"), pg_db, scratch)
    databases.drop_database(pg_db, scratch)
    assert not pg_exists(scratch) and pg_exists(pg_name)
    with pytest.raises(VhError, match="may not be"):
        databases.scratch_restore(ctx, run.database("pg"), pg_db, pg_name)

    # a dump of several databases is checked by counting its tables, without touching the server
    assert databases.scratch_restore(ctx, run.database("pair"), pair_db, dbs.name("unused")) == 4
    assert not maria_exists(dbs.name("unused"))

    before = maria_fingerprint(maria_a), maria_fingerprint(maria_b)
    maria(f"DROP DATABASE `{maria_a}`")
    maria("DELETE FROM items", maria_b)
    refused = env.vh("restore", "--latest", "--database", "pair")
    assert refused.returncode == 1 and "holds several databases" in refused.stderr and not maria_exists(maria_a)
    result = env.vh("restore", "--latest", "--database", "pair", "--yes")
    assert result.returncode == 0, result.stderr
    assert (maria_fingerprint(maria_a), maria_fingerprint(maria_b)) == before
