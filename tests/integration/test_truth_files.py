"""Issue 9, files: paths are literal, a missing path is never a silent success, a restore stays in its target.

Real restic 0.14 and 0.18; every test would have passed wrongly (or failed) on vhbackup 0.1.0:
- 0.1.0 handed policy paths to ``restic restore --include`` as patterns (9.2);
- a configured path that did not exist, or excludes that covered everything, were "success" (9.3);
- ``--target`` resolving to ``/`` skipped the in-place safeguards, and restic 0.14 followed a symlink
  planted in the target out of it (9.5);
- non-UTF-8 file names made ``verify --snapshot`` and ``drill`` report damage (9.9).
"""

from __future__ import annotations

import json
import os

from tests.conftest import Env
from vhbackup.treediff import describe, differences


def status(env: Env) -> tuple[int, str]:
    result = env.vh("status")
    return result.returncode, result.stdout.strip()


def last_record(env: Env) -> dict:
    return json.loads((env.state_dir / "last-backup.json").read_text())


# --- 9.2: literal paths ------------------------------------------------------------------

def test_paths_with_glob_characters_restore_only_their_own_service(env, tmp_path):
    """``/srv/app[1]`` is a file name: restoring service a must not touch service b's ``/srv/app1``."""
    srv = tmp_path / "srv"
    names = {"a": "app[1]", "b": "app1", "c": "st*r", "d": "stxr", "e": "q?x", "f": "qzx"}
    for service, name in names.items():
        (srv / name).mkdir(parents=True)
        (srv / name / "data.txt").write_text(f"{service} original\n")
    env.write_policy(services={s: {"paths": [str(srv / n)]} for s, n in names.items()})
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0, env.vh("status").stdout
    for service, name in names.items():
        (srv / name / "data.txt").write_text(f"{service} changed after the backup\n")

    for service in ("a", "c", "e"):
        result = env.vh("restore", "--latest", "--service", service, "--yes")
        assert result.returncode == 0, result.stderr
    for service, name in names.items():
        expected = f"{service} original\n" if service in ("a", "c", "e") else f"{service} changed after the backup\n"
        assert (srv / name / "data.txt").read_text() == expected, (service, name)

    target = tmp_path / "target"
    assert env.vh("restore", "--latest", "--service", "b", "--target", str(target)).returncode == 0
    restored = sorted(p.name for p in (target / str(srv).lstrip("/")).iterdir())
    assert restored == ["app1"]


# --- 9.3: a missing path is at least partial ------------------------------------------------

def test_missing_path_is_partial_names_it_and_status_warns(env, tmp_path):
    present = tmp_path / "present"
    present.mkdir()
    (present / "f").write_text("x\n")
    gone = tmp_path / "gone"
    env.write_policy(services={"hub": {"paths": [str(present), str(gone)]}})
    check = env.vh("config", "check")
    assert check.returncode == 0 and f"warning: {gone} does not exist: a backup now would be partial" in check.stdout
    assert env.vh("init").returncode == 0
    result = env.vh("backup")
    assert result.returncode == 3, result.stderr
    assert f"{gone} does not exist" in result.stderr
    code, line = status(env)
    assert code == 1 and line.startswith("WARNING:") and f"files:hub: {gone} does not exist" in line
    assert last_record(env)["items"]["files:hub"]["status"] == "partial"


def test_optional_missing_path_is_a_success(env, tmp_path):
    present = tmp_path / "present"
    present.mkdir()
    (present / "f").write_text("x\n")
    env.write_policy(services={"hub": {"paths": [str(present), {"path": str(tmp_path / "maybe"), "optional": True}]}})
    assert "warning" not in env.vh("config", "check").stdout
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    assert status(env)[0] == 0


def test_a_service_whose_paths_all_vanished_failed_and_is_not_restorable_from_that_run(env, tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "f").write_text("x\n")
    gone = tmp_path / "gone"
    gone.mkdir()
    (gone / "g").write_text("old\n")
    env.write_policy(services={"keep": {"paths": [str(keep)]}, "gone": {"paths": [str(gone)]}})
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    first = last_record(env)["run_id"]
    (gone / "g").unlink()
    gone.rmdir()
    result = env.vh("backup")
    assert result.returncode == 1
    assert f"files:gone: nothing saved: {gone} does not exist" in result.stderr
    code, line = status(env)
    assert code == 2 and "files:gone" in line
    listing = json.loads(env.vh("restore", "--list", "--json").stdout)
    assert listing[0]["services"] == ["keep"]
    plan = env.vh("restore", "--latest", "--service", "gone", "--dry-run", "--target", str(tmp_path / "t"))
    assert f"restore run {first}" in plan.stdout  # the newest run that really holds it


def test_excludes_that_cover_every_path_are_not_success(env, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.log").write_text("x\n")
    env.write_policy(services={"hub": {"paths": [str(data)]}}, exclude=["data"])
    assert f"{data} is excluded by the pattern 'data'" in env.vh("config", "check").stdout
    assert env.vh("init").returncode == 0
    result = env.vh("backup")
    assert result.returncode == 1 and "is excluded by the pattern" in result.stderr
    assert status(env)[0] == 2


def test_a_snapshot_with_no_file_is_partial(env, tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "x.tmp").write_text("x\n")
    env.write_policy(services={"hub": {"paths": [str(data)]}}, exclude=["*.tmp"])
    assert env.vh("init").returncode == 0
    result = env.vh("backup")
    assert result.returncode == 3 and "holds no file" in result.stderr
    assert status(env)[0] == 1


def test_a_path_that_is_a_symlink_is_partial_and_named(env, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "f").write_text("x\n")
    link = tmp_path / "link"
    link.symlink_to(real)
    env.write_policy(services={"hub": {"paths": [str(link)]}})
    assert env.vh("init").returncode == 0
    result = env.vh("backup")
    assert result.returncode == 1 and f"{link} is a symbolic link (to {real})" in result.stderr


# --- 9.5: the restore stays where it was told ---------------------------------------------------

def test_a_target_that_resolves_to_root_is_an_in_place_restore(env, tmp_path, sample_tree):
    env.write_policy(services={"hub": {"paths": [str(sample_tree / "srv/hub/data")]}})
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    (tmp_path / "to-root").symlink_to("/")
    for target in (str(tmp_path / "to-root"), "/tmp/..", "//"):
        result = env.vh("restore", "--latest", "--target", target)
        assert result.returncode == 1, target
        assert "restoring in place replaces live data; pass --yes" in result.stderr


def test_a_target_another_user_could_redirect_is_refused_before_anything_is_written(env, tmp_path, sample_tree):
    """The target is resolved once; a directory on its way that another user owns (or may rename entries of)
    could be swapped for a link to / while the restore runs, and restic would write through it: over the
    live system, without --yes and with the units running. Refused, naming it; nothing restored or recorded.
    A target under a sticky directory such as /tmp stays allowed."""
    env.write_policy(services={"hub": {"paths": [str(sample_tree / "srv/hub/data")]}})
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    theirs = tmp_path / "home-of-nobody"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    open_dir = tmp_path / "shared"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = {str(theirs / "restore"): f"{theirs} belongs to uid 65534",
             str(theirs): f"{theirs} belongs to uid 65534",
             str(open_dir / "restore"): f"{open_dir} is writable by others (mode 0777)",
             str(open_dir): f"{open_dir} is writable by others (mode 0777)",
             str(a_file): f"{a_file} is not a directory",
             str(a_file / "x"): f"{a_file} is not a directory"}
    for target, reason in cases.items():
        result = env.vh("restore", "--latest", "--target", target)
        assert result.returncode == 2, (target, result.stderr)
        assert reason in result.stderr and "\n" not in result.stderr.strip(), result.stderr
    assert not (theirs / "restore").exists() and not (open_dir / "restore").exists()
    assert not (env.state_dir / "last-restore.json").exists()
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    result = env.vh("restore", "--latest", "--target", str(sticky / "restore"))
    assert result.returncode == 0, result.stderr
    assert (sticky / "restore" / str(sample_tree / "srv/hub/data").lstrip("/")).is_dir()


def test_restic_014_does_not_follow_a_symlink_planted_in_the_target(tmp_path, sample_tree):
    from tests.conftest import RESTIC, make_env
    env = make_env(tmp_path, RESTIC["0.14"])
    env.write_policy(services={"hub": {"paths": [str(sample_tree / "srv/hub/data")]}})
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    target = tmp_path / "target"
    outside = tmp_path / "outside"
    outside.mkdir()
    planted = target / str(sample_tree / "srv/hub").lstrip("/")
    planted.mkdir(parents=True)
    (planted / "data").symlink_to(outside)  # whoever can write the target points the restore elsewhere
    result = env.vh("restore", "--latest", "--target", str(target))
    assert result.returncode == 1
    assert "is a symbolic link where the backup has a directory" in result.stderr
    assert list(outside.iterdir()) == []


def test_restic_018_restore_replaces_a_planted_symlink_without_following_it(tmp_path, sample_tree):
    from tests.conftest import RESTIC, make_env
    env = make_env(tmp_path, RESTIC["0.18"])
    env.write_policy(services={"hub": {"paths": [str(sample_tree / "srv/hub/data")]}})
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    target = tmp_path / "target"
    outside = tmp_path / "outside"
    outside.mkdir()
    planted = target / str(sample_tree / "srv/hub").lstrip("/")
    planted.mkdir(parents=True)
    (planted / "data").symlink_to(outside)
    env.vh("restore", "--latest", "--target", str(target))
    assert list(outside.iterdir()) == []


# --- 9.9: file names are bytes ---------------------------------------------------------------

def test_non_utf8_names_verify_and_drill_clean(env, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for raw in (b"bad\xff\xfename", b"trunc\xe2\x82", b"ok-\xc3\xa9", b"sur\xed\xa0\x80"):
        with open(os.path.join(os.fsencode(data), raw), "wb") as fh:
            fh.write(raw * 10)
    os.mkdir(os.path.join(os.fsencode(data), b"dir\xff"))
    env.write_policy(services={"hub": {"paths": [str(data)]}})
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    run_id = last_record(env)["run_id"]
    verify = env.vh("verify", "--snapshot", run_id)
    assert verify.returncode == 0, verify.stderr
    drill = env.vh("drill")
    assert drill.returncode == 0, drill.stderr
    target = tmp_path / "target"
    assert env.vh("restore", "--latest", "--target", str(target)).returncode == 0
    restored = target / str(data).lstrip("/")
    assert sorted(os.listdir(os.fsencode(restored))) == sorted(os.listdir(os.fsencode(data)))
    assert differences(describe(str(data)), describe(str(restored))) == []


def test_latest_of_everything_says_which_items_come_back_older_than_their_newest_backup(env, tmp_path):
    """A database dump failing for days, or runs of one service only: the newest run holding *everything* is
    old, and 'restore --latest' brought every file back from then without a word, although newer backups of
    them existed. It still restores that one run, but names each item it brings back older than it could."""
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "f.txt").write_text("old\n")
    env.write_policy(services={"a": {"paths": [str(a)]}, "b": {"paths": [str(b)]}})
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    first = last_record(env)["run_id"]
    (a / "f.txt").write_text("new\n")
    assert env.vh("backup", "--service", "a").returncode == 0
    second = last_record(env)["run_id"]
    target = tmp_path / "t"
    result = env.vh("restore", "--latest", "--target", str(target))
    assert result.returncode == 0, result.stderr
    assert f"files:a has a newer backup than run {first}: run {second}" in result.stderr, result.stderr
    assert "files:b has a newer" not in result.stderr
    alone = env.vh("restore", "--latest", "--service", "a", "--target", str(tmp_path / "t2"))
    assert alone.returncode == 0 and "newer backup" not in alone.stderr
    assert (tmp_path / "t2" / str(a).lstrip("/") / "f.txt").read_text() == "new\n"


def test_a_shared_repository_restores_and_drills_this_hosts_runs_not_the_newest_of_any_host(tmp_path):
    """Two servers with the same policy (service hub, same path) back up into one repository. The docs say a
    restore looks for this host's snapshots (prune already kept to them), but 'restore --latest' took the
    newest run of any host: alpha got beta's files in place. And 'drill' drilled beta's run and said alpha
    passed."""
    from tests.conftest import RESTIC, make_env
    restic = RESTIC["0.14"]
    data = tmp_path / "srv" / "hub"
    data.mkdir(parents=True)
    (tmp_path / "alpha-box").mkdir()
    (tmp_path / "beta-box").mkdir()
    alpha = make_env(tmp_path / "alpha-box", restic)
    beta = make_env(tmp_path / "beta-box", restic, repo_url=alpha.repo_url)
    beta.password_file.write_text(alpha.password_file.read_text())
    for env, host in ((alpha, "alpha"), (beta, "beta")):
        env.write_policy(host=host, services={"hub": {"paths": [str(data)]}})
    assert alpha.vh("init").returncode == 0
    (data / "owner.txt").write_text("alpha\n")
    assert alpha.vh("backup").returncode == 0
    alpha_run = last_record(alpha)["run_id"]
    (data / "owner.txt").write_text("beta\n")
    assert beta.vh("backup").returncode == 0
    target = tmp_path / "t"
    result = alpha.vh("restore", "--latest", "--target", str(target))
    assert result.returncode == 0, result.stderr
    assert (target / str(data).lstrip("/") / "owner.txt").read_text() == "alpha\n"
    drill = alpha.vh("drill")
    assert drill.returncode == 0, drill.stderr
    assert json.loads((alpha.state_dir / "last-drill.json").read_text())["details"]["drilled_run"] == alpha_run
