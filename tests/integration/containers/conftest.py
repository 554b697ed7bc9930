"""A real compose project in podman: MariaDB, PostgreSQL and a web service with a volume.

The image is built once from a debootstrapped Debian root and cached
(tools/container-image.sh, keyed by a hash of the script); podman runs
with its own settings and storage under /var/cache/vhbackup-tests/podman
(CONTAINERS_CONF / CONTAINERS_STORAGE_CONF, inherited by vhbackup's own
podman calls). Every container uses ``--network host`` with ports chosen
free at start (never the host's 3306/5432). Everything a test creates
(containers, volumes) carries the project's label or a vhbt_ name and is
removed at teardown, also after a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port

PROJECT_LABEL = "com.docker.compose.project"


def podman(*args: str, check: bool = True, input: bytes | None = None, timeout: float = 120):
    return subprocess.run(["podman", *args], capture_output=True, check=check, input=input, timeout=timeout)


@pytest.fixture(scope="session")
def podman_image():
    out = subprocess.run([str(ROOT / "tools" / "container-image.sh")], capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr
    settings, image = out.stdout.split()
    os.environ["CONTAINERS_CONF"] = f"{settings}/containers.conf"
    os.environ["CONTAINERS_STORAGE_CONF"] = f"{settings}/storage.conf"
    return image


@dataclass
class Stack:
    project: str
    dir: Path
    maria_port: int
    pg_port: int
    web_port: int

    def container(self, service: str) -> str:
        out = podman("ps", "-a", "--filter", f"label={PROJECT_LABEL}={self.project}", "--filter",
                     f"label=com.docker.compose.service={service}", "--format", "{{.Names}}").stdout.decode()
        return out.split()[0]

    @property
    def volume(self) -> str:
        return f"{self.project}_webdata"

    def started_at(self, name: str) -> str:
        return podman("inspect", "--format", "{{.State.StartedAt}}", name).stdout.decode().strip()

    def running(self, name: str) -> bool:
        return podman("inspect", "--format", "{{.State.Running}}", name).stdout.decode().strip() == "true"

    def psql(self, sql: str, db: str = "postgres") -> str:
        return podman("exec", "-i", self.container("pg"), "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-p",
                      str(self.pg_port), "-U", "postgres", "-d", db, "-c", sql).stdout.decode().strip()

    def maria(self, sql: str, db: str | None = None) -> str:
        return podman("exec", "-i", self.container("maria"), "mariadb", "-N", "-B",
                      "--default-character-set=utf8mb4", *([db] if db else []), "-e", sql).stdout.decode().strip()

    def pg_fingerprint(self, db: str) -> dict:
        out = {}
        for table in self.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", db).split():
            out[table] = self.psql(f"SELECT count(*) || ' ' || md5(string_agg(t::text, E'\\n' ORDER BY t::text)) "
                                   f"FROM {table} t", db)
        return out

    def maria_fingerprint(self, db: str) -> dict:
        out = {}
        for table in self.maria(f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' "
                                "AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1").split():
            out[table] = self.maria(f"SELECT COUNT(*), SHA2(GROUP_CONCAT(CONCAT_WS('|', id, name, HEX(payload)) "
                                    f"ORDER BY id SEPARATOR '\\n'), 256) FROM `{table}`", db)
        return out


#: The project's services as compose would create them: command, port, volumes (name: mount point).
SERVICES = {"maria": ("vh-mariadb", "maria_port", {}), "pg": ("vh-postgres", "pg_port", {}),
            "web": ("vh-web", "web_port", {"webdata": "/srv/www"})}


def compose_up(st: Stack, image: str) -> None:
    """What ``docker compose up -d`` does for this project, with the labels every compose implementation sets.

    podman-compose 1.0.3 (Debian 12) cannot run it: with ``network_mode:
    host`` it still adds its project network and podman refuses the pair.
    vhbackup finds compose services by these labels only, so the
    containers are made with ``podman run`` directly.
    """
    for service, (command, port, volumes) in SERVICES.items():
        args = ["run", "-d", "--name", f"{st.project}_{service}_1", "--network", "host",
                "--label", f"{PROJECT_LABEL}={st.project}", "--label", f"com.docker.compose.service={service}",
                "--label", "com.docker.compose.container-number=1", "-e", f"PORT={getattr(st, port)}"]
        for volume, mount in volumes.items():
            podman("volume", "create", "--label", f"{PROJECT_LABEL}={st.project}", f"{st.project}_{volume}")
            args += ["-v", f"{st.project}_{volume}:{mount}"]
        podman(*args, image, command)


def remove_project(project: str) -> None:
    ids = podman("ps", "-aq", "--filter", f"label={PROJECT_LABEL}={project}", check=False).stdout.decode().split()
    if ids:
        podman("rm", "-f", "-t", "0", *ids, check=False)
    vols = podman("volume", "ls", "-q", "--filter", f"label={PROJECT_LABEL}={project}",
                  check=False).stdout.decode().split()
    vols += [v for v in podman("volume", "ls", "-q", check=False).stdout.decode().split()
             if v.startswith(f"{project}_")]
    if vols:
        podman("volume", "rm", "-f", *dict.fromkeys(vols), check=False)


def wait_ready(stack: Stack) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pg = podman("exec", stack.container("pg"), "pg_isready", "-q", "-p", str(stack.pg_port), check=False)
        ma = podman("exec", stack.container("maria"), "mariadb-admin", "ping", check=False)
        if pg.returncode == 0 and ma.returncode == 0:
            return
        time.sleep(0.3)
    raise AssertionError("the containers' databases did not come up within 60 s")


@pytest.fixture(scope="module")
def stack(podman_image, tmp_path_factory):
    """The project up (``compose_up``), with data in both databases and a file in the web volume."""
    project = f"vhbt{secrets.token_hex(3)}"
    folder = tmp_path_factory.mktemp("compose")
    st = Stack(project, folder, free_port(), free_port(), free_port())
    try:
        compose_up(st, podman_image)
        wait_ready(st)
        st.psql("CREATE DATABASE hub")
        st.psql("CREATE TABLE items (id int PRIMARY KEY, name text, payload bytea); "
                "INSERT INTO items SELECT g, 'ünïcødé ' || g, decode(md5(g::text), 'hex') "
                "FROM generate_series(1, 3000) g", "hub")
        st.maria("CREATE DATABASE shop CHARACTER SET utf8mb4")
        st.maria("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(100), payload BLOB) CHARACTER SET utf8mb4; "
                 "INSERT INTO items SELECT seq, CONCAT('データ ', seq), RANDOM_BYTES(16) FROM seq_1_to_3000", "shop")
        podman("exec", "-i", st.container("web"), "sh", "-c", "cat > /srv/www/index.html", input=b"<h1>hub</h1>\n")
        yield st
    finally:
        remove_project(project)


@pytest.fixture
def lone_container(podman_image):
    """A running container outside the project (it must never be stopped)."""
    name = f"vhbt_lone_{secrets.token_hex(3)}"
    podman("run", "-d", "--name", name, "--network", "host", "-e", f"PORT={free_port()}", podman_image, "vh-web")
    yield name
    podman("rm", "-f", "-t", "0", name, check=False)


def container_policy(env, stack: Stack, **extra) -> dict:
    """hub: stops the compose service web, backs up its volume, dumps both databases inside their containers."""
    policy = {
        "container_engine": "podman",
        "services": {"hub": {"compose": {"project": stack.project, "services": ["web"]},
                             "volumes": [stack.volume], "databases": ["hubpg", "shop"]}},
        "databases": {
            "hubpg": {"type": "postgresql", "compose": {"project": stack.project, "service": "pg"},
                      "port": stack.pg_port, "user": "postgres", "names": ["hub"]},
            "shop": {"type": "mariadb", "compose": {"project": stack.project, "service": "maria"}},
        },
    }
    policy.update(extra)
    return policy


def snapshots(env, *tags: str) -> list[dict]:
    args = ["snapshots", "--json"]
    for tag in tags:
        args += ["--tag", tag]
    return json.loads(env.run_restic(*args).stdout or "[]") or []


def vh_popen(env, *args: str, **kwargs) -> subprocess.Popen:
    """``env.vh(...)`` started in the background (to signal or kill it while it runs)."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("DRY_RUN", "VHBACKUP_CONFIG", "JOURNAL_STREAM",
                                                                   "NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY")}
    full_env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(["/usr/bin/python3", "-m", "vhbackup", "-c", str(env.policy_file), *args],
                            env=full_env, stdin=subprocess.DEVNULL, **kwargs)
