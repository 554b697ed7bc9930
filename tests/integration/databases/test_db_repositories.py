"""A primary and two copies (local and REST), real restic 0.14 and 0.18: dumps made once, exact restores
from each copy (files and a PostgreSQL database), and the fall-back to a copy when the primary is gone."""

from __future__ import annotations

import json
import secrets
import shutil

import yaml
from dbhelpers import pg_fingerprint, psql

from vhbackup.treediff import describe


def _write_policy(env, tree, pg_name: str, rest_url: str) -> dict:
    policy = env.policy(
        host="vh-copies",
        databases={"pg": {"type": "postgresql", "host": "127.0.0.1", "port": 5432, "user": "postgres",
                          "names": [pg_name]}},
        services={"hub": {"paths": [str(tree)], "databases": ["pg"]}},
    )
    common = {"password_file": str(env.password_file), "cache_dir": str(env.dir / "cache")}
    policy.pop("repository")
    policy["repositories"] = {
        "main": {"url": env.repo_url, **common},
        "nas": {"url": str(env.dir / "nas-repo"), "role": "copy", **common},
        "offsite": {"url": rest_url, "role": "copy", **common},
    }
    env.policy_file.write_text(yaml.safe_dump(policy))
    return policy


def _snapshots(env, url: str) -> list[dict]:
    out = env.run_restic("-r", url, "snapshots", "--json").stdout
    return json.loads(out or "[]") or []


def _config(env, url: str) -> dict:
    return json.loads(env.run_restic("-r", url, "cat", "config").stdout)


def test_primary_and_two_copies(env, tmp_path, dbs, rest_server):
    tree = tmp_path / "hubdata"
    (tree / "conf").mkdir(parents=True)
    (tree / "conf" / "app.ini").write_text("answer = 42\n")
    (tree / "blob.bin").write_bytes(secrets.token_bytes(200_000))
    pg_name = dbs.pgbench("pg")
    rest_url = f"{rest_server}/{tmp_path.name}-{secrets.token_hex(4)}/"
    _write_policy(env, tree, pg_name, rest_url)
    urls = {"main": env.repo_url, "nas": str(env.dir / "nas-repo"), "offsite": rest_url}
    before_files, before_db = describe(str(tree)), pg_fingerprint(pg_name)

    init = env.vh("init")
    assert init.returncode == 0, init.stderr
    chunker = {name: _config(env, url)["chunker_polynomial"] for name, url in urls.items()}
    assert len(set(chunker.values())) == 1, chunker  # copies share the primary's chunker parameters

    runs = []
    for _ in range(2):
        backup = env.vh("backup")
        assert backup.returncode == 0, backup.stderr
        assert "copied 2 snapshot(s)" in backup.stderr and "repository nas" in backup.stderr
        runs.append(json.loads((env.state_dir / "last-backup.json").read_text())["run_id"])

    primary = _snapshots(env, urls["main"])
    assert len(primary) == 4  # per run: one files snapshot, one dump: each dump was made once
    by_id = {s["id"]: s for s in primary}
    for name in ("nas", "offsite"):
        copied = _snapshots(env, urls[name])
        assert len(copied) == 4, name
        for snap in copied:  # the very snapshots of the primary (restic copy), not dumps made again
            assert snap["original"] in by_id, snap
            assert snap["tags"] == by_id[snap["original"]]["tags"]
            assert snap["time"][:19] == by_id[snap["original"]]["time"][:19]
    dumps = [s for s in primary if "db:pg" in s["tags"]]
    assert sorted(s["tags"][s["tags"].index(t)] for s in dumps for t in s["tags"] if t.startswith("run:")) == \
        sorted(f"run:{r}" for r in runs)

    status = env.vh("status", "--json")
    facts = json.loads(status.stdout)
    assert status.returncode == 0, status.stdout
    assert {n: r["status"] for n, r in facts["repositories"].items()} == \
        {"main": "primary", "nas": "ok", "offsite": "ok"}
    prom = (env.state_dir / "vhbackup.prom").read_text()
    for name in urls:
        assert f'vhbackup_repository_last_status{{repository="{name}"}} 0' in prom

    # Exact restores from each copy: files and the database.
    for name in ("nas", "offsite"):
        target = tmp_path / f"restored-{name}"
        files = env.vh("restore", "--latest", "--repository", name, "--files-only", "--target", str(target))
        assert files.returncode == 0, files.stderr
        assert describe(str(target / str(tree).lstrip("/"))) == before_files, name
        psql(f'DROP DATABASE "{pg_name}"')
        db = env.vh("restore", "--latest", "--repository", name, "--databases-only", "--yes")
        assert db.returncode == 0, db.stderr
        assert pg_fingerprint(pg_name) == before_db, name
        listed = env.vh("restore", "--list", "--json", "--repository", name)
        assert [r["id"] for r in json.loads(listed.stdout)] == runs[::-1], listed.stderr

    # verify and drill from a copy, with records of their own (the primary's stay the primary's).
    verify = env.vh("verify", "--quick", "--repository", "offsite")
    assert verify.returncode == 0, verify.stderr
    drill = env.vh("drill", "--repository", "nas")
    assert drill.returncode == 0, drill.stderr
    assert (env.state_dir / "last-verify@offsite.json").exists() and (env.state_dir / "last-drill@nas.json").exists()
    assert not (env.state_dir / "last-verify.json").exists() and not (env.state_dir / "last-drill.json").exists()
    facts = json.loads(env.vh("status", "--json").stdout)
    assert facts["repositories"]["nas"]["last_drill"]["status"] == "success"

    # The primary is gone: restore --latest and --list fall back to the first copy that opens, and say so.
    shutil.rmtree(urls["main"])
    target = tmp_path / "restored-fallback"
    fallback = env.vh("restore", "--latest", "--files-only", "--target", str(target))
    assert fallback.returncode == 0, fallback.stderr
    said = [ln for ln in fallback.stderr.splitlines() if "using copy nas instead" in ln]
    assert len(said) == 1 and "primary repository main cannot be used" in said[0], fallback.stderr
    assert describe(str(target / str(tree).lstrip("/"))) == before_files
    listed = env.vh("restore", "--list", "--json")
    assert listed.returncode == 0 and [r["id"] for r in json.loads(listed.stdout)] == runs[::-1]
    assert "using copy nas instead" in listed.stderr
    # An explicit --repository never falls back.
    explicit = env.vh("restore", "--list", "--repository", "main")
    assert explicit.returncode != 0 and "using copy" not in explicit.stderr
    unknown = env.vh("restore", "--list", "--repository", "tape")
    assert unknown.returncode == 2 and "no repository named 'tape'" in unknown.stderr, unknown.stderr
