"""MongoDB through stand-in mongodump/mongorestore executables (no MongoDB server or tools are installable here).

The stand-ins record their argv and the --config file they were given, write
or read a known byte stream, and fail the way mongodump does, so the command
lines, the streaming in both directions and the failure handling are real;
MongoDB's own behaviour is not.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess

from dbhelpers import runs_json, snapshots
from tests.conftest import write_secret

MONGODUMP = r'''#!/usr/bin/python3
import json, os, sys
args = sys.argv[1:]
db = next((a.split("=", 1)[1] for a in args if a.startswith("--db=")), "ALL")
conf = next((a.split("=", 1)[1] for a in args if a.startswith("--config=")), None)
record = {"argv": sys.argv, "config": open(conf).read() if conf else None}
with open(os.path.join(os.environ["STANDIN_DIR"], f"mongodump-{db}.json"), "w") as fh:
    json.dump(record, fh)
payload = b"\x6d\xe2\x99\x81" + (f"archive of {db}\n" * 20000).encode() + bytes(range(256))
if db == "broken":
    sys.stdout.buffer.write(payload[:70000])
    sys.stdout.flush()
    print("2026-01-01T00:00:00.000+0000\tFailed: error connecting to db server: no reachable servers", file=sys.stderr)
    sys.exit(1)
sys.stdout.buffer.write(payload)
if db == "liar":
    print("2026-01-01T00:00:00.000+0000\tFailed: error writing data for collection `liar.c`: boom", file=sys.stderr)
'''

MONGORESTORE = r'''#!/usr/bin/python3
import json, os, sys
data = sys.stdin.buffer.read()
conf = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--config=")), None)
d = os.environ["STANDIN_DIR"]
n = len([f for f in os.listdir(d) if f.startswith("mongorestore-") and f.endswith(".json")])
with open(os.path.join(d, f"mongorestore-{n}.json"), "w") as fh:
    json.dump({"argv": sys.argv, "config": open(conf).read() if conf else None, "size": len(data)}, fh)
with open(os.path.join(d, f"mongorestore-{n}.bin"), "wb") as fh:
    fh.write(data)
'''


def _expected(db: str) -> bytes:
    """What the stand-in writes: mongodump's archive magic number, then a known body."""
    return b"\x6d\xe2\x99\x81" + (f"archive of {db}\n" * 20000).encode() + bytes(range(256))


def test_mongodb_dumps_restores_and_failures_with_stand_ins(env, tmp_path):
    bindir, standin = tmp_path / "bin", tmp_path / "standin"
    bindir.mkdir()
    standin.mkdir()
    for name, text in (("mongodump", MONGODUMP), ("mongorestore", MONGORESTORE)):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    password = f"mongo-{secrets.token_hex(10)}"
    pw_file = write_secret(tmp_path / "mongo-password", password)
    env.write_policy(databases={
        "app": {"type": "mongodb", "host": "127.0.0.1", "port": 27017, "user": "backup", "password_file": pw_file,
                "names": ["appdb"], "options": ["--authenticationDatabase=admin"]},
        "everything": {"type": "mongodb", "host": "127.0.0.1", "names": "all"},
        "broken": {"type": "mongodb", "host": "127.0.0.1", "names": ["broken"]},
        "liar": {"type": "mongodb", "host": "127.0.0.1", "names": ["liar"]},
    })
    run_env = {"PATH": f"{bindir}:{os.environ['PATH']}", "STANDIN_DIR": str(standin)}
    assert env.vh("init").returncode == 0

    backup = env.vh("backup", env=run_env)
    assert backup.returncode == 1
    last = backup.stderr.strip().splitlines()[-1]
    assert "database broken: mongodump failed (exit 1): 2026-01-01T00:00:00.000+0000\tFailed: error connecting " \
           "to db server: no reachable servers; nothing was saved" in last
    assert "database liar: mongodump reported an error although it exited 0: 2026-01-01T00:00:00.000+0000\t" \
        "Failed: error writing data" in last
    assert "database app" not in last and "database everything" not in last
    assert snapshots(env, "db:broken") == [] and snapshots(env, "db:liar") == []
    assert sorted(runs_json(env)[0]["databases"]) == ["app", "everything"]
    [app] = snapshots(env, "db:app")
    assert app["paths"] == ["/mongodb-app.archive"]
    stored = subprocess.run([env.restic, "dump", app["id"], "/mongodb-app.archive"], env=env.restic_env(),
                            capture_output=True, check=True).stdout
    assert stored == _expected("appdb")

    dumped = json.loads((standin / "mongodump-appdb.json").read_text())
    assert dumped["argv"][1:2] == ["--archive"] and "--db=appdb" in dumped["argv"]
    assert "--username=backup" in dumped["argv"] and "--authenticationDatabase=admin" in dumped["argv"]
    assert dumped["config"] == f'password: "{password}"\n'
    assert not any(password in arg for arg in dumped["argv"])
    config_path = next(a.split("=", 1)[1] for a in dumped["argv"] if a.startswith("--config="))
    assert not os.path.exists(config_path)
    everything = json.loads((standin / "mongodump-ALL.json").read_text())
    assert not any(a.startswith("--db=") for a in everything["argv"])

    refused = env.vh("restore", "--latest", "--database", "app", env=run_env)
    assert refused.returncode == 1 and "cannot tell whether mongodb database appdb" in refused.stderr
    assert not list(standin.glob("mongorestore-*"))

    assert env.vh("restore", "--latest", "--database", "app", "--yes", env=run_env).returncode == 0
    restored = json.loads((standin / "mongorestore-0.json").read_text())
    assert (standin / "mongorestore-0.bin").read_bytes() == _expected("appdb")
    assert restored["argv"][1:3] == ["--archive", "--drop"]
    assert restored["config"] == f'password: "{password}"\n'
    assert not any(a.startswith("--nsFrom") for a in restored["argv"])

    result = env.vh("restore", "--latest", "--database", "app", "--into-database", "appcopy", "--yes", env=run_env)
    assert result.returncode == 0, result.stderr
    into = json.loads((standin / "mongorestore-1.json").read_text())
    assert "--nsFrom=appdb.*" in into["argv"] and "--nsTo=appcopy.*" in into["argv"]

    whole = env.vh("restore", "--latest", "--database", "everything", "--into-database", "x", "--yes", env=run_env)
    assert whole.returncode == 2 and "holds several databases" in whole.stderr
    assert env.vh("restore", "--latest", "--database", "everything", "--yes", env=run_env).returncode == 0
    assert (standin / "mongorestore-2.bin").read_bytes() == _expected("ALL")
