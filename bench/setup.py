"""The benchmark's world: scale, directories, restic repositories, policies, the machine and its versions."""

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
HOST = "bench"


@dataclass(frozen=True)
class Scale:
    """The sizes of one benchmark scale (``reference`` is the layout the targets of issue 14 name)."""
    name: str
    services: int
    files_per_service: int
    bytes_per_service: int
    pg_scale: int  # pgbench -i -s
    my_rows: int  # rows of the MariaDB table
    runs: int  # rounds of the side-by-side scenarios
    status_history: int  # recorded runs in state_dir for `vhbackup status`
    status_runs: int
    retention_runs: int  # runs (one per day) of the synthetic snapshot list
    retention_groups: int  # snapshot groups (files, databases) per run
    retention_samples: int
    change_fraction: float = 0.01  # of the files, rewritten before each nightly round


SCALES = {
    # A smoke test of every code path (about 2 minutes): the figures mean little.
    "tiny": Scale("tiny", services=10, files_per_service=100, bytes_per_service=1 << 20, pg_scale=1,
                  my_rows=20_000, runs=3, status_history=10_000, status_runs=9, retention_runs=1100,
                  retention_groups=12, retention_samples=3),
    # Issue 14's reference layout; the targets are judged at this scale.
    "reference": Scale("reference", services=10, files_per_service=2000, bytes_per_service=20 * 10**6,
                       pg_scale=20, my_rows=2_000_000, runs=5, status_history=10_000, status_runs=21,
                       retention_runs=1100, retention_groups=12, retention_samples=5),
}
DEFAULT_SCALE = "reference"


@dataclass
class World:
    scale: Scale
    seed: int
    restic: str
    work: str
    log: str
    password_file: str
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    run_id: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("bench-%Y%m%d-%H%M%S-")
                        + secrets.token_hex(2))

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
                     databases: dict[str, dict] | None = None, restic_binary: str | None = None,
                     state_dir: str | None = None) -> str:
        import yaml
        doc: dict = {
            "repository": {"url": repo, "password_file": self.password_file, "cache_dir": cache},
            "host": HOST,
            "state_dir": state_dir or self.path("state", name),
            "restic_binary": restic_binary or self.restic,
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


# --- what the report says about the machine ---------------------------------------

def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError:
        return "not installed"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "?"


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    with open("/proc/loadavg") as fh:
        return [float(x) for x in fh.read().split()[:3]]


def restic_version(restic: str) -> str:
    return _first_line([restic, "version"])


def machine_info(world: World) -> dict[str, str]:
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
    return {
        "CPU": f"{cpu} (virtualisation: {virt})",
        "cores": str(os.cpu_count()),
        "RAM": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "OS / kernel": f"{os_name} / {platform.release()}",
        "Disk (work dir)": f"{disk} {rotational}".strip(),
        "PostgreSQL": _first_line(["psql", "-h", "127.0.0.1", "-U", "postgres", "-At", "-c", "SHOW server_version"]),
        "MariaDB": _first_line(["mysql", "-h", "127.0.0.1", "-u", "root", "-N", "-e", "SELECT VERSION()"]),
        "pg_dump": _first_line(["pg_dump", "--version"]),
        "Python": _first_line([PYTHON, "--version"]),
    }


def dump_json(path: str, data) -> None:
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1, default=str)
