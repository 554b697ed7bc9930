#!/usr/bin/python3
"""Browsing speed: vhbackup ls/find/diff/restore --to-stdout against bare restic on a long history.

Builds (once, reused when it exists) a repository of RUNS daily runs of a
tree of FILES small files (FILES/100 folders of 100 files, a few hundred
bytes each); every run changes CHURN files, adds one and deletes one. The
runs are made straight with restic (``--time`` faked one day apart, tagged
as vhbackup tags a run), which is cheap: the benchmark is about reading.
Then each command is timed REPEAT times (the median is reported) with a
warm restic cache, vhbackup as a user runs it (a new Python process) and
restic as bare as it goes. Writes docs/benchmarks-browse.md (BENCH_OUT).

Environment: RUNS (default 365), FILES (default 20000), CHURN (default 20),
REPEAT (default 3), RESTIC (default /usr/bin/restic),
BENCH_WORK (default /var/tmp/vhbackup-bench-browse), BENCH_OUT.
``bench/browse.py --render`` writes the report again from the last measurement (BENCH_WORK/results.json).
Kept apart from the rest of bench/ (its own file and report) on purpose.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3"
RUNS = int(os.environ.get("RUNS", "365"))
FILES = int(os.environ.get("FILES", "20000"))
CHURN = int(os.environ.get("CHURN", "20"))
REPEAT = int(os.environ.get("REPEAT", "3"))
RESTIC = os.environ.get("RESTIC", "/usr/bin/restic")
WORK = Path(os.environ.get("BENCH_WORK", "/var/tmp/vhbackup-bench-browse"))
OUT = Path(os.environ.get("BENCH_OUT", ROOT / "docs" / "benchmarks-browse.md"))
HOST = "benchhost"
SEED = 12


def env() -> dict[str, str]:
    return {**os.environ, "RESTIC_REPOSITORY": str(WORK / "repo"), "RESTIC_PASSWORD_FILE": str(WORK / "pw"),
            "RESTIC_CACHE_DIR": str(WORK / "cache")}


def restic(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([RESTIC, *args], env=env(), capture_output=True, text=True, check=check)


def vh(*args: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("VHBACKUP_CONFIG", "DRY_RUN", "JOURNAL_STREAM")}
    full["PYTHONPATH"] = str(ROOT)
    return subprocess.run([PYTHON, "-m", "vhbackup", "-q", "-c", str(WORK / "policy.yml"), *args], env=full,
                          capture_output=True, text=True)


def tree_root() -> Path:
    return WORK / "srv" / "app"


def file_path(n: int) -> Path:
    return tree_root() / f"d{n // 100:04d}" / f"f{n % 100:02d}.txt"


def build() -> dict:
    """The repository and tree; a finished build is reused (its parameters are in WORK/build.json)."""
    done = WORK / "build.json"
    wanted = {"runs": RUNS, "files": FILES, "churn": CHURN, "restic": RESTIC}
    if done.exists():
        info = json.loads(done.read_text())
        if {k: info.get(k) for k in wanted} == wanted:
            return info
    subprocess.run(["rm", "-rf", str(WORK)], check=True)
    WORK.mkdir(parents=True)
    (WORK / "pw").write_text("bench-browse-password-" + "x" * 20 + "\n")
    os.chmod(WORK / "pw", 0o600)
    (WORK / "policy.yml").write_text(json.dumps({
        "repository": {"url": str(WORK / "repo"), "password_file": str(WORK / "pw"), "cache_dir": str(WORK / "cache")},
        "state_dir": str(WORK / "state"), "restic_binary": RESTIC, "host": HOST,
        "services": {"app": {"paths": [str(tree_root())]}},
    }))
    rng = random.Random(SEED)
    started = time.monotonic()
    for n in range(FILES):
        path = file_path(n)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"file {n}\n" + "x" * rng.randrange(50, 400) + "\n")
    restic("init")
    first_day = datetime(2025, 11, 1, 2, 0, tzinfo=timezone.utc)
    for day in range(RUNS):
        when = first_day + timedelta(days=day)
        for n in rng.sample(range(FILES), CHURN):
            file_path(n).write_text(f"file {n} changed on day {day}\n" + "y" * rng.randrange(50, 400) + "\n")
        (tree_root() / "added").mkdir(exist_ok=True)
        (tree_root() / "added" / f"day-{day:03d}.txt").write_text(f"added on day {day}\n")
        if day >= 3:
            (tree_root() / "added" / f"day-{day - 3:03d}.txt").unlink()  # each lives in three runs
        run_id = f"{when:%Y%m%d-%H%M%S}-{day:04x}"
        restic("backup", "--host", HOST, "--time", f"{when:%Y-%m-%d %H:%M:%S}", "--tag", "vhbackup",
               "--tag", "service:app", "--tag", f"run:{run_id}", str(tree_root()))
        if day % 25 == 0:
            print(f"  run {day + 1}/{RUNS} after {time.monotonic() - started:.0f} s", flush=True)
    info = {**wanted, "build_seconds": round(time.monotonic() - started),
            "repo_bytes": int(subprocess.run(["du", "-sb", str(WORK / "repo")], capture_output=True,
                                             text=True).stdout.split()[0])}
    done.write_text(json.dumps(info))
    return info


def timed(fn) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    result = fn()
    return time.monotonic() - start, result


def measure(label: str, vh_args: list[str], restic_args: list[str], check) -> dict:
    """Median seconds of REPEAT runs of each side (after one warm-up of each)."""
    out = {"label": label, "vhbackup": " ".join(["vhbackup", *vh_args]), "restic": " ".join(["restic", *restic_args])}
    vh(*vh_args)
    restic(*restic_args)
    vs, rs = [], []
    for _ in range(REPEAT):
        seconds, result = timed(lambda: vh(*vh_args))
        if result.returncode != 0:
            raise SystemExit(f"{out['vhbackup']} failed: {result.stderr}")
        check(result)
        vs.append(seconds)
        seconds, result = timed(lambda: restic(*restic_args))
        rs.append(seconds)
    out["vh_s"], out["restic_s"] = statistics.median(vs), statistics.median(rs)
    print(f"  {label}: vhbackup {out['vh_s']:.2f} s, restic {out['restic_s']:.2f} s", flush=True)
    return out


MACHINE: dict[str, str] = {}


def main() -> int:
    if sys.argv[1:2] == ["--render"]:  # the report again from WORK/results.json, without measuring
        saved = json.loads((WORK / "results.json").read_text())
        MACHINE.update(saved["machine"])
        made = datetime.fromtimestamp((WORK / "results.json").stat().st_mtime, timezone.utc)
        write_report(saved["info"], saved["results"], saved.get("run_id") or f"browse-{made:%Y%m%d-%H%M%S}", made)
        return 0
    print(f"building {RUNS} runs x {FILES} files in {WORK} (reused when already built)", flush=True)
    info = build()
    snaps = json.loads(restic("snapshots", "--json").stdout)
    snaps.sort(key=lambda s: s["time"])
    runs = [next(t[4:] for t in s["tags"] if t.startswith("run:")) for s in snaps]
    latest, middle, prev = snaps[-1]["id"][:8], snaps[len(snaps) // 2]["id"][:8], snaps[-2]["id"][:8]
    folder = str(file_path(FILES // 2).parent)
    one = str(file_path(FILES // 2 + 7))
    rare = f"day-{RUNS // 2:03d}.txt"
    recent = f"day-{max(0, RUNS - 10):03d}.txt"  # held by three of the newest 30 runs
    window = [f"--snapshot={s['id'][:8]}" for s in snaps[::-1][:30]]
    results = [
        measure("ls of a folder (100 files), latest run", ["ls", "latest", folder], ["ls", latest, folder],
                lambda r: r.stdout.count("\n") >= 102 or sys.exit("ls listed too little")),
        measure("ls of a folder (100 files), a run in the middle", ["ls", runs[len(runs) // 2], folder],
                ["ls", middle, folder], lambda r: None),
        measure(f"ls -R of a whole run ({FILES} files)", ["ls", "-R", "latest", str(tree_root())],
                ["ls", latest], lambda r: r.stdout.count("\n") >= FILES or sys.exit("ls -R listed too little")),
        measure(f"find a common name (f07.txt: {FILES // 100} a run), newest 30 runs (the default window)",
                ["find", "f07.txt"], ["find", *window, "f07.txt"], lambda r: None),
        measure("find a file held by three runs, newest 30 runs (the default window)", ["find", recent],
                ["find", *window, recent],
                lambda r: r.stdout.count("run ") == min(3, RUNS) or sys.exit(f"find {recent}: {r.stdout}")),
        *find_all(rare),
        measure("diff of the two newest runs", ["diff", runs[-2], runs[-1]], ["diff", prev, latest],
                lambda r: None),
        measure("one file to stdout (restore --latest --path --to-stdout / dump)",
                ["restore", "--latest", "--path", one, "--to-stdout"], ["dump", latest, one], lambda r: None),
    ]
    now = datetime.now(timezone.utc)
    write_report(info, results, f"browse-{now:%Y%m%d-%H%M%S}", now)
    return 0


def find_all(rare: str) -> list[dict]:
    """find over every run (--all): minutes, so FIND_ALL=0 carries the last measured figures over (marked so)."""
    saved = WORK / "results.json"
    if os.environ.get("FIND_ALL", "1") == "0" and saved.exists():
        old = json.loads(saved.read_text())
        kept = [r for r in old["results"] if r["label"].startswith("find") and "newest 30" not in r["label"]]
        for r in kept:
            if not r["label"].startswith("find --all"):
                r["label"] = "find --all" + r["label"][len("find"):]
            if "carried over" not in r["label"]:
                r["label"] += (f" (carried over: measured with vhbackup {old['machine'].get('vhbackup', '?')}, "
                               f"load {old['machine'].get('load average at start', '?')})")
        return kept
    return [
        measure(f"find --all a common name (f07.txt: {FILES // 100} in each of the {RUNS} runs)",
                ["find", "--all", "f07.txt"], ["find", "--tag", "vhbackup", "f07.txt"], lambda r: None),
        measure("find --all a file held by three runs (every run)", ["find", "--all", rare],
                ["find", "--tag", "vhbackup", rare],
                lambda r: r.stdout.count("run ") == min(3, RUNS - RUNS // 2) or sys.exit(f"find {rare}: {r.stdout}")),
    ]


def machine() -> dict[str, str]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    mem = next((int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.startswith("MemTotal")), 0)
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip()
    return {"CPU": f"{cpu}, {os.cpu_count()} cores", "RAM": f"{mem / 1024 / 1024:.1f} GiB",
            "OS / kernel": f"{platform.freedesktop_os_release().get('PRETTY_NAME', '?')} / {platform.release()}",
            "restic": subprocess.run([RESTIC, "version"], capture_output=True, text=True).stdout.strip(),
            "Python": platform.python_version(), "vhbackup": commit,
            "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def write_report(info: dict, results: list[dict], run_id: str, made: datetime) -> None:
    lines = [
        "# Benchmarks: browsing runs",
        "",
        f"Written by `bench/browse.py` (run `{run_id}`) on {made:%Y-%m-%d %H:%M} UTC; do not edit by hand, "
        "run it again (`/usr/bin/python3 bench/browse.py`; RUNS, FILES, CHURN, REPEAT, RESTIC in its docstring). "
        "Kept apart from `make bench`; [benchmarks.md](benchmarks.md#browsing) quotes its results table.",
        "",
        "## Machine and versions",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in (MACHINE or MACHINE.update(machine()) or MACHINE).items()),
        "",
        "## Repository",
        "",
        f"- **{info['runs']} runs** (one a day, made with restic's `--time` and vhbackup's tags) of a tree of "
        f"**{info['files']:,} files** in {info['files'] // 100} folders (50-400 bytes each); every run changes "
        f"{info['churn']} files, adds one and deletes the one added three runs earlier",
        f"- repository {info['repo_bytes'] / 1024 / 1024:.0f} MiB; built in {info['build_seconds'] / 60:.1f} min",
        f"- each command timed {REPEAT} times after one warm-up run of each side (warm restic cache); "
        "the median is shown. vhbackup runs as a user runs it: a new Python process that loads the policy and "
        f"lists the {info['runs']} runs (`restic snapshots --json`) before its own restic call.",
        "",
        "## Results",
        "",
        "| what | vhbackup | bare restic | vhbackup − restic |",
        "|---|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r['label']} | {r['vh_s']:.2f} s | {r['restic_s']:.2f} s | "
                     f"{r['vh_s'] - r['restic_s']:+.2f} s |")
    lines += ["", "Commands (run ids and snapshot ids of the same runs):", ""]
    for r in results:
        lines.append(f"- {r['label']}: `{r['vhbackup']}` / `{r['restic']}`")
    lines += [
        "",
        "## Reading",
        "",
        "- Every restic process pays the repository's key derivation and index loading; vhbackup adds one "
        "`restic snapshots` call (to map runs to snapshots) and Python's start-up. `ls` is `snapshots` + `ls`; "
        "`restore --path --to-stdout` is `snapshots` + `ls` of the file (to refuse a directory, which `dump` "
        "would turn into a tar) + `dump`; `diff` is `snapshots` + one `restic find '*'` over both runs (both "
        "listings: type, mode, size, mtime, link target) + `restic diff --json` (content changes): restic's own "
        "diff reports no mode change without `--metadata` and its text differs between 0.14 and 0.18.",
        "- `find` searches the newest 30 runs by default (`--newest N`, `--after`/`--before`, `--all`): only "
        "those runs' files snapshots go to `restic find` (`--snapshot ID`), compared with bare `restic find` "
        "given the same 30 snapshot ids. Over every run (`--all`) it is bound by `restic find` itself, which "
        f"walks each snapshot's tree in turn ({info['runs']} trees of {info['files']:,} entries); vhbackup adds "
        "nothing measurable there.",
        "- Measured on a shared machine: the load average at the start is in the table above (2 cores); bare "
        "restic and vhbackup ran alternately under the same load, so the differences hold better than the "
        "absolute times.",
        "",
    ]
    OUT.write_text("\n".join(lines))
    (WORK / "results.json").write_text(json.dumps({"info": info, "results": results, "machine": MACHINE,
                                                  "run_id": run_id}))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    sys.exit(main())
