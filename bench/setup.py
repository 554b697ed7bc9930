"""The benchmark's world: scale, directories, restic repositories, policies, borgmatic's venv, versions."""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone

from bench.measure import quiet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3"
CACHE = os.environ.get("BENCH_CACHE", "/var/cache/vhbackup-bench")
VENV = os.path.join(CACHE, "venv")
BORGMATIC_VERSION = "2.1.10"
HOST = "bench"


@dataclass(frozen=True)
class Scale:
    name: str
    files: int
    bytes: int
    pg_scale: int
    my_rows: int
    rss_scales: tuple[int, int]
    runs: int
    latency_runs: int
    events_rows: int = 0


SCALES = {
    "tiny": Scale("tiny", files=300, bytes=8 << 20, pg_scale=1, my_rows=20_000, rss_scales=(1, 3),
                  runs=2, latency_runs=5, events_rows=30_000),
    "small": Scale("small", files=3000, bytes=100 << 20, pg_scale=5, my_rows=200_000, rss_scales=(1, 10),
                   runs=3, latency_runs=15, events_rows=300_000),
    "large": Scale("large", files=20000, bytes=1 << 30, pg_scale=20, my_rows=2_000_000, rss_scales=(10, 200),
                   runs=5, latency_runs=30, events_rows=1_200_000),
}


@dataclass
class World:
    scale: Scale
    seed: int
    restic: str
    work: str
    log: str
    password_file: str
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    cleanup: list = field(default_factory=list)

    def path(self, *parts: str) -> str:
        return os.path.join(self.work, *parts)

    # --- restic ---------------------------------------------------------------

    def restic_env(self, repo: str, cache: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "PG", "MYSQL"))}
        env.update(RESTIC_REPOSITORY=repo, RESTIC_PASSWORD_FILE=self.password_file, RESTIC_CACHE_DIR=cache,
                   RESTIC_PROGRESS_FPS="1", LC_ALL="C.UTF-8")
        return env

    def new_repo(self, name: str) -> tuple[str, str]:
        """A fresh, initialised repository and its (empty) cache directory."""
        repo, cache = self.path("repos", name), self.path("caches", name)
        shutil.rmtree(repo, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
        os.makedirs(os.path.dirname(repo), exist_ok=True)
        os.makedirs(cache, exist_ok=True)
        quiet([self.restic, "init"], env=self.restic_env(repo, cache), log=self.log)
        return repo, cache

    # --- vhbackup -------------------------------------------------------------

    def write_policy(self, name: str, repo: str, cache: str, services: dict[str, list[str]] | None = None,
                     databases: dict[str, dict] | None = None) -> str:
        import yaml
        doc: dict = {
            "repository": {"url": repo, "password_file": self.password_file, "cache_dir": cache},
            "host": HOST,
            "state_dir": self.path("state", name),
            "restic_binary": self.restic,
            "checks": {"min_free_space": "1MiB"},
        }
        if databases:
            doc["databases"] = databases
        if services:
            doc["services"] = {svc: {"paths": paths} for svc, paths in services.items()}
        os.makedirs(self.path("policies"), exist_ok=True)
        policy = self.path("policies", f"{name}.yml")
        with open(policy, "w") as fh:
            yaml.safe_dump(doc, fh, sort_keys=False)
        return policy

    def vh_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RESTIC_", "PG", "MYSQL", "VHBACKUP_", "JOURNAL_STREAM"))}
        env.update(PYTHONPATH=ROOT, LC_ALL="C.UTF-8")
        return env

    def vh(self, policy: str, *args: str) -> list[str]:
        return [PYTHON, "-m", "vhbackup", "-c", policy, *args]


def make_world(scale_name: str, seed: int, restic: str) -> World:
    if scale_name not in SCALES:
        sys.exit(f"SCALE must be one of {', '.join(SCALES)}, got {scale_name!r}")
    work = os.path.join(CACHE, f"work-{scale_name}")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    password = os.path.join(work, "password")
    fd = os.open(password, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (secrets.token_urlsafe(24) + "\n").encode())
    os.close(fd)
    return World(scale=SCALES[scale_name], seed=seed, restic=restic, work=work,
                 log=os.path.join(work, "bench.log"), password_file=password)


# --- borgmatic ------------------------------------------------------------------

def borgmatic_binary() -> str:
    """borgmatic in a venv of its own (a contender, not a dependency of vhbackup); created on first use."""
    binary = os.path.join(VENV, "bin", "borgmatic")
    if os.access(binary, os.X_OK):
        out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
        if out == BORGMATIC_VERSION:
            return binary
    print(f"bench: installing borgmatic {BORGMATIC_VERSION} into {VENV}", flush=True)
    shutil.rmtree(VENV, ignore_errors=True)
    quiet([PYTHON, "-m", "venv", VENV])
    quiet([os.path.join(VENV, "bin", "pip"), "install", "-q", f"borgmatic=={BORGMATIC_VERSION}"])
    return binary


def borgmatic_env(world: World, home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BORG", "PG", "MYSQL"))}
    os.makedirs(home, exist_ok=True)
    env.update(HOME=home, LC_ALL="C.UTF-8", XDG_RUNTIME_DIR=os.path.join(home, "run"),
               XDG_STATE_HOME=os.path.join(home, "state"), XDG_CACHE_HOME=os.path.join(home, "cache"),
               XDG_CONFIG_HOME=os.path.join(home, "config"))
    os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
    return env


def write_borgmatic_config(world: World, name: str, repo: str, sources: list[str],
                           postgresql: list[dict] | None = None) -> str:
    import yaml
    doc: dict = {
        "source_directories": sources,
        "repositories": [{"path": repo, "label": name}],
        "encryption_passcommand": f"cat {world.password_file}",
        "compression": "zstd,3",
        "archive_name_format": "bench-{now:%Y%m%dT%H%M%S.%f}",
        "borg_base_directory": world.path("borg", name, "base"),
    }
    if postgresql:
        doc["postgresql_databases"] = postgresql
    path = world.path("borg", name, "config.yaml")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        yaml.safe_dump(doc, fh, sort_keys=False)
    return path


# --- what the report says about the machine ---------------------------------------

def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError:
        return "not installed"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "?"


def machine_info(world: World, borgmatic: str | None) -> dict[str, str]:
    cpu = "?"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem_kib = int(fh.readline().split()[1])
    disk = _first_line(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "--target", world.work])
    dev = re.sub(r"\d+$", "", os.path.basename(disk.split()[0])) if disk != "?" else ""
    rotational = ""
    try:
        with open(f"/sys/block/{dev}/queue/rotational") as fh:
            rotational = "rotational" if fh.read().strip() == "1" else "non-rotational"
    except OSError:
        pass
    virt = _first_line(["systemd-detect-virt"])
    os_name = "?"
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as fh:
            os_name = dict(line.rstrip("\n").split("=", 1) for line in fh if "=" in line).get(
                "PRETTY_NAME", "?").strip('"')
    info = {
        "CPU": f"{cpu}, {os.cpu_count()} cores (virtualisation: {virt})",
        "RAM": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "OS / kernel": f"{os_name} / {platform.release()}",
        "Disk (work dir)": f"{disk} {rotational}".strip(),
        "restic": f"{_first_line([world.restic, 'version'])} ({world.restic})",
        "borg": _first_line(["borg", "--version"]),
        "borgmatic": f"{_first_line([borgmatic, '--version'])} (pip, in {VENV})" if borgmatic else "not run",
        "PostgreSQL": _first_line(["psql", "-h", "127.0.0.1", "-U", "postgres", "-At", "-c", "SHOW server_version"]),
        "MariaDB": _first_line(["mysql", "-h", "127.0.0.1", "-u", "root", "-N", "-e", "SELECT VERSION()"]),
        "pg_dump": _first_line(["pg_dump", "--version"]),
        "Python": _first_line([PYTHON, "--version"]),
        "vhbackup": _first_line(["git", "-C", ROOT, "describe", "--always", "--dirty"]),
        "load average at start": " ".join(open("/proc/loadavg").read().split()[:3]),
    }
    return info


def dump_json(path: str, data) -> None:
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1, default=str)
