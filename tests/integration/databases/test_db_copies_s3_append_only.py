"""A local primary and two copies on other backends, real restic 0.14 and 0.18: one on S3 (moto, AWS keys in
the copy's env_file) and one on an append-only REST server (``rclone serve restic --append-only``).

A run makes each dump once (every copied snapshot is one of the primary's: restic's ``original`` field),
and restore and drill from each copy are exact, files and a PostgreSQL database."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import yaml
from dbhelpers import pg_fingerprint, psql

from tests.conftest import PYTHON, ROOT, write_secret
from vhbackup.commands.recovery_sheet import BEGIN, END, RECOVERY_DIR
from vhbackup.credentials import SYSTEMD_CREDENTIAL_SOURCE
from vhbackup.treediff import describe


def _snapshots(env, url: str, extra: dict | None = None) -> list[dict]:
    out = subprocess.run([env.restic, "-r", url, "snapshots", "--json"], capture_output=True, text=True, check=True,
                         env={**env.restic_env(), **(extra or {})}).stdout
    return json.loads(out or "[]") or []


def _three_repositories(env, tmp_path, dbs, s3_server, rest_server_append_only):
    """A local primary ``main``, a copy ``s3`` (AWS keys in its env_file) and an append-only REST copy ``vault``."""
    tree = tmp_path / "hubdata"
    (tree / "conf").mkdir(parents=True)
    (tree / "conf" / "app.ini").write_text("answer = 42\n")
    (tree / "blob.bin").write_bytes(secrets.token_bytes(300_000))
    os.symlink("conf/app.ini", tree / "link")
    pg_name = dbs.pgbench("pg")
    name = f"{tmp_path.name}-{secrets.token_hex(4)}".lower().replace("_", "-")[-40:].strip("-")
    urls = {"main": env.repo_url, "s3": s3_server.url(f"vh-{name}"), "vault": f"{rest_server_append_only}/{name}/"}
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
        "main": {"url": urls["main"], **common},
        "s3": {"url": urls["s3"], "role": "copy", "env_file": s3_env_file, **common},
        "vault": {"url": urls["vault"], "role": "copy", "append_only": True,
                  "retention": {"within": "30d", "daily": 7}, **common},
    }
    env.policy_file.write_text(yaml.safe_dump(policy))
    return tree, pg_name, urls, aws


def test_local_primary_with_s3_and_append_only_rest_copies(env, tmp_path, dbs, s3_server, rest_server_append_only):
    tree, pg_name, urls, aws = _three_repositories(env, tmp_path, dbs, s3_server, rest_server_append_only)
    s3_url, rest_url = urls["s3"], urls["vault"]
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


def _sheet_part(text: str, part: str) -> list[str]:
    block = text.split(BEGIN.format(part=part) + "\n", 1)[1].split(END.format(part=part), 1)[0]
    return block.splitlines()


def _run_sheet_lines(env, lines: list[str], recovery: Path, etc_credentials: Path) -> subprocess.CompletedProcess:
    """The sheet's lines as written, under ``sh -e``, with what this host cannot do as a new server would:
    no apt-get (the packages are here), /root/recovery and /etc/vhbackup/credentials moved below the test's
    directory (never the host's /etc), ``restic`` and ``vhbackup`` the ones under test."""
    script = []
    for line in lines:
        if line.startswith("apt-get "):
            continue
        line = line.replace(RECOVERY_DIR, str(recovery))
        line = line.replace(os.path.dirname(SYSTEMD_CREDENTIAL_SOURCE), str(etc_credentials))
        line = line.replace(" restic dump ", f" {env.restic} dump ")
        if line.startswith("vhbackup "):
            line = f"{PYTHON} -m vhbackup " + line[len("vhbackup "):]
        script.append(line)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_", "VHBACKUP_"))}
    return subprocess.run(["sh", "-e", "-c", "\n".join(script)], capture_output=True, text=True,
                          env={**clean, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL, timeout=600)


def test_recovery_sheet_restores_the_latest_run_from_a_copy_when_the_primary_is_lost(
        env, tmp_path, dbs, s3_server, rest_server_append_only):
    tree, pg_name, urls, aws = _three_repositories(env, tmp_path, dbs, s3_server, rest_server_append_only)
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    (tree / "conf" / "app.ini").write_text("answer = 43\n")
    psql(f'CREATE TABLE "late_{secrets.token_hex(3)}" (x int)', pg_name)
    backup = env.vh("backup")
    assert backup.returncode == 0, backup.stderr
    latest = json.loads((env.state_dir / "last-backup.json").read_text())["run_id"]
    before_files, before_db = describe(str(tree)), pg_fingerprint(pg_name)

    data = env.vh("recovery-sheet", "--json")
    text = env.vh("recovery-sheet")
    assert data.returncode == 0 and text.returncode == 0, data.stderr + text.stderr
    sheet = json.loads(data.stdout)
    ids = {"main": None, "s3": None, "vault": None}
    for name, url in urls.items():
        out = subprocess.run([env.restic, "-r", url, "cat", "config"], capture_output=True, text=True, check=True,
                             env={**env.restic_env(), **(aws if name == "s3" else {})}).stdout
        ids[name] = json.loads(out)["id"]
    assert [(r["name"], r["role"], r["url"], r["id"], r["append_only"]) for r in sheet["repositories"]] == [
        ("main", "primary", urls["main"], ids["main"], False), ("s3", "copy", urls["s3"], ids["s3"], False),
        ("vault", "copy", urls["vault"], ids["vault"], True)]
    assert f"repository vault (copy, append-only from the host):  {urls['vault']}" in text.stdout
    for name in ids:
        assert ids[name] in text.stdout
    assert sheet["commands"]["restore@s3"] == [f"vhbackup -c {env.policy_file} restore --latest --repository s3 --yes"]
    for secret in (env.password_file.read_text().strip(), s3_server.secret_key):
        assert secret not in text.stdout + data.stdout

    # The server is lost, and its primary repository with it: only the sheet and the credential files remain.
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    shutil.copy(env.password_file, recovery / "restic-password")
    shutil.copy(tmp_path / "s3.env", recovery / "s3.env")
    (recovery / "recovery-sheet.txt").write_text(text.stdout)
    for path in (urls["main"], env.state_dir, env.dir / "cache", tree):
        shutil.rmtree(path)
    for path in (env.password_file, tmp_path / "s3.env", env.policy_file):
        path.unlink()
    psql(f'DROP DATABASE "{pg_name}"')

    sheet_text = (recovery / "recovery-sheet.txt").read_text()
    etc_credentials = tmp_path / "etc-credentials"
    got = _run_sheet_lines(env, _sheet_part(sheet_text, "get-policy from copy s3"), recovery, etc_credentials)
    assert got.returncode == 0, got.stdout + got.stderr
    assert f"{latest}" in got.stdout  # restore --list --repository s3 shows the latest run
    assert (etc_credentials / "restic-password").read_bytes() == (recovery / "restic-password").read_bytes()
    restored = _run_sheet_lines(env, _sheet_part(sheet_text, "restore from copy s3"), recovery, etc_credentials)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert describe(str(tree)) == before_files
    assert pg_fingerprint(pg_name) == before_db
