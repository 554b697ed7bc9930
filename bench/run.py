#!/usr/bin/python3
"""make bench: issue 14's targets, measured side by side; writes docs/benchmarks.md.

Environment: SCALE=reference|tiny (default reference; tiny is a ~2 minute
smoke test whose report goes to the work directory), RUNS (rounds of the
side-by-side scenarios, overriding the scale's), STATUS_RUNS (runs of
`vhbackup status`), RETENTION_RUNS (retention planning runs), SEED (default 1), RESTIC
(default /usr/bin/restic), BENCH_OUT (where the report goes),
ALLOW_DIRTY=1 (measure a tree with uncommitted changes; the report records
the diff's SHA-256).

`bench/run.py --render WORK/results.json` rewrites the report from saved samples;
`bench/run.py --readme` (make bench-readme) rewrites the README's "What it
costs" paragraph by quoting docs/benchmarks.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import datasets, report, scenarios, verdict  # noqa: E402
from bench.measure import Sample  # noqa: E402
from bench.results import Scenario  # noqa: E402
from bench.setup import (DEFAULT_SCALE, PYTHON, ROOT, dump_json, load_average, machine_info,  # noqa: E402
                         make_world, restic_version)

REPORT = os.path.join(ROOT, "docs", "benchmarks.md")
#: make bench settings that change the number of values behind a verdict, and the scale's field each sets.
OVERRIDES = {"RUNS": "runs", "STATUS_RUNS": "status_runs", "RETENTION_RUNS": "retention_samples"}
README = os.path.join(ROOT, "README.md")


def guarded(results: dict[str, Scenario], key: str, fn, *args) -> None:
    """A scenario that crashes leaves its error in the report; the others still run."""
    try:
        fn(results, *args)
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        scen = results.setdefault(key, Scenario(key, key))
        scen.fail("(scenario)", f"{type(exc).__name__}: {exc}")


def load_results(state: dict) -> dict[str, Scenario]:
    results = {}
    for key, d in state["results"].items():
        d = dict(d)
        d["samples"] = {label: [Sample(**x) for x in xs] for label, xs in d["samples"].items()}
        results[key] = Scenario(**d)
    return results


def write_report(state: dict, out: str) -> None:
    text = report.render(state, load_results(state))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as fh:
        fh.write(text)


def readme() -> int:
    with open(REPORT) as fh:
        summary = report.read_summary(fh.read())
    with open(README) as fh:
        text = fh.read()
    new = report.rewrite_readme(text, report.readme_block(summary))
    with open(README, "w") as fh:
        fh.write(new)
    print(f"bench: README.md now quotes run {summary['run_id']} of {os.path.relpath(REPORT, ROOT)}")
    return 0


def main() -> int:
    if sys.argv[1:2] == ["--render"]:
        with open(sys.argv[2]) as fh:
            state = json.load(fh)
        write_report(state, os.environ.get("BENCH_OUT") or REPORT)
        return 0
    if sys.argv[1:2] == ["--readme"]:
        return readme()
    try:
        tree = verdict.tree_state(ROOT, allow_dirty=os.environ.get("ALLOW_DIRTY") == "1")
    except verdict.DirtyTree as exc:
        print(f"bench: refusing to measure: {exc}", file=sys.stderr)
        return 2
    began = time.monotonic()
    load_before = load_average()
    scale = os.environ.get("SCALE") or DEFAULT_SCALE
    world = make_world(scale, int(os.environ.get("SEED", "1")), os.environ.get("RESTIC", "/usr/bin/restic"))
    overrides = {knob: int(os.environ[knob]) for knob in OVERRIDES if os.environ.get(knob)}
    world.scale = dataclasses.replace(world.scale, **{OVERRIDES[k]: v for k, v in overrides.items()})
    out = os.environ.get("BENCH_OUT") or (REPORT if scale == DEFAULT_SCALE else world.path(f"benchmarks-{scale}.md"))
    # What the Debian package does at install: without it, the first runs would pay for byte-compiling.
    subprocess.run([PYTHON, "-m", "compileall", "-q", os.path.join(ROOT, "vhbackup")], stdout=subprocess.DEVNULL)
    info = machine_info(world)
    sc = world.scale
    print(f"bench: run {world.run_id}, commit {tree['short']}{' (dirty)' if tree['dirty'] else ''}, scale "
          f"{sc.name}, {sc.runs} rounds, load average {load_before}, work dir {world.work}", flush=True)
    phases: dict[str, float] = {}
    mark = time.monotonic()
    tree_data = datasets.make_tree(world.path("data"), sc.services, sc.files_per_service, sc.bytes_per_service,
                                   world.seed)
    datasets.read_tree(tree_data.root)
    pg_name = datasets.unique_name("vhbench_pg")
    my_name = datasets.unique_name("vhbench_my")
    results: dict[str, Scenario] = {}
    data = {"files": f"{sc.services} services × {sc.files_per_service:,} files, {len(tree_data.files):,} files and "
                     f"{tree_data.total_bytes / 10**6:,.0f} MB in all (~2% incompressible, the rest text-like; "
                     f"seed {world.seed})"}
    try:
        print("bench: creating databases", flush=True)
        datasets.pg_create(pg_name, sc.pg_scale)
        datasets.my_create(my_name, sc.my_rows)
        phases["data"] = time.monotonic() - mark
        nightly = scenarios.Nightly(world, tree_data, pg_name, my_name)
        mark = time.monotonic()
        nightly.record()
        sizes = scenarios.dump_sizes(nightly)
        data["postgresql"] = (f"one database from `pgbench -i -s {sc.pg_scale}` "
                              f"({datasets.pg_size(pg_name) / 10**6:,.0f} MB on disk; dump "
                              f"{sizes.get('db:pgdb', 0) / 10**6:,.0f} MB)")
        data["mariadb"] = (f"one InnoDB table of {sc.my_rows:,} generated rows (dump "
                           f"{sizes.get('db:mydb', 0) / 10**6:,.0f} MB)")
        guarded(results, "nightly", nightly.nightly)
        phases["nightly"] = time.monotonic() - mark
        mark = time.monotonic()
        guarded(results, "nochange", nightly.nochange)
        phases["nochange"] = time.monotonic() - mark
        mark = time.monotonic()
        guarded(results, "status", lambda r: scenarios.status(world, r, nightly))
        phases["status"] = time.monotonic() - mark
    finally:
        datasets.pg_drop(pg_name)
        datasets.my_drop(my_name)
    mark = time.monotonic()
    guarded(results, "retention", lambda r: scenarios.retention(world, r))
    phases["retention"] = time.monotonic() - mark
    elapsed = time.monotonic() - began
    data["time per phase"] = ", ".join(f"{k} {v / 60:.1f} min" for k, v in phases.items())
    state = {"run_id": world.run_id, "tree": tree, "scale": dataclasses.asdict(world.scale),
             "default_scale": DEFAULT_SCALE, "overrides": overrides,
             "seed": world.seed, "restic": world.restic, "restic_version": restic_version(world.restic),
             "started": world.started.isoformat(), "elapsed": elapsed, "info": info, "datasets": data,
             "load_before": load_before, "load_after": load_average(),
             "results": {k: dataclasses.asdict(v) for k, v in results.items()}}
    dump_json(world.path("results.json"), state)
    write_report(state, out)
    print(f"bench: wrote {out} in {elapsed / 60:.1f} min (raw samples: {world.path('results.json')}, "
          f"log: {world.log})", flush=True)
    failed = [f"{k}: {label}" for k, v in results.items() for label in v.errors]
    if failed:
        print("bench: some contenders failed: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
