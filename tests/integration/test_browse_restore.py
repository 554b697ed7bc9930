"""Issue 12 (1, 2): browse runs (ls, find, diff) and restore a part of one (--path, --before, --to-stdout).

Real restic 0.14 and 0.18. Runs are the unit: every command names runs by
their vhbackup run id. Paths are literal: a name with spaces, ``[``, ``*``
and ``?`` sits next to siblings its glob reading would match, and only it
is restored.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import PYTHON, RESTIC_VERSIONS, ROOT, Env, make_env, restic_for
from vhbackup.treediff import describe

OLD = time.time() - 86400 * 50


def run_ids(env: Env) -> list[str]:
    """Run ids, newest first."""
    result = env.vh("restore", "--list", "--json")
    assert result.returncode == 0, result.stderr
    return [r["id"] for r in json.loads(result.stdout)]


def backup(env: Env) -> str:
    result = env.vh("backup")
    assert result.returncode == 0, result.stderr
    return run_ids(env)[0]


def vh_bytes(env: Env, *args: str) -> subprocess.CompletedProcess:
    """The CLI with stdout as bytes (for --to-stdout)."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("DRY_RUN", "VHBACKUP_CONFIG", "JOURNAL_STREAM")}
    full_env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([PYTHON, "-m", "vhbackup", "-c", str(env.policy_file), *args], env=full_env,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=600)


def state(path: Path) -> tuple[bytes, int, int]:
    st = os.lstat(path)
    return path.read_bytes(), st.st_mode & 0o7777, int(st.st_mtime)


@pytest.fixture(scope="module", params=RESTIC_VERSIONS, ids=lambda v: f"restic{v}")
def history(request, tmp_path_factory):
    """Four runs of service app; ``docs/report.txt`` was deleted after the first (three runs ago).

    Made once per restic version for the tests of this module that share it (each leaves the runs as they
    are and changes only what it restores again or checks itself).
    """
    tmp_path = tmp_path_factory.mktemp("history")
    env = make_env(tmp_path, restic_for(request.param))
    app = tmp_path / "srv" / "app"
    (app / "docs").mkdir(parents=True)
    (app / "dir [x]").mkdir()
    (app / "dir x").mkdir()
    report = app / "docs" / "report.txt"
    report.write_text("the quarterly report\n")
    report.chmod(0o640)
    os.utime(report, (OLD, OLD))
    (app / "docs" / "sibling.txt").write_text("sibling v1\n")
    (app / "dir [x]" / "a*b?.txt").write_text("the glob-named file\n")
    (app / "dir [x]" / "aXbY.txt").write_text("a sibling the glob would match\n")
    (app / "dir [x]" / "my notes.txt").write_text("notes in the bracket folder\n")
    (app / "dir x" / "a*b?.txt").write_text("in the folder the glob would match\n")
    (app / "blob.bin").write_bytes(secrets.token_bytes(300_000) + b"\x00\xff\r\n\x1a" * 1000)
    env.write_policy(services={"app": {"paths": [str(app)]}, "other": {"paths": [str(tmp_path / "other")]}})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "report.txt").write_text("another service's report\n")
    assert env.vh("init").returncode == 0
    first = backup(env)
    original = state(report)
    report.unlink()
    second = backup(env)
    (app / "docs" / "sibling.txt").write_text("sibling v2\n")
    third = backup(env)
    fourth = backup(env)
    return {"env": env, "app": app, "report": report, "original": original, "runs": [first, second, third, fourth]}


def test_find_a_file_deleted_three_runs_ago_and_restore_exactly_it(history, tmp_path):
    env = history["env"]
    app, report, runs = history["app"], history["report"], history["runs"]
    found = env.vh("find", "report.txt", "--service", "app", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert [h["run"] for h in hits] == [runs[0]]  # only the first run holds it; --service left out "other"
    assert [(i["path"], i["size"], i["mode"]) for i in hits[0]["items"]] == [(str(report), 21, 0o640)]
    human = env.vh("find", "report.txt")
    assert human.returncode == 0 and f"run {runs[0]}" in human.stdout and str(report) in human.stdout
    assert str(Path(str(app).replace("srv/app", "other")) / "report.txt") in human.stdout  # all services

    # live changes after the last run that the restore must leave alone
    (app / "docs" / "sibling.txt").write_text("sibling changed live\n")
    (app / "docs" / "new-live.txt").write_text("made after the last backup\n")
    before = describe(str(app))

    to = tmp_path / "target"
    result = env.vh("restore", "--latest", "--path", str(report), "--target", str(to))
    assert result.returncode == 0, result.stderr
    restored = to / str(report).lstrip("/")
    assert state(restored) == history["original"]
    files = [p for p in to.rglob("*") if not p.is_dir()]
    assert files == [restored]

    refused = env.vh("restore", "--latest", "--path", str(report))
    assert refused.returncode == 1 and "--yes" in refused.stderr and not report.exists()
    result = env.vh("restore", "--latest", "--path", str(report), "--yes")
    assert result.returncode == 0, result.stderr
    assert state(report) == history["original"]
    after = describe(str(app))
    del after["docs/report.txt"]
    for tree in (before, after):  # the parent's mtime changes when a file is created in it
        tree.pop("docs")
    assert after == before
    assert (app / "docs" / "sibling.txt").read_text() == "sibling changed live\n"
    record = json.loads((env.state_dir / "last-restore.json").read_text())
    assert record["status"] == "success" and record["details"]["run"] == runs[0]


def test_find_searches_a_window_of_runs_and_says_when_it_left_older_ones_out(history):
    """find hands restic only the window's files snapshots: the newest N (default 30), --after/--before, --all."""
    env, runs = history["env"], history["runs"]  # newest last; report.txt only in runs[0]
    cut = env.vh("find", "report.txt", "--service", "app", "--newest", "2")
    assert cut.returncode == 1 and "searched the newest 2 of 4 runs; --all for every run" in cut.stderr, cut.stderr
    for args in (["--newest", "4"], ["--all"], []):
        whole = env.vh("find", "report.txt", "--service", "app", *args)
        assert whole.returncode == 0 and f"run {runs[0]}" in whole.stdout, (args, whole.stderr)
        assert "searched the newest" not in whole.stdout + whole.stderr
    two = env.vh("find", "sibling.txt", "--newest", "2")
    assert two.returncode == 0, two.stderr
    assert [ln.split()[1] for ln in two.stdout.splitlines() if ln.startswith("run ")] == [runs[3], runs[2]]
    assert two.stdout.splitlines()[-1] == "searched the newest 2 of 4 runs; --all for every run"
    as_json = env.vh("find", "sibling.txt", "--newest", "1", "--json")
    assert as_json.returncode == 0 and [h["run"] for h in json.loads(as_json.stdout)] == [runs[3]]
    assert "searched the newest 1 of 4 runs" in as_json.stderr

    listing = json.loads(env.vh("restore", "--list", "--json").stdout)
    listed = {r["id"]: datetime.fromisoformat(r["time"]) for r in listing}
    third = listed[runs[2]].astimezone().strftime("%Y-%m-%d %H:%M:%S")  # runs are seconds apart
    since = env.vh("find", "sibling.txt", "--after", third, "--json")
    assert since.returncode == 0, since.stderr
    assert [h["run"] for h in json.loads(since.stdout)] == [runs[3], runs[2]]
    until = env.vh("find", "sibling.txt", "--before", third, "--json")
    assert [h["run"] for h in json.loads(until.stdout)] == [runs[1], runs[0]]
    none = env.vh("find", "sibling.txt", "--before", "2001-01-01")
    assert none.returncode == 1 and "no backup run holds a file matching 'sibling.txt'" in none.stderr


def test_a_folder_and_names_with_spaces_and_glob_characters_are_literal(history, tmp_path):
    env = history["env"]
    app = history["app"]
    folder = app / "dir [x]"
    to = tmp_path / "target"
    result = env.vh("restore", "--latest", "--path", str(folder), "--target", str(to))
    assert result.returncode == 0, result.stderr
    base = to / str(app).lstrip("/")
    assert sorted(p.name for p in base.iterdir()) == ["dir [x]"]  # not "dir x", which [x] would match
    assert describe(str(base / "dir [x]")) == describe(str(folder))

    globbed = folder / "a*b?.txt"
    to2 = tmp_path / "target2"
    result = env.vh("restore", "--latest", "--path", str(globbed), "--path", str(folder / "my notes.txt"),
                    "--target", str(to2))
    assert result.returncode == 0, result.stderr
    got = sorted(str(p.relative_to(to2)) for p in to2.rglob("*") if p.is_file())
    assert got == sorted(str(p).lstrip("/") for p in (globbed, folder / "my notes.txt"))

    # in place: the glob-named file comes back, its siblings that the pattern would match keep their live content
    for path in (globbed, folder / "aXbY.txt", app / "dir x" / "a*b?.txt"):
        path.write_text("changed live\n")
    result = env.vh("restore", "--latest", "--path", str(globbed), "--yes")
    assert result.returncode == 0, result.stderr
    assert globbed.read_text() == "the glob-named file\n"
    assert (folder / "aXbY.txt").read_text() == "changed live\n"
    assert (app / "dir x" / "a*b?.txt").read_text() == "changed live\n"

    listing = env.vh("ls", "latest", str(folder), "--json")
    assert listing.returncode == 0, listing.stderr
    paths = [i["path"] for i in json.loads(listing.stdout)["items"]]
    assert paths == [str(folder), str(globbed), str(folder / "aXbY.txt"), str(folder / "my notes.txt")]
    one = env.vh("ls", str(globbed))
    assert one.returncode == 0 and one.stdout.splitlines()[-1].endswith(f"  {globbed}")
    assert len(one.stdout.splitlines()) == 3


def test_to_stdout_is_byte_exact_and_refuses_a_directory(history):
    env = history["env"]
    app = history["app"]
    result = vh_bytes(env, "restore", "--latest", "--path", str(app / "blob.bin"), "--to-stdout")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (app / "blob.bin").read_bytes()
    old = vh_bytes(env, "restore", "--snapshot", history["runs"][0], "--path", str(history["report"]),
                   "--to-stdout")
    assert old.returncode == 0 and old.stdout == history["original"][0]
    folder = vh_bytes(env, "restore", "--latest", "--path", str(app / "docs"), "--to-stdout")
    assert folder.returncode == 2 and folder.stdout == b""
    assert b"--to-stdout writes one regular file" in folder.stderr and len(folder.stderr.splitlines()) == 1
    gone = vh_bytes(env, "restore", "--snapshot", history["runs"][1], "--path", str(history["report"]),
                    "--to-stdout")
    assert gone.returncode == 1 and gone.stdout == b"" and b"does not hold" in gone.stderr


def test_diff_lists_exactly_the_changes_between_two_runs(env, tmp_path):
    app = tmp_path / "srv" / "app"
    app.mkdir(parents=True)
    for name in ("keep.txt", "gone.txt", "content.txt", "mode.sh"):
        (app / name).write_text(f"{name} v1\n")
    env.write_policy(services={"app": {"paths": [str(app)]}})
    assert env.vh("init").returncode == 0
    first = backup(env)
    (app / "gone.txt").unlink()
    (app / "added.txt").write_text("new\n")
    (app / "sub").mkdir()
    (app / "sub" / "deep.txt").write_text("deep\n")
    (app / "content.txt").write_text("content.txt v2, longer\n")
    (app / "mode.sh").chmod(0o755)
    second = backup(env)

    result = env.vh("diff", first, second, "--json")
    assert result.returncode == 0, result.stderr
    changes = {(c["change"], c["path"][len(str(app)):], tuple(c["what"])) for c in json.loads(result.stdout)["changes"]}
    assert changes == {("removed", "/gone.txt", ()), ("added", "/added.txt", ()), ("added", "/sub", ()),
                       ("added", "/sub/deep.txt", ()), ("changed", "/content.txt", ("content", "size", "mtime")),
                       ("changed", "/mode.sh", ("mode",))}
    human = env.vh("diff", first, "latest")
    assert human.returncode == 0, human.stderr
    assert f"- {app}/gone.txt" in human.stdout and f"M {app}/mode.sh  (mode)" in human.stdout
    assert "3 added, 1 removed, 2 changed" in human.stdout
    same = env.vh("diff", second, second, "--json")
    assert json.loads(same.stdout)["changes"] == []


def test_before_picks_the_right_run_across_a_retention_boundary(env, tmp_path):
    """Runs made with faked times; ``vhbackup prune`` removes some; --before picks the newest survivor before."""
    app = tmp_path / "srv" / "app"
    app.mkdir(parents=True)
    env.write_policy(host="browsehost", services={"app": {"paths": [str(app)]}}, retention={"daily": 3})
    assert env.vh("init").returncode == 0
    times = ["2026-11-17 02:00:00", "2026-11-18 02:00:00", "2026-11-19 02:00:00", "2026-11-19 14:00:00",
             "2026-11-20 02:00:00"]
    ids = {}
    for nr, when in enumerate(times):
        (app / "f.txt").write_text(f"generation {nr}\n")
        only_early = app / "early.txt"
        if nr <= 1:
            only_early.write_text(f"early {nr}\n")
        elif only_early.exists():
            only_early.unlink()
        run = f"2026111{nr}-020000-bb{nr:02d}"
        args = [env.restic, "backup", "--json", "--host", "browsehost", "--time", when, "--tag", "vhbackup",
                "--tag", "service:app", "--tag", f"run:{run}", str(app)]
        subprocess.run(args, env=env.restic_env(), capture_output=True, check=True)
        ids[nr] = run
    # daily 3 keeps the newest of each of the three newest days: runs 4 (Nov 20), 3 (Nov 19 14:00), 1 (Nov 18)
    assert env.vh("prune").returncode == 0
    assert set(run_ids(env)) == {ids[4], ids[3], ids[1]}

    to = tmp_path / "t1"
    result = env.vh("restore", "--before", "2026-11-19 12:00", "--target", str(to))
    assert result.returncode == 0, result.stderr
    assert (to / str(app).lstrip("/") / "f.txt").read_text() == "generation 1\n"  # run 2 was pruned
    to = tmp_path / "t2"
    result = env.vh("restore", "--before", "2026-11-19 20:00", "--path", str(app / "f.txt"), "--target", str(to))
    assert result.returncode == 0, result.stderr
    assert (to / str(app).lstrip("/") / "f.txt").read_text() == "generation 3\n"
    # with --path, "holds" means the path exists in that run: early.txt is only in run 1 (runs 0 and 2 pruned)
    out = vh_bytes(env, "restore", "--before", "2026-11-20 12:00", "--path", str(app / "early.txt"), "--to-stdout")
    assert out.returncode == 0 and out.stdout == b"early 1\n", out.stderr
    none = env.vh("restore", "--before", "2026-11-18 00:00", "--target", str(tmp_path / "t3"))
    assert none.returncode == 1 and "no backup run before 2026-11-18 00:00" in none.stderr
    assert not (tmp_path / "t3").exists()


def test_ls_shows_a_runs_paths_and_database_items(env, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "x").write_text("x\n")
    env.write_policy(services={"app": {"paths": [str(app)]}})
    assert env.vh("init").returncode == 0
    run = backup(env)
    dump = subprocess.run([env.restic, "backup", "--json", "--stdin", "--stdin-filename", "main.sql",
                           "--tag", "vhbackup", "--tag", "db:main", "--tag", "service:app", "--tag", f"run:{run}"],
                          env=env.restic_env(), input=b"-- a dump\n" * 10, capture_output=True, check=True)
    assert dump.returncode == 0
    result = env.vh("ls", run, "--json")
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)["items"]
    # The run also holds the policy it was made with (the recovery bundle): a path like any other.
    assert [(i["type"], i["path"]) for i in items] == [("dir", str(app)), ("file", str(env.policy_file)),
                                                       ("database", "db:main")]
    assert items[2]["size"] == 100
    everything = env.vh("ls", "-R", run, "--json")
    assert [i["path"] for i in json.loads(everything.stdout)["items"]] == [str(app), str(app / "x"),
                                                                           str(env.policy_file), "db:main"]
    human = env.vh("ls")
    assert "database" in human.stdout and "db:main" in human.stdout and str(app) in human.stdout
    missing = env.vh("ls", run, str(app / "nope"))
    assert missing.returncode == 1 and "does not hold" in missing.stderr
