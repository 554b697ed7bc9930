"""The engines' command lines, file names and error reading, without servers or restic."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from vhbackup import databases
from vhbackup.databases import common, mariadb, mongodb, postgresql
from vhbackup.errors import PolicyError, VhError
from vhbackup.policy import Database, load_policy


def _connect(db: Database):
    return common.connect(db)


def test_pg_dump_is_custom_format_with_options_last_and_password_only_in_env(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    db = Database(name="hub", type="postgresql", host="127.0.0.1", port=5433, user="backup",
                  password_file=str(pw), names=("hubdb",), options=("--exclude-table=logs",))
    with _connect(db) as conn:
        cmd = postgresql.dump_command(db, conn)
    assert cmd.argv == ("pg_dump", "-w", "-h", "127.0.0.1", "-p", "5433", "-U", "backup", "-Fc", "-Z0",
                        "--lock-wait-timeout=300000", "--exclude-table=logs", "hubdb")
    assert cmd.secrets["PGPASSWORD"] == "s3cret" and "PGPASSWORD" not in cmd.env
    assert postgresql.stdin_filename(db) == "postgresql-hub.dump"


def test_pg_names_all_uses_pg_dumpall_and_psql():
    db = Database(name="cluster", type="postgresql", host="/run/postgresql", names=None)
    with _connect(db) as conn:
        assert postgresql.dump_command(db, conn).argv == ("pg_dumpall", "-w", "-h", "/run/postgresql",
                                                          "--lock-wait-timeout=300000")
        path = postgresql.stdin_filename(db)
        assert path == "postgresql-cluster.all.sql" and postgresql.is_whole_server(path)
        assert postgresql.restore_command("/" + path, conn, None).argv[0] == "psql"
        assert "PGPASSWORD" not in postgresql.dump_command(db, conn).secrets
    assert postgresql.restore_tools("/postgresql-hub.dump") == [("pg_restore",), ("psql",)]


def test_pg_restore_picks_the_tool_from_the_snapshot_file_name():
    db = Database(name="hub", type="postgresql", names=("hub",))
    with _connect(db) as conn:
        custom = postgresql.restore_command("/postgresql-hub.dump", conn, "copy")
        plain = postgresql.restore_command("/postgresql-hub.sql", conn, "copy")
    assert custom.argv[0] == "pg_restore" and custom.argv[-2:] == ("-d", "copy")
    assert "--single-transaction" in custom.argv and "--clean" in custom.argv and "--exit-on-error" in custom.argv
    assert plain.argv[0] == "psql" and "ON_ERROR_STOP=1" in plain.argv and plain.argv[-2:] == ("-d", "copy")


def test_mariadb_password_goes_to_a_private_defaults_file_given_first(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text('we"ird\\pässword\n')
    db = Database(name="shop", type="mariadb", host="db.example", port=3307, user="backup",
                  password_file=str(pw), names=("shop",), options=("--skip-lock-tables",))
    with _connect(db) as conn:
        argv = mariadb.dump_command(db, conn).argv
        assert os.path.basename(argv[0]) in mariadb.DUMP_TOOLS
        assert argv[1].startswith("--defaults-extra-file=")
        path = Path(argv[1].split("=", 1)[1])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert path.read_text() == '[client]\npassword="we\\"ird\\\\pässword"\n'
        assert not any("pässword" in a for a in argv)
        for flag in ("--single-transaction", "--routines", "--events", "--triggers"):
            assert flag in argv
        assert argv[-2:] == ("--skip-lock-tables", "shop")
        assert ("-h", "db.example") == argv[argv.index("-h"):argv.index("-h") + 2]
    assert not path.parent.exists()
    assert mariadb.stdin_filename(db) == "mariadb-shop.sql"


def test_mariadb_several_names_or_all_dump_with_create_database_statements():
    several = Database(name="s", type="mariadb", host="/run/mysqld/mysqld.sock", names=("a", "b"))
    everything = Database(name="e", type="mariadb", names=None)
    with _connect(several) as conn:
        argv = mariadb.dump_command(several, conn).argv
        assert argv[-3:] == ("--databases", "a", "b") and "--socket=/run/mysqld/mysqld.sock" in argv
        assert mariadb.dump_command(everything, conn).argv[-1] == "--all-databases"
        whole = mariadb.restore_command("/mariadb-s.all.sql", conn, None)
        assert not whole.argv[-1].startswith("a")
    assert mariadb.stdin_filename(several) == "mariadb-s.all.sql" == mariadb.stdin_filename(
        Database(name="s", type="mariadb", names=None))


def test_mongodb_password_goes_to_a_config_file(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text('mo"ngo\n')
    db = Database(name="m", type="mongodb", host="127.0.0.1", user="u", password_file=str(pw), names=("app",))
    with _connect(db) as conn:
        argv = mongodb.dump_command(db, conn).argv
        config = Path(next(a for a in argv if a.startswith("--config=")).split("=", 1)[1])
        assert config.read_text() == 'password: "mo\\"ngo"\n'
        assert argv[:2] == ("mongodump", "--archive") and argv[-1] == "--db=app"
        into = mongodb.restore_command("/mongodb-m.archive", conn, "copy", "app").argv
        assert "--nsFrom=app.*" in into and "--nsTo=copy.*" in into and "--drop" in into


@pytest.mark.parametrize("engine,lines,expected", [
    (postgresql, ["pg_dump: warning: x", 'pg_dump: error: query failed: ERROR:  permission denied', "tail"],
     'pg_dump: error: query failed: ERROR:  permission denied'),
    (mariadb, ["Warning: something", "mariadb-dump: Got error: 1045: \"Access denied\" when trying to connect"],
     "mariadb-dump: Got error: 1045: \"Access denied\" when trying to connect"),
    (mongodb, ["2026-01-01T00:00:00\twriting app.c", "2026-01-01T00:00:00\tFailed: error connecting to db server"],
     "2026-01-01T00:00:00\tFailed: error connecting to db server"),
    (postgresql, ["", "something odd happened", ""], "something odd happened"),
])
def test_error_line_prefers_the_tools_fatal_line(engine, lines, expected):
    assert common.error_line(lines, engine.FATAL) == expected


def test_warnings_are_not_fatal():
    assert not common.has_fatal(["pg_dump: warning: could not do x"], postgresql.FATAL)
    assert not common.has_fatal(["2026-01-01T00:00:00\twriting app.c to archive"], mongodb.FATAL)


def test_check_tools_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(VhError, match=re.escape("pg_dump: command not found, needed to dump database hub; "
                                                "install it: apt install postgresql-client")):
        databases.check_tools([Database(name="hub", type="postgresql", names=("hub",))])
    with pytest.raises(VhError, match="mongodb-database-tools from MongoDB's own apt repository"):
        databases.check_tools([Database(name="m", type="mongodb", names=("m",))])
    databases.check_tools([])


def test_policy_allows_one_postgresql_database_per_entry(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("x" * 40 + "\n")
    pw.chmod(0o600)
    policy = tmp_path / "policy.yml"
    policy.write_text(f"repository: {{url: /tmp/r, password_file: {pw}}}\n"
                      "databases:\n  hub:\n    type: postgresql\n    names: [a, b]\n")
    with pytest.raises(PolicyError, match=r"policy.yml:\d+.*one database or 'all'"):
        load_policy(str(policy))
    policy.write_text(f"repository: {{url: /tmp/r, password_file: {pw}}}\n"
                      "databases:\n  hub:\n    type: mariadb\n    names: [a, b]\n")
    assert load_policy(str(policy)).databases[0].names == ("a", "b")
