"""A local primary and two copies on other backends, real restic 0.14 and 0.18: one on S3 (moto, AWS keys in
the copy's env_file) and one on an append-only REST server (``rclone serve restic --append-only``).

A run makes each dump once (every copied snapshot is one of the primary's: restic's ``original`` field),
and restore and drill from each copy are exact, files and a PostgreSQL database."""

from __future__ import annotations

import json
import os
import secrets
import subprocess

import yaml
from dbhelpers import pg_fingerprint, psql

from tests.conftest import write_secret
from vhbackup.treediff import describe


def _snapshots(env, url: str, extra: dict | None = None) -> list[dict]:
    out = subprocess.run([env.restic, "-r", url, "snapshots", "--json"], capture_output=True, text=True, check=True,
                         env={**env.restic_env(), **(extra or {})}).stdout
    return json.loads(out or "[]") or []


def test_local_primary_with_s3_and_append_only_rest_copies(env, tmp_path, dbs, s3_server, rest_server_append_only):
    tree = tmp_path / "hubdata"
    (tree / "conf").mkdir(parents=True)
    (tree / "conf" / "app.ini").write_text("answer = 42\n")
    (tree / "blob.bin").write_bytes(secrets.token_bytes(300_000))
    os.symlink("conf/app.ini", tree / "link")
    pg_name = dbs.pgbench("pg")
    name = f"{tmp_path.name}-{secrets.token_hex(4)}".lower().replace("_", "-")[-40:].strip("-")
    s3_url = s3_server.url(f"vh-{name}")
    rest_url = f"{rest_server_append_only}/{name}/"
    aws = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    s3_env_file = write_secret(tmp_path / "s3.env", "".join(f"{k}={v}\n" for k, v in aws.items()))

    policy = env.policy(
        host="vh-offsite",
        databases={"pg": {"type": "postgresql", "host": "127.0.0.1", "port": 5432, "user": "postgres",
                          "names": [pg_name]}},
        services={"hub": {"paths": [str(tree)], "databases": ["pg"]}},
    )
    common = {"password_file": str(env.password_file), "cache_dir": str(env.dir / "cache")}
    policy.pop("repository")
    policy["repositories"] = {
        "main": {"url": env.repo_url, **common},
        "s3": {"url": s3_url, "role": "copy", "env_file": s3_env_file, **common},
        "vault": {"url": rest_url, "role": "copy", "append_only": True,
                  "retention": {"within": "30d", "daily": 7}, **common},
    }
    env.policy_file.write_text(yaml.safe_dump(policy))
    before_files, before_db = describe(str(tree)), pg_fingerprint(pg_name)

    init = env.vh("init")
    assert init.returncode == 0, init.stderr
    runs = []
    for _ in range(2):
        backup = env.vh("backup")
        assert backup.returncode == 0, backup.stderr
        for repo in ("s3", "vault"):
            assert "copied 2 snapshot(s)" in backup.stderr and f"repository {repo}" in backup.stderr, backup.stderr
        runs.append(json.loads((env.state_dir / "last-backup.json").read_text())["run_id"])

    primary = _snapshots(env, env.repo_url)
    assert len(primary) == 4  # per run: one files snapshot and one dump: each dump was made once
    by_id = {s["id"]: s for s in primary}
    for repo, url, extra in (("s3", s3_url, aws), ("vault", rest_url, None)):
        copied = _snapshots(env, url, extra)
        assert len(copied) == 4, repo
        for snap in copied:  # the primary's very snapshots, copied; no dump made again for a copy
            assert snap["original"] in by_id, snap
            assert snap["tags"] == by_id[snap["original"]]["tags"]
    assert sorted(t for s in primary if "db:pg" in s["tags"] for t in s["tags"] if t.startswith("run:")) == \
        sorted(f"run:{r}" for r in runs)

    facts = json.loads(env.vh("status", "--json").stdout)
    assert {n: r["status"] for n, r in facts["repositories"].items()} == \
        {"main": "primary", "s3": "ok", "vault": "ok"}, facts["repositories"]

    for repo in ("s3", "vault"):
        target = tmp_path / f"restored-{repo}"
        files = env.vh("restore", "--latest", "--repository", repo, "--files-only", "--target", str(target))
        assert files.returncode == 0, files.stderr
        assert describe(str(target / str(tree).lstrip("/"))) == before_files, repo
        psql(f'DROP DATABASE "{pg_name}"')
        db = env.vh("restore", "--latest", "--repository", repo, "--databases-only", "--yes")
        assert db.returncode == 0, db.stderr
        assert pg_fingerprint(pg_name) == before_db, repo
        listed = env.vh("restore", "--list", "--json", "--repository", repo)
        assert [r["id"] for r in json.loads(listed.stdout)] == runs[::-1], listed.stderr
        drill = env.vh("drill", "--repository", repo)
        assert drill.returncode == 0, drill.stdout + drill.stderr
        record = json.loads((env.state_dir / f"last-drill@{repo}.json").read_text())
        assert record["status"] == "success", record
    # the append-only copy was never pruned from here, and still holds every snapshot
    assert len(_snapshots(env, rest_url)) == 4
