#!/usr/bin/python3
"""make bench: vhbackup against bare restic, dump-then-backup scripts and borgmatic; writes docs/benchmarks.md.

Environment: SCALE=tiny|small|large (default small), SEED (default 1),
RESTIC (default /usr/bin/restic), RUNS (override the scale's run count),
BENCH_OUT (default docs/benchmarks.md for small, docs/benchmarks-<scale>.md otherwise), BENCH_BORGMATIC=0 to leave borgmatic out.
`bench/run.py --render WORK/results.json` rewrites the report from saved samples.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import traceback
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import datasets, report  # noqa: E402
from bench.measure import Sample  # noqa: E402
from bench.results import Scenario  # noqa: E402
from bench.scenarios import Databases, Files  # noqa: E402
from bench.setup import (PYTHON, ROOT, Scale, World, borgmatic_binary, dump_json, machine_info,  # noqa: E402
                         make_world)


def guarded(results: dict[str, Scenario], key: str, fn, *args) -> None:
    """A scenario that crashes leaves its error in the report; the others still run."""
    try:
        fn(results, *args)
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        scen = results.setdefault(key, Scenario(key, key, ""))
        scen.fail("(scenario)", f"{type(exc).__name__}: {exc}")


WATCHED_IMPORTS = ("vhbackup.policy", "vhbackup.outcome", "vhbackup.alerts", "vhbackup.notifiers",
                   "vhbackup.databases", "vhbackup.restic", "yaml", "argparse", "logging", "smtplib", "ssl",
                   "urllib.request", "email.utils", "dataclasses")


def import_profile() -> dict[str, list[tuple[str, int]]]:
    """`python -X importtime -m vhbackup --version`: the slowest top-level imports, and named ones.

    Cumulative microseconds; a module shows where it is first imported.
    """
    out = subprocess.run([PYTHON, "-X", "importtime", "-m", "vhbackup", "--version"], cwd=ROOT,
                         capture_output=True, text=True).stderr
    top, named = [], {}
    for line in out.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if not name.startswith("  ") and name.strip():
            top.append((name.strip(), int(cumulative)))
        if name.strip() in WATCHED_IMPORTS:
            named[name.strip()] = int(cumulative)
    return {"top": sorted(top, key=lambda r: -r[1])[:8],
            "named": sorted(named.items(), key=lambda r: -r[1])}


def write_report(state: dict, out: str) -> None:
    """docs/benchmarks.md from a results.json (so the text can be re-rendered without re-measuring)."""
    results = {}
    for key, d in state["results"].items():
        d = dict(d)
        d["samples"] = {label: [Sample(**x) for x in xs] for label, xs in d["samples"].items()}
        results[key] = Scenario(**d)
    world = World(scale=Scale(**{**state["scale"], "rss_scales": tuple(state["scale"]["rss_scales"])}),
                  seed=state["seed"], restic=state["restic"], work="", log="", password_file="",
                  started=datetime.fromisoformat(state["started"]))
    text = report.render(world, state["info"], state["datasets"], results, state["imports"], state["elapsed"])
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as fh:
        fh.write(text)


def default_out(scale: str) -> str:
    """docs/benchmarks.md for the default scale, docs/benchmarks-<scale>.md for the others."""
    return os.path.join(ROOT, "docs", "benchmarks.md" if scale == "small" else f"benchmarks-{scale}.md")


def main() -> int:
    if sys.argv[1:2] == ["--render"]:
        with open(sys.argv[2]) as fh:
            state = json.load(fh)
        write_report(state, os.environ.get("BENCH_OUT", default_out(state["scale"]["name"])))
        return 0
    began = time.monotonic()
    scale = os.environ.get("SCALE", "small")
    world = make_world(scale, int(os.environ.get("SEED", "1")), os.environ.get("RESTIC", "/usr/bin/restic"))
    if os.environ.get("RUNS"):
        world.scale = dataclasses.replace(world.scale, runs=int(os.environ["RUNS"]))
    out = os.environ.get("BENCH_OUT", default_out(scale))
    # What the Debian package does at install: without it, the first runs would pay for byte-compiling.
    subprocess.run([PYTHON, "-m", "compileall", "-q", os.path.join(ROOT, "vhbackup")], stdout=subprocess.DEVNULL)
    borgmatic = None if os.environ.get("BENCH_BORGMATIC") == "0" else borgmatic_binary()
    info = machine_info(world, borgmatic)
    sc = world.scale
    print(f"bench: scale {sc.name}, {sc.runs} runs, work dir {world.work}", flush=True)
    tree = datasets.make_tree(world.path("data"), sc.files, sc.bytes, world.seed)
    datasets.read_tree(tree.root)
    pg_name = datasets.unique_name("vhbench_pg")
    growth_name = datasets.unique_name("vhbench_growth")
    rss_names = {s: datasets.unique_name(f"vhbench_rss{s}") for s in sc.rss_scales}
    my_name = datasets.unique_name("vhbench_my")
    results: dict[str, Scenario] = {}
    datasets_info = {"tree": f"{len(tree.files)} files, {tree.total_bytes / 2**20:.0f} MiB over "
                             f"{len(tree.services)} services (seed {world.seed})"}
    try:
        print("bench: creating databases", flush=True)
        datasets.pg_create(pg_name, sc.pg_scale)
        datasets.pg_add_events(pg_name, sc.events_rows)
        datasets.quiet(["createdb", *datasets.PG, "-T", pg_name, growth_name])
        for s, name in rss_names.items():
            datasets.pg_create(name, s)
        datasets.my_create(my_name, sc.my_rows)
        datasets_info["postgresql"] = (f"pgbench -i -s {sc.pg_scale} plus an append-mostly `events` table "
                                       f"(an activity log) of {sc.events_rows} rows "
                                       f"({datasets.pg_size(pg_name) / 2**20:.0f} MiB on disk)")
        datasets_info["mariadb"] = f"one InnoDB table of {sc.my_rows} generated rows"

        files = Files(world, tree, borgmatic)
        guarded(results, "first", lambda r: files.run_all(r))
        if "vhbackup" in files.state:
            guarded(results, "fixed", files.fixed_costs)
            guarded(results, "latency", files.latency)
        dbs = Databases(world, pg_name, my_name, borgmatic)
        guarded(results, "db_pg", dbs.backup, "postgresql")
        guarded(results, "db_my", dbs.backup, "mariadb")
        guarded(results, "restore_db", dbs.restore)
        guarded(results, "restore_my", dbs.restore, "mariadb")
        guarded(results, "rss", dbs.rss_flat, rss_names)
        guarded(results, "growth", dbs.growth, growth_name)
    finally:
        for name in (pg_name, growth_name, *rss_names.values()):
            datasets.pg_drop(name)
        datasets.my_drop(my_name)
    imports = import_profile()
    elapsed = time.monotonic() - began
    state = {"scale": dataclasses.asdict(world.scale), "seed": world.seed, "restic": world.restic,
             "started": world.started.isoformat(), "elapsed": elapsed, "info": info,
             "datasets": datasets_info, "imports": imports,
             "results": {k: dataclasses.asdict(v) for k, v in results.items()}}
    dump_json(world.path("results.json"), state)
    write_report(state, out)
    print(f"bench: wrote {out} in {elapsed / 60:.1f} min (raw samples: {world.path('results.json')}, "
          f"log: {world.log})", flush=True)
    failed = [f"{k}: {label}" for k, v in results.items() for label in v.errors]
    if failed:
        print("bench: some contenders failed: " + "; ".join(failed), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
