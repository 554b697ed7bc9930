#!/usr/bin/python3
"""Issue 10's copy benchmark: a backup run with one copy vs the same run plus bare ``restic copy``.

Two worlds with the same data on local repositories (so that the figures are
vhbackup's and restic's work, not a network's):

- **vhbackup + copy**: ``repositories:`` with a primary and a copy; ``vhbackup
  backup`` makes the run and copies it (``restic copy`` of the run's snapshots,
  then proves the copy holds them).
- **bare restic copy**: the same policy with the primary only; ``vhbackup
  backup``, then ``restic copy`` from the primary into a copy initialised with
  the primary's chunker parameters, timed together.

Each world makes a first run (everything new) and then ROUNDS incremental runs
(5% of the files rewritten before each). Reported: wall times (median of the
incremental runs), and the size on disk of the primary and the copy after each
run (the copy's growth per run). Writes a section to docs/benchmarks-copy.md
(BENCH_OUT overrides); bench/run.py is not involved.

Environment: RESTIC (default /usr/bin/restic), DATA_MB (default 60), ROUNDS
(default 5), SEED (default 1). The two worlds take turns going first, round by round.
"""

from __future__ import annotations

import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3"
RESTIC = os.environ.get("RESTIC", "/usr/bin/restic")
DATA_MB = int(os.environ.get("DATA_MB", "60"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
SEED = int(os.environ.get("SEED", "1"))
OUT = os.environ.get("BENCH_OUT", os.path.join(ROOT, "docs", "benchmarks-copy.md"))
FILE_KB = 256


def make_data(tree: str, rng: random.Random) -> list[str]:
    """DATA_MB of files of FILE_KB: half random (incompressible), half text-like (compressible)."""
    files = []
    for i in range(DATA_MB * 1024 // FILE_KB):
        path = os.path.join(tree, f"d{i % 16:02d}", f"f{i:05d}.bin")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_file(path, rng, i)
        files.append(path)
    return files


def write_file(path: str, rng: random.Random, i: int) -> None:
    if i % 2:
        data = rng.randbytes(FILE_KB * 1024)
    else:
        words = [f"line {rng.randrange(10**6)} value {rng.random():.6f}\n".encode() for _ in range(FILE_KB * 40)]
        data = b"".join(words)[:FILE_KB * 1024]
    with open(path, "wb") as f:
        f.write(data)


def size_of(path: str) -> int:
    total = 0
    for base, _dirs, names in os.walk(path):
        for name in names:
            total += os.lstat(os.path.join(base, name)).st_size
    return total


def write_policy(world: str, tree: str, with_copy: bool) -> str:
    password = os.path.join(world, "password")
    common = f"password_file: {password}\n    cache_dir: {world}/cache\n"
    text = f"""host: bench-copy
state_dir: {world}/state
restic_binary: {RESTIC}
paths: [{tree}]
repositories:
  main:
    url: {world}/primary
    {common}"""
    if with_copy:
        text += f"""  copy:
    url: {world}/copy
    role: copy
    {common}"""
    path = os.path.join(world, "policy.yml")
    with open(path, "w") as f:
        f.write(text)
    return path


def run(argv: list[str], env: dict | None = None) -> float:
    start = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})},
                            stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()[-500:]}")
    return elapsed


def vh(policy: str, *args: str) -> float:
    return run([PYTHON, "-m", "vhbackup", "-c", policy, *args], {"PYTHONPATH": ROOT})


def world(base: str, name: str, source: str, with_copy: bool) -> tuple[str, str, str, dict]:
    w = os.path.join(base, name)
    os.makedirs(w)
    tree = os.path.join(w, "data")
    shutil.copytree(source, tree)
    with open(os.path.join(w, "password"), "w") as f:
        f.write("bench-copy-password\n")
    os.chmod(os.path.join(w, "password"), 0o600)
    policy = write_policy(w, tree, with_copy)
    password = os.path.join(w, "password")
    restic_env = {"RESTIC_REPOSITORY": os.path.join(w, "copy"), "RESTIC_PASSWORD_FILE": password,
                  "RESTIC_FROM_REPOSITORY": os.path.join(w, "primary"), "RESTIC_FROM_PASSWORD_FILE": password,
                  "RESTIC_CACHE_DIR": os.path.join(w, "cache")}
    vh(policy, "init")
    if not with_copy:
        run([RESTIC, "init", "--copy-chunker-params"], restic_env)
    return w, tree, policy, restic_env


def one_run(w: str, policy: str, restic_env: dict, with_copy: bool) -> dict:
    elapsed = vh(policy, "backup")
    if not with_copy:
        elapsed += run([RESTIC, "copy"], restic_env)
    return {"seconds": elapsed, "primary": size_of(os.path.join(w, "primary")),
            "copy": size_of(os.path.join(w, "copy"))}


def main() -> int:
    base = tempfile.mkdtemp(prefix="vhbackup-bench-copy-")
    try:
        rng = random.Random(SEED)
        source = os.path.join(base, "source")
        files = make_data(source, rng)
        worlds = {label: world(base, label.replace(" ", "-").replace("+", "plus"), source, with_copy)
                  for label, with_copy in (("vhbackup + copy", True), ("bare restic copy", False))}
        results = {label: [] for label in worlds}
        for rnd in range(ROUNDS + 1):
            if rnd:
                changed = rng.sample(range(len(files)), max(1, len(files) // 20))
                for i in changed:  # the same change in both worlds
                    write_file(files[i], rng, i + 1)
                    for _w, tree, _p, _e in worlds.values():
                        shutil.copy2(files[i], os.path.join(tree, os.path.relpath(files[i], source)))
            order = list(worlds) if rnd % 2 == 0 else list(worlds)[::-1]  # who goes first alternates
            for label in order:
                w, _tree, policy, restic_env = worlds[label]
                results[label].append(one_run(w, policy, restic_env, label == "vhbackup + copy"))
                print(f"round {rnd} {label}: {results[label][-1]}", file=sys.stderr)
        write_report(results, len(files))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


def mib(n: float) -> str:
    return f"{n / 1048576:.1f} MiB"


def write_report(results: dict, nfiles: int) -> None:
    version = subprocess.run([RESTIC, "version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    lines = [
        "# Benchmark: a run with a copy (issue 10)",
        "",
        f"Written by `bench/copy.py` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}, "
        f"{version}, {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}). Data: {nfiles} files of {FILE_KB} KiB ({DATA_MB} MiB, half random, half "
        f"text), SEED={SEED}; {ROUNDS} incremental runs, each after rewriting 5% of the files. Local "
        "repositories (no network). **vhbackup + copy**: `repositories:` with a primary and a copy, one "
        "`vhbackup backup`. **bare restic copy**: the primary only, `vhbackup backup` then `restic copy` "
        "(into a copy made with `--copy-chunker-params`), timed together. Measured again with "
        "`/usr/bin/python3 bench/copy.py` (RESTIC=, DATA_MB=, ROUNDS=, SEED= to vary it).",
        "",
        "| | first run | incremental run (median) | incremental runs |",
        "|---|---|---|---|",
    ]
    for label, rows in results.items():
        inc = [r["seconds"] for r in rows[1:]]
        lines.append(f"| {label} | {rows[0]['seconds']:.1f} s | {statistics.median(inc):.1f} s | "
                     f"{', '.join(f'{s:.1f}' for s in inc)} s |")
    lines += ["", "Size on disk after each run (primary / copy; the copy's growth in brackets):", "",
              "| run | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    for i in range(ROUNDS + 1):
        cells = []
        for rows in results.values():
            grow = rows[i]["copy"] - (rows[i - 1]["copy"] if i else 0)
            cells.append(f"{mib(rows[i]['primary'])} / {mib(rows[i]['copy'])} (+{mib(grow)})")
        lines.append(f"| {'first' if i == 0 else i} | " + " | ".join(cells) + " |")
    ours = results["vhbackup + copy"]
    bare = results["bare restic copy"]
    d = statistics.median(r["seconds"] for r in ours[1:]) - statistics.median(r["seconds"] for r in bare[1:])
    spread = max(max(r["seconds"] for r in rows[1:]) - min(r["seconds"] for r in rows[1:])
                 for rows in results.values())
    verdict = ("within the spread of the runs themselves: no difference shown on this machine"
               if abs(d) <= spread else "larger than the spread of the runs")
    lines += ["", f"Difference of the incremental medians (vhbackup + copy minus bare): {d:+.2f} s, {verdict} "
              f"(largest spread of one world's incremental runs: {spread:.2f} s; the machine is shared, see the "
              "load average). vhbackup "
              "copies the run's snapshots by id and then proves that the copy holds them with `restic snapshots "
              "--tag run:ID` on the copy (one more restic process that opens the copy, which the bare `restic "
              "copy` does not make), and records the copy in its state; the copy grows by what the primary grows "
              "(same chunker parameters: deduplication carries over).", ""]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines))
    print(OUT)


if __name__ == "__main__":
    sys.exit(main())
