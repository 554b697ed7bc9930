"""docs/benchmarks.md from the collected samples: machine, method, targets with verdicts, one table per scenario."""

from __future__ import annotations

from datetime import datetime

from bench.measure import Stat, stat
from bench.results import Scenario
from bench.setup import World

MiB = 2 ** 20
VH = "vhbackup backup"
BARE = "bare restic backup"
VH_DB = "vhbackup backup --databases-only"
SCRIPT = "script: dump > file && restic backup file && rm"
PIPE = "bare pipe: dump | restic backup --stdin"
FLOOR_DUMP = "floor: dump > /dev/null"
FLOOR_RESTIC = "floor: restic backup of the finished dump"
BASELINES = {"first": BARE, "nochange": BARE, "changed": BARE, "restore_files": "bare restic restore",
             "db_pg": SCRIPT, "db_my": SCRIPT, "restore_db": "bare restic dump | pg_restore",
             "restore_my": "bare restic dump | mariadb", "formats": None,
             "latency": "restic version", "fixed": None}
SCRATCH_ALLOWANCE = 256 * 1024


def fmt(st: Stat | None, scale: float = 1.0, digits: int = 2) -> str:
    if st is None:
        return "–"
    return f"{st.median / scale:.{digits}f} ({st.low / scale:.{digits}f}–{st.high / scale:.{digits}f})"


def fmt_bytes(st: Stat | None) -> str:
    if st is None:
        return "–"
    if st.high < 1 << 20:
        return f"{st.median / 1024:.0f} KiB ({st.low / 1024:.0f}–{st.high / 1024:.0f})"
    return fmt(st, MiB, 1) + " MiB"


def ratio(scen: Scenario | None, a: str, b: str, metric: str = "wall") -> float | None:
    if scen is None:
        return None
    x, y = scen.median(a, metric), scen.median(b, metric)
    return x / y if x is not None and y else None


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def scenario_table(scen: Scenario) -> list[str]:
    base = BASELINES.get(scen.key)
    latency = scen.key in ("latency", "fixed")
    unit, scale, digits = ("ms", 1e-3, 0) if latency else ("s", 1.0, 2)
    head = (f"| contender | wall {unit} | CPU {unit} (user+sys, whole tree) | own peak RSS MiB | own CPU {unit} "
            f"| peak RSS of tree MiB | scratch bytes |" + (f" wall / {cell(base)} |" if base else ""))
    lines = [head, "|" + "---|" * (head.replace("\\|", "").count("|") - 1)]
    for label in scen.order:
        if label in scen.errors:
            lines.append(f"| {cell(label)} | FAILED: {cell(scen.errors[label][:300])} |"
                         + " |" * (head.replace("\\|", "").count("|") - 3))
            continue
        samples = scen.samples.get(label, [])
        own = stat([s.own_rss for s in samples])
        r = ratio(scen, label, base) if base and label != base else None
        lines.append(
            f"| {cell(label)} | {fmt(stat([s.wall for s in samples]), scale, digits)} "
            f"| {fmt(stat([s.cpu for s in samples]), scale, digits)} "
            f"| {fmt(own, MiB, 1) if own else '–'} "
            f"| {fmt(stat([s.own_cpu for s in samples]), scale, digits)} "
            f"| {fmt(stat([s.tree_rss for s in samples]), MiB, 0)} "
            f"| {fmt_bytes(stat([s.scratch for s in samples]))} |"
            + (f" {r:.2f} |" if r is not None else (" baseline |" if label == base else " – |") if base else ""))
    peaks = stat([s.extra.get("file_peak") for label in scen.order for s in scen.samples.get(label, [])])
    if peaks:
        lines += ["", f"Peak size of the script's dump file (the scratch space it needs): {fmt_bytes(peaks)}."]
    return lines


def fixed_cost_text(results: dict[str, Scenario], databases: bool = False) -> tuple[str, float | None]:
    """The fixed calls of a vhbackup run, timed alone. The pre-check runs only for database runs here.

    vhbackup probes the repository (`restic cat config`) only before stopping units or before piping
    dumps into restic < 0.17 (vhbackup.prechecks.repository_probe_needed): so for the file scenarios
    (no units) it is left out, for the database scenarios on restic 0.14 it is counted.
    """
    fixed = results.get("fixed")
    if not fixed:
        return "", None
    parts, total = [], 0.0
    for label in fixed.order:
        if "pre-check" in label and not databases:
            continue
        m = fixed.median(label)
        if m is not None:
            parts.append(f"{label} {m * 1000:.0f} ms")
            total += m
    return "; ".join(parts), total


def overhead_cause(results: dict[str, Scenario], key: str, a: str, b: str) -> str:
    scen = results.get(key)
    if not scen or scen.median(a) is None or scen.median(b) is None:
        return "not measured"
    extra = scen.median(a) - scen.median(b)
    parts, total = fixed_cost_text(results, databases=key.startswith("db_"))
    own = scen.median(a, "own_cpu")
    text = (f"vhbackup takes {extra * 1000:.0f} ms more than `{b}` per run. The calls a run makes besides "
            f"the backup itself, timed alone: {parts} (sum {total * 1000:.0f} ms); vhbackup's own Python CPU "
            f"in the run: {own * 1000:.0f} ms." if parts and own is not None else
            f"vhbackup takes {extra * 1000:.0f} ms more per run.")
    if key.startswith("db_") and scen.median(PIPE) is not None and scen.median(SCRIPT):
        text += (f" The bare pipe alone (`{PIPE}`, what vhbackup runs inside) is "
                 f"{scen.median(PIPE) / scen.median(SCRIPT):.2f} of the script.")
    nv = results.get("nochange")
    if key == "nochange" and nv and nv.median("vhbackup backup --no-verify") is not None:
        text += (f" Without the verification call (`--no-verify`) the ratio is "
                 f"{ratio(nv, 'vhbackup backup --no-verify', BARE):.2f}.")
    return text


def targets(results: dict[str, Scenario], imports: dict) -> list[tuple[str, str, str, str, str]]:
    rows = []

    def add(name: str, limit: str, value: float | None, ok: bool | None, shown: str, cause: str = "") -> None:
        if value is None:
            rows.append((name, limit, "not measured", "**not measured**", cause))
            return
        rows.append((name, limit, shown, "met" if ok else "**missed**", "" if ok else cause))

    r = ratio(results.get("first"), VH, BARE)
    add("first backup: vhbackup / bare restic", "≤ 1.05", r, r is not None and r <= 1.05, f"{r:.2f}" if r else "",
        overhead_cause(results, "first", VH, BARE))
    r = ratio(results.get("nochange"), VH, BARE)
    add("no-change backup (10 services): vhbackup / bare restic", "≤ 1.25", r, r is not None and r <= 1.25,
        f"{r:.2f}" if r else "", overhead_cause(results, "nochange", VH, BARE))
    for key, engine in (("db_pg", "PostgreSQL"), ("db_my", "MariaDB")):
        scen = results.get(key)
        r = ratio(scen, VH_DB, SCRIPT)
        add(f"{engine} backup: vhbackup / dump-then-backup script", "≤ 0.90", r, r is not None and r <= 0.9,
            f"{r:.2f}" if r else "", overhead_cause(results, key, VH_DB, PIPE))
        floor = None
        if scen and scen.median(FLOOR_DUMP) and scen.median(FLOOR_RESTIC):
            floor = max(scen.median(FLOOR_DUMP), scen.median(FLOOR_RESTIC))
        r = scen.median(VH_DB) / floor if scen and floor and scen.median(VH_DB) else None
        add(f"{engine} backup: vhbackup / max(dump alone, restic of the finished dump)", "≤ 1.15", r,
            r is not None and r <= 1.15, f"{r:.2f}" if r else "", overhead_cause(results, key, VH_DB, PIPE))
        s = scen.stat(VH_DB, "scratch") if scen else None
        add(f"{engine} backup: vhbackup scratch bytes", "0 dump bytes on disk (≤ 256 KiB: state files)", s.high if s else None,
            s is not None and s.high <= SCRATCH_ALLOWANCE, f"{s.high / 1024:.0f} KiB (max)" if s else "",
            "bytes written by non-restic processes exceed the state files' size")
    own_max, who = None, ""
    for scen in results.values():
        for label, samples in scen.samples.items():
            if label.startswith("vhbackup"):
                for s in samples:
                    if s.own_rss and (own_max is None or s.own_rss > own_max):
                        own_max, who = s.own_rss, f"{scen.key}: {label}"
    add("vhbackup's own peak RSS (largest over every vhbackup run)", "≤ 60 MiB", own_max,
        own_max is not None and own_max <= 60 * MiB, f"{own_max / MiB:.1f} MiB ({who})" if own_max else "",
        "see the RSS table")
    rss = results.get("rss")
    if rss and len([k for k in rss.order if k not in rss.errors]) == 2:
        small, big = rss.order
        r = rss.median(big, "own_rss") / rss.median(small, "own_rss")
        add("vhbackup's own peak RSS flat against dump size (big / small)", "≤ 1.10", r, r <= 1.10,
            f"{r:.2f} ({small.split(': ')[1]} → {big.split(': ')[1]})", "")
    else:
        add("vhbackup's own peak RSS flat against dump size (big / small)", "≤ 1.10", None, None, "",
            "; ".join(rss.errors.values()) if rss else "")
    lat = results.get("latency")
    m = lat.median("vhbackup status") if lat else None
    startup = lat.median("python3 -c pass") if lat else None
    top = ", ".join(f"{name} {us / 1000:.0f} ms" for name, us in imports.get("named", [])[:8])
    add("`vhbackup status` median", "< 150 ms", m, m is not None and m < 0.150, f"{m * 1000:.0f} ms" if m else "",
        f"Python start-up alone is {startup * 1000:.0f} ms; the rest is importing. Cumulative import times "
        f"(-X importtime, where first imported): {top}" if startup else "")
    return rows


def growth_table(scen: Scenario) -> list[str]:
    rows = next((n for n in scen.notes if isinstance(n, dict)), None)
    if not rows:
        return [f"FAILED: {'; '.join(scen.errors.values())}"]
    vh_fmt = next((n for n in scen.notes if isinstance(n, str) and n.startswith("vhbackup's format")), "")
    lines = ["| format | dump MiB | repository after backup 1 MiB | growth, 1% rows updated: MiB (of dump) "
             "| growth, 1% rows appended: MiB (of dump) | growth, both MiB | backup wall s 1 / 2 / 3 (n=1) "
             "| backup CPU s 1 / 2 / 3 (n=1) |",
             "|---|---|---|---|---|---|---|---|"]
    for label, r in rows.items():
        if label in scen.errors:
            lines.append(f"| {cell(label)} | FAILED: {cell(scen.errors[label][:300])} | | | | | | |")
            continue
        if "append_size" not in r:
            continue
        first = r["first_size"] - r["init_size"]
        update = r["update_size"] - r["first_size"]
        append = r["append_size"] - r["update_size"]
        mark = " (vhbackup's default)" if vh_fmt.endswith(label) else ""
        lines.append(f"| {cell(label)}{mark} | {r['first_dump'] / MiB:.1f} | {first / MiB:.1f} "
                     f"| {update / MiB:.2f} ({update / r['update_dump']:.1%}) "
                     f"| {append / MiB:.2f} ({append / r['append_dump']:.1%}) | {(update + append) / MiB:.2f} "
                     f"| {r['first_wall']:.2f} / {r['update_wall']:.2f} / {r['append_wall']:.2f} "
                     f"| {r['first_cpu']:.2f} / {r['update_cpu']:.2f} / {r['append_cpu']:.2f} |")
    appended = next((r["appended"] for r in rows.values() if "appended" in r), None)
    if appended:
        lines += ["", f"Rows appended to `events` before backup 3: {appended}."]
    lines += ["", "Every repository has its own chunker polynomial, so the chunk boundaries around a small change, "
              "and with them the growth, differ by a few hundred KiB between repositories that receive the same "
              "bytes: the vhbackup row (the same format as its default, its own repository) is a second sample "
              "of that format. Growth is one backup per step (n=1)."]
    return lines


def command(world: World) -> str:
    """The command line that reproduces a report (scale and a non-default run count)."""
    from bench.setup import SCALES
    args = [] if world.scale.name == "small" else [f"SCALE={world.scale.name}"]
    if world.scale.runs != SCALES[world.scale.name].runs:
        args.append(f"RUNS={world.scale.runs}")
    return " ".join(["make bench", *args])


def render(world: World, info: dict, datasets_info: dict, results: dict[str, Scenario],
           imports: dict, elapsed: float) -> str:
    sc = world.scale
    out = [
        "# Benchmarks" + ("" if sc.name == "small" else f" at scale `{sc.name}`"),
        "",
        f"Written by `{command(world)}` on {world.started:%Y-%m-%d %H:%M} UTC in "
        f"{elapsed / 60:.1f} minutes; do not edit by hand, run that command again. "
        + ("`make bench` (the default `small` scale, this document) finishes in minutes on 2 cores and uses "
           "the smaller sizes stated below; `make bench SCALE=large` measures the full sizes of issue 6 "
           "(20,000 files / 1 GiB over 10 services, 100 MiB → 2 GiB dumps; about 22 minutes with its 5 runs) "
           "and writes [benchmarks-large.md](benchmarks-large.md)." if sc.name == "small" else
           "These are the full sizes of issue 6; `make bench` (the default `small` scale) writes "
           "[benchmarks.md](benchmarks.md)."),
        "",
        "## Machine and versions",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in info.items()),
        "",
        "## Data (generated from the seed)",
        "",
        *(f"- {k}: {v}" for k, v in datasets_info.items()),
        f"- RSS flatness: pgbench scales {sc.rss_scales[0]} and {sc.rss_scales[1]}"
        + (" (the small scale stands in for the 100 MiB → 2 GiB of the large one)" if sc.name != "large" else ""),
        f"- runs per contender: {sc.runs} (latency: {sc.latency_runs})",
        "",
        "## Method",
        "",
        "- Every figure is the **median (min–max)** of the runs; ratios are ratios of medians from this one run.",
        "- Contenders alternate A B C, C B A, … within each scenario, so drift in machine load hits them alike.",
        "- **wall**: spawn to exit of the whole process. **CPU**: user+sys of the process and every descendant "
        "it waited for (`os.wait4`), i.e. vhbackup + restic + pg_dump together.",
        "- **own peak RSS / own CPU**: the vhbackup (or borgmatic) Python process alone, apart from restic, borg "
        "and the dump tools: `bench/rsshook/sitecustomize.py`, put on `PYTHONPATH` for those runs only, writes "
        "its `VmHWM` (peak RSS since exec) and `getrusage(RUSAGE_SELF)` CPU at exit. **peak RSS of tree**: "
        "the largest `VmHWM` of any process in the tree, sampled every 20 ms (usually restic's; `–` for "
        "programs that exit before the first sample). `ru_maxrss` is not used: Linux carries the spawning "
        "harness's peak across fork and exec.",
        "- **scratch bytes**: bytes written to storage outside the repository: the sum of `write_bytes` "
        "(`/proc/PID/task/TID/io`, per thread, so that a parent is not charged for the children it reaps) "
        "of every thread in the tree that is not restic or borg, sampled every 20 ms; for the script, at "
        "least the peak size of its dump file. For vhbackup it is its state files (a few KiB, page-rounded). "
        "restic's and borg's own writes (repository, cache) are left out on every side.",
        "- Bare restic gets the same argv as vhbackup's `restic backup` (`--json`, `--host`, the same tags) "
        "and the same environment (`RESTIC_PROGRESS_FPS=1`, its own cache dir), with output to /dev/null.",
        "- A vhbackup backup run is one `restic backup` for every path of every service, plus `restic version` "
        "(version detection) and `restic snapshots --tag run:ID` after it (the verification the core issue "
        "requires, on by default). The repository pre-check `restic cat config` runs only when the run stops "
        "units or pipes dumps into restic < 0.17: here (restic 0.14) in the database scenarios, not in the "
        "file scenarios. Each restic call that opens the repository pays restic's start-up and key derivation "
        "(scrypt, with parameters calibrated by `restic init`), so these fixed costs are the floor of "
        "vhbackup's overhead, the same for 1 or 10 services; the table \"per-run fixed costs\" times each alone.",
        "- borgmatic runs `borgmatic create` only (not its default prune/compact/check), with borg "
        "`repokey` encryption (AES-256-CTR + HMAC-SHA256; restic: AES-256-CTR + Poly1305) and `zstd,3` "
        "compression (restic's `auto` is zstd at its default level). **borgmatic against vhbackup is engine "
        "against engine (borg against restic) as much as wrapper against wrapper**: the difference is mostly "
        "borg's and restic's, not the wrappers'.",
        "",
        "## Targets",
        "",
        "| target | limit | measured | verdict | measured cause of a miss |",
        "|---|---|---|---|---|",
        *(f"| {cell(a)} | {b} | {c} | {d} | {cell(e)} |" for a, b, c, d, e in targets(results, imports)),
        "",
        "## Results",
        "",
    ]
    for key in ("first", "nochange", "changed", "db_pg", "db_my", "rss", "growth", "formats", "restore_files",
                "restore_db", "restore_my", "latency", "fixed"):
        scen = results.get(key)
        if scen is None:
            continue
        out += [f"### {scen.title}", "", scen.what, ""]
        out += growth_table(scen) if key == "growth" else scenario_table(scen)
        if key == "latency" and imports:
            out += ["", "`python3 -X importtime -m vhbackup --version`, cumulative, where first imported: "
                    "slowest top-level: " + ", ".join(f"`{n}` {us / 1000:.1f} ms" for n, us in imports["top"])
                    + "; selected: " + ", ".join(f"`{n}` {us / 1000:.1f} ms" for n, us in imports["named"]) + "."]
        out.append("")
    return "\n".join(out)
