"""Helpers for the database tests: real PostgreSQL 15 and MariaDB servers on 127.0.0.1.

Every database a test touches is named ``vhbt_<random>_<what>`` and dropped
at teardown (also the ones a restore creates), so tests never meet each
other's data or anything else on the servers.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess

PG = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
MARIA = ["-h", "127.0.0.1", "-P", "3306", "-u", "root"]


def psql(sql: str, db: str = "postgres") -> str:
    return subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", *PG, "-d", db, "-c", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def maria(sql: str, db: str | None = None) -> str:
    return subprocess.run(["mariadb", *MARIA, "--default-character-set=utf8mb4", "-N", "-B",
                           *([db] if db else []), "-e", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def pg_exists(name: str) -> bool:
    return psql(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'") == "1"


def maria_exists(name: str) -> bool:
    return maria(f"SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{name}'") == "1"


def pg_fingerprint(db: str) -> dict[str, tuple[int, str]]:
    """Per table: row count and an md5 over every row's text, in a fixed order."""
    tables = psql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                  "AND table_type = 'BASE TABLE' ORDER BY 1", db).split()
    out = {}
    for table in tables:
        row = psql(f"SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') "
                   f"FROM {table} t", db)
        count, _, digest = row.partition(" ")
        out[table] = (int(count), digest)
    return out


def maria_fingerprint(db: str) -> dict[str, tuple[int, str]]:
    """Per table: row count and a sha256 over every row as the client prints it (NULLs, blobs as hex)."""
    tables = maria("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' "
                   f"AND TABLE_SCHEMA = '{db}' ORDER BY 1").split()
    out = {}
    for table in tables:
        cols = maria(f"SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' "
                     f"AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION").splitlines()
        binary = ("blob", "mediumblob", "varbinary", "binary")
        exprs = [f"HEX(`{c.split()[0]}`)" if c.split()[1] in binary else f"`{c.split()[0]}`" for c in cols]
        rows = subprocess.run(["mariadb", *MARIA, "--default-character-set=utf8mb4", "-N", "-B", db, "-e",
                               f"SELECT {', '.join(exprs)} FROM `{table}` ORDER BY 1"],
                              check=True, capture_output=True).stdout
        out[table] = (len(rows.splitlines()), hashlib.sha256(rows).hexdigest())
    return out


def maria_schema_objects(db: str) -> dict[str, str]:
    return {
        "view": maria(f"SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{db}'"),
        "trigger": maria(f"SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}'"),
        "routine": maria(f"SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}'"),
    }


MARIA_SCHEMA = """
CREATE TABLE items (
  id INT PRIMARY KEY AUTO_INCREMENT,
  name VARCHAR(200) NOT NULL,
  price DECIMAL(12,2) NULL,
  ratio DOUBLE NULL,
  created DATETIME(6) NULL,
  day DATE NULL,
  note TEXT NULL,
  payload MEDIUMBLOB NULL,
  active BOOLEAN NOT NULL DEFAULT 1,
  kind ENUM('a','b','c') NULL
) CHARACTER SET utf8mb4;
CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, item_id INT, msg VARCHAR(100)) CHARACTER SET utf8mb4;
CREATE VIEW expensive AS SELECT id, name, price FROM items WHERE price > 100;
CREATE TRIGGER items_audit AFTER INSERT ON items FOR EACH ROW
  INSERT INTO audit (item_id, msg) VALUES (NEW.id, CONCAT('added ', NEW.name));
CREATE FUNCTION price_with_tax(p DECIMAL(12,2)) RETURNS DECIMAL(12,2) DETERMINISTIC RETURN p * 1.2;
INSERT INTO items (name, price, ratio, created, day, note, payload, active, kind) VALUES
  ('ünïcødé データ 🎉', 12.34, 0.5, '2024-01-02 03:04:05.123456', '2024-01-02', NULL, UNHEX('00FF10'), 1, 'a'),
  ('quote''s and "doubles" \\\\ back', NULL, NULL, NULL, NULL, 'line1\\nline2\\ttab', NULL, 0, NULL),
  ('expensive', 999.99, -1e300, '1999-12-31 23:59:59', '1999-12-31', '', UNHEX(REPEAT('AB', 70000)), 1, 'c');
INSERT INTO items (name, price, ratio, payload)
  SELECT CONCAT('row ', seq), seq * 1.5, seq / 7, RANDOM_BYTES(32) FROM seq_1_to_2000;
"""


class Databases:
    """Creates uniquely named databases and drops every one of them (and any registered extra name) afterwards."""

    def __init__(self):
        self.prefix = f"vhbt_{secrets.token_hex(3)}"
        self.pg: list[str] = []
        self.maria: list[str] = []

    def name(self, what: str) -> str:
        return f"{self.prefix}_{what}"

    def pg_name(self, what: str) -> str:
        name = self.name(what)
        self.pg.append(name)
        return name

    def maria_name(self, what: str) -> str:
        name = self.name(what)
        self.maria.append(name)
        return name

    def pgbench(self, what: str, scale: int = 1) -> str:
        name = self.pg_name(what)
        psql(f'CREATE DATABASE "{name}"')
        subprocess.run(["pgbench", *PG, "-i", "-q", "-s", str(scale), name], check=True, capture_output=True)
        psql("UPDATE pgbench_branches SET filler = 'ünïcødé ✓' WHERE bid = 1", name)
        return name

    def mariadb(self, what: str) -> str:
        name = self.maria_name(what)
        maria(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        subprocess.run(["mariadb", *MARIA, "--default-character-set=utf8mb4", name], input=MARIA_SCHEMA.encode(),
                       check=True, capture_output=True)
        return name

    def cleanup(self) -> None:
        for name in self.pg:
            subprocess.run(["psql", "-X", "-q", *PG, "-d", "postgres", "-c",
                            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], capture_output=True)
        for name in self.maria:
            subprocess.run(["mariadb", *MARIA, "-e", f"DROP DATABASE IF EXISTS `{name}`"], capture_output=True)


def snapshots(env, *tags: str) -> list[dict]:
    args = ["snapshots", "--json"]
    for tag in tags:
        args += ["--tag", tag]
    return json.loads(env.run_restic(*args).stdout or "[]") or []


def runs_json(env) -> list[dict]:
    result = env.vh("restore", "--list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
