"""Fixtures of the fault-injection suite; the harness (stand-ins, the world, the invariants) is harness.py."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import RESTIC_VERSIONS, Env, make_env, restic_for
from tests.faults.harness import MARIA, PG, SYSTEMCTL, Databases, RestServer, World, scratch_databases, write_exe

# --- seeds and worlds ---------------------------------------------------------------------------

def _make_tree(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/app.conf").write_text("key = value\n")
    (root / "var").mkdir()
    (root / "var/blob.bin").write_bytes(secrets.token_bytes(2 << 20))
    for i in range(20):
        (root / "var" / f"f{i}.txt").write_text(f"file {i}\n" * 50)
    return root


@pytest.fixture(scope="session", params=RESTIC_VERSIONS, ids=lambda v: f"restic{v}")
def seed(request, tmp_path_factory):
    """One good backup of the world, per restic version and module; tests copy it."""
    base = tmp_path_factory.mktemp("seed")
    dbs = Databases()
    token = dbs.prefix.removeprefix("vhbt_")
    try:
        pg = dbs.pgbench("live")
        maria_db = dbs.mariadb("live")
        bindir = base / "bin"
        bindir.mkdir()
        write_exe(bindir / "systemctl", SYSTEMCTL)
        units = base / "units"
        units.mkdir()
        world = World(env=make_env(base, restic_for(request.param)), dbs=dbs, pg_key=f"fpg{token}",
                      maria_key=f"fmaria{token}", pg=pg, maria=maria_db, tree=_make_tree(base / "data"),
                      unit=f"vhbt-app-{token}.service", bin=bindir, units=units)
        world.write_policy()
        world.start_unit()
        assert world.vh("init").returncode == 0
        first = world.vh("backup")
        assert first.returncode == 0, first.stderr
        world.stop_unit()
        yield world
    finally:
        dbs.cleanup()


@pytest.fixture
def world(seed, tmp_path) -> World:
    """A copy of the seed (repository, state, password) with its own running unit and stand-in directory."""
    env = Env(dir=tmp_path, restic=seed.env.restic, repo_url=str(tmp_path / "repo"))
    shutil.copy2(seed.env.password_file, env.password_file)
    shutil.copytree(seed.repo, tmp_path / "repo")
    shutil.copytree(seed.env.state_dir, env.state_dir)
    (tmp_path / "bin").mkdir()
    shutil.copy2(seed.bin / "systemctl", tmp_path / "bin" / "systemctl")
    (tmp_path / "units").mkdir()
    made = Databases()
    made.prefix = seed.dbs.prefix  # restores go to <prefix>_<what>, dropped at the end of the test
    w = World(env=env, dbs=made, pg_key=seed.pg_key, maria_key=seed.maria_key, pg=seed.pg, maria=seed.maria,
              tree=seed.tree, unit=seed.unit, bin=tmp_path / "bin", units=tmp_path / "units",
              complete=seed.complete)
    w.write_policy()
    w.start_unit()
    try:
        yield w
    finally:
        w.stop_unit()
        made.cleanup()
        _drop_scratch(w)


def _drop_scratch(w: World) -> None:
    for name in scratch_databases(w):
        subprocess.run(["psql", "-X", "-q", *PG, "-d", "postgres", "-c",
                        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], capture_output=True)
        subprocess.run(["mariadb", *MARIA, "-e", f"DROP DATABASE IF EXISTS `{name}`"], capture_output=True)


# --- small file systems and servers -------------------------------------------------------------

@pytest.fixture
def small_fs(tmp_path):
    """Mount tmpfs file systems of a given size (bytes) under tmp_path; all unmounted afterwards."""
    mounted = []

    def mount(name: str, size: int) -> Path:
        path = tmp_path / name
        path.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True)
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def rest_world(world):
    """The world with its repository served over REST (the server can be killed)."""
    server = RestServer(world.repo)
    world.env.repo_url = server.url
    world.write_policy(repository={"url": server.url})
    try:
        yield world, server
    finally:
        server.kill()


