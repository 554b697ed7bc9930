"""verify --spot against real restic (0.14 and 0.18): live trees against the latest backup."""

from __future__ import annotations

import json
import os
import random
import secrets
import time

import pytest


def make_tree(root, files: int, prefix: str) -> list:
    paths = []
    for i in range(files):
        path = root / f"d{i % 7}" / f"{prefix}-{i}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(secrets.token_bytes(1000 + 37 * i))
        paths.append(path)
    return paths


@pytest.fixture
def backed_up(env, tmp_path):
    app, other = tmp_path / "srv/app", tmp_path / "srv/other"
    app_files = make_tree(app, 100, "a")
    make_tree(other, 20, "o")
    (app / "cache.tmp").write_bytes(b"x" * 5000)
    env.write_policy(host="web01", exclude=["*.tmp"],
                     services={"app": {"paths": [str(app)]}, "other": {"paths": [str(other)]}},
                     verify={"spot_sample": 1000})
    assert env.vh("init").returncode == 0
    result = env.vh("backup")
    assert result.returncode == 0, result.stderr
    return env, app, app_files


def spot_record(env) -> dict:
    return json.loads((env.state_dir / "last-spot.json").read_text())


def test_files_encrypted_in_place_with_their_mtime_kept_fail_the_spot_check(backed_up):
    env, app, app_files = backed_up
    clean = env.vh("verify", "--spot")
    assert clean.returncode == 0, clean.stderr
    assert spot_record(env)["level"] == "OK"
    # 5% of the app's files rewritten with random bytes, same size, mtime put back
    victims = random.Random(7).sample(app_files, 5)
    for path in victims:
        st = path.stat()
        path.write_bytes(secrets.token_bytes(st.st_size))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    result = env.vh("verify", "--spot")
    assert result.returncode == 1, result.stderr
    assert "spot check of app: 5 of 100 sampled files have the size and mtime of the backup but other content" \
        in result.stderr
    assert str(victims[0]) in result.stderr or str(sorted(map(str, victims))[0]) in result.stderr
    record = json.loads((env.state_dir / "last-verify.json").read_text())
    assert record["status"] == "failure" and record["details"]["spot"]["level"] == "CRITICAL"
    by_service = {s["service"]: s for s in record["details"]["spot"]["services"]}
    assert by_service["other"]["level"] == "OK" and by_service["app"]["level"] == "CRITICAL"
    assert sorted(by_service["app"]["mismatched"]) == sorted(map(str, victims))
    status = env.vh("status")
    assert status.returncode == 2 and "spot check" in status.stdout and "app" in status.stdout, status.stdout
    # a repository check that passes does not make status forget it: only a spot check that passes does
    assert env.vh("verify", "--quick").returncode == 0
    assert env.vh("status").returncode == 2
    scratch = env.dir / "cache" / "spot"
    assert not scratch.exists() or not any(scratch.iterdir()), "the sample's scratch copy was left behind"


def test_daily_churn_passes_and_a_mass_deletion_is_a_warning(backed_up):
    env, app, app_files = backed_up
    (app / "d1" / "new-1.dat").write_bytes(b"n" * 2000)
    (app / "d2" / "new-2.dat").write_bytes(b"m" * 3000)
    later = time.time() + 5
    for path in app_files[:3]:
        path.write_bytes(path.read_bytes() + b"appended")
        os.utime(path, (later, later))
    for i in range(50):  # excluded by the policy: not counted
        (app / f"junk{i}.tmp").write_bytes(b"j" * 1000)
    env.write_policy(host="web01", exclude=["*.tmp"],
                     services={"app": {"paths": [str(app)]}, "other": {"paths": [str(app.parent / "other")]}},
                     verify={"spot": True, "spot_sample": 1000, "spot_tolerance": {"files": "5%", "size": "10%"}})
    result = env.vh("verify", "--quick")  # verify.spot: the timer's verify includes the spot check
    assert result.returncode == 0, result.stderr
    assert "spot check" in json.loads((env.state_dir / "last-verify.json").read_text())["details"]["mode"]
    spot = spot_record(env)
    assert spot["level"] == "OK", spot
    app_spot = next(s for s in spot["services"] if s["service"] == "app")
    assert app_spot["live_files"] == 102 and app_spot["backed_files"] == 100 and app_spot["changed"] == 3
    assert env.vh("status").returncode == 0
    # a fifth of the files gone: beyond the 5% tolerance, a warning that names the service
    for path in app_files[50:70]:
        path.unlink()
    result = env.vh("verify", "--spot")
    assert result.returncode == 3, result.stderr
    assert "spot check of app: 82 files now, 100 in the backup" in result.stderr
    record = json.loads((env.state_dir / "last-verify.json").read_text())
    assert record["status"] == "partial" and record["details"]["spot"]["level"] == "WARNING"
    status = env.vh("status")
    assert status.returncode == 1 and "spot check" in status.stdout and "app" in status.stdout, status.stdout
    facts = json.loads(env.vh("status", "--json").stdout)
    assert facts["last_spot"]["level"] == "WARNING", facts


def test_odd_names_links_and_excludes_are_no_false_alarm(env, sample_tree):
    """Spaces, a newline, non-UTF-8 bytes and glob characters in names, symlinks, excluded files: all as backed up."""
    hub = sample_tree / "srv/hub/data"
    (hub / "glob[1]*?.txt").write_text("glob\n")
    with open(os.path.join(os.fsencode(hub), b"latin1-\xe9t\xe9.txt"), "wb") as fh:
        fh.write(b"not utf-8 name\n")
    from tests.conftest import sample_policy
    env.write_policy(**sample_policy(sample_tree), verify={"spot_sample": 1000})
    assert env.vh("init").returncode == 0
    assert env.vh("backup").returncode == 0
    result = env.vh("verify", "--spot")
    assert result.returncode == 0, result.stderr
    spot = spot_record(env)
    assert spot["level"] == "OK", spot
    hub_spot = next(s for s in spot["services"] if s["service"] == "hub")
    # every regular file but the excluded skip.tmp; the non-UTF-8 name is counted but not sampled
    assert hub_spot["live_files"] == hub_spot["backed_files"] == 8 and hub_spot["changed"] == 0
    assert hub_spot["sampled"] == 7 and hub_spot["mismatched"] == []
