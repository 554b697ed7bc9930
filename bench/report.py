"""docs/benchmarks.md from the collected samples, and the README's quote of it.

Everything the report says about how a figure was made comes from the
scenario definitions (their method lines and the exact commands they ran)
or from the constants of bench/measure.py and bench/verdict.py, so the text
cannot drift from the code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from bench import measure, verdict
from bench.results import Scenario
from bench.scenarios import Nightly
from bench.verdict import Spread, paired, spread

MB = 10 ** 6
MiB = 2 ** 20
SUMMARY_MARK = "bench-summary"
README_BEGIN = "<!-- make bench-readme: begin (generated from docs/benchmarks.md; do not edit) -->"
README_END = "<!-- make bench-readme: end -->"
BROWSE_REPORT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks-browse.md"
COPY_REPORT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks-copy.md"


@dataclass(frozen=True)
class Target:
    key: str
    name: str
    scenario: str
    a: str
    b: str | None  # the baseline of a paired figure; None: ``a``'s own samples
    how: str  # ratio | difference | samples
    limit: float
    unit: str  # "×", "ms", "s", "MB"
    metric: str = "wall"
    knob: str = "RUNS"  # the make bench setting that gives this target more values


N = Nightly
TARGETS = (
    Target("nightly_script", "Full nightly run: vhbackup / sequential script", "nightly", N.VH, N.SCRIPT,
           "ratio", 0.75, "×"),
    Target("nightly_parallel", "Full nightly run: vhbackup / best hand-made parallel pipeline", "nightly", N.VH,
           "best", "ratio", 1.10, "×"),
    Target("overhead_ms", "vhbackup's own overhead per run (nightly): vhbackup − its processes by hand", "nightly",
           N.VH, N.REPLAY, "difference", 0.150, "ms"),
    Target("overhead_share", "vhbackup's own overhead (nightly): vhbackup / its processes by hand", "nightly",
           N.VH, N.REPLAY, "ratio", 1.05, "×"),
    Target("overhead_nochange_ms", "vhbackup's own overhead per run (no change, --no-verify): "
           "vhbackup − its restic process by hand", "nochange", N.VH_NV, N.BARE, "difference", 0.150, "ms"),
    Target("overhead_nochange_share", "vhbackup's own overhead (no change, --no-verify): "
           "vhbackup / its restic process by hand", "nochange", N.VH_NV, N.BARE, "ratio", 1.05, "×"),
    Target("nochange_verify", "No-change backup (10 services), verified: vhbackup / bare restic", "nochange",
           N.VH_NC, N.BARE, "ratio", 1.35, "×"),
    Target("nochange_noverify", "No-change backup (10 services), --no-verify: vhbackup / bare restic", "nochange",
           N.VH_NV, N.BARE, "ratio", 1.10, "×"),
    Target("status", "`vhbackup status` with 10,000 recorded runs (each run's wall time)", "status",
           "vhbackup status (10,000 runs)", None, "samples", 0.100, "ms", knob="STATUS_RUNS"),
    Target("retention_time", "Retention planning, 1,100 runs × 12 groups: parse + plan time", "retention",
           "retention plan (1,100 runs × 12 groups)", None, "samples", 1.0, "s", metric="plan_seconds", knob="RETENTION_RUNS"),
    Target("retention_rss", "Retention planning, 1,100 runs × 12 groups: peak RSS of the process", "retention",
           "retention plan (1,100 runs × 12 groups)", None, "samples", 60 * MB, "MB", metric="vmhwm", knob="RETENTION_RUNS"),
)


def show(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value * 1000:.0f} ms"
    if unit == "MB":
        return f"{value / MB:.1f} MB"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "%":
        return f"{value:.1%}"
    return f"{value:.2f}"


def show_spread(sp: Spread | None, unit: str) -> str:
    if sp is None:
        return "–"
    return f"{show(sp.median, unit)} ({show(sp.low, unit)}–{show(sp.high, unit)}, n={sp.n})"


def _values(scen: Scenario, label: str, metric: str) -> dict[int, float]:
    out = {}
    for s in scen.samples.get(label, []):
        value = s.extra.get(metric) if metric in s.extra else getattr(s, metric, None)
        if value is not None:
            out[s.round] = value
    return out


def best_hand_made(scen: Scenario) -> str | None:
    """Of the hand-made parallel contenders, the one with the lower median wall time."""
    medians = {label: scen.spread(label).median for label in (N.PARALLEL, N.REPLAY) if scen.spread(label)}
    return min(medians, key=medians.get) if medians else None


def evaluate(target: Target, results: dict[str, Scenario], runs: int | None) -> dict:
    scen = results.get(target.scenario)
    row = {"key": target.key, "name": target.name, "limit": f"≤ {show(target.limit, target.unit)}",
           "values": [], "measured": "not measured", "verdict": verdict.NOT_MEASURED, "text": verdict.NOT_MEASURED,
           "baseline": target.b}
    if scen is None:
        return row
    b = best_hand_made(scen) if target.b == "best" else target.b
    row["baseline"] = b
    a_vals = _values(scen, target.a, target.metric)
    if target.how == "samples":
        values = [a_vals[r] for r in sorted(a_vals)]
    elif b is None:
        values = []
    else:
        values = paired(a_vals, _values(scen, b, target.metric), target.how)
    row["values"] = values
    sp = spread(values)
    if sp is not None:
        unit = "ms" if target.how == "difference" else target.unit
        row["measured"] = show_spread(sp, unit)
        if target.how == "difference":
            base = spread(list(_values(scen, b, target.metric).values()))
            if base:
                row["measured"] += f" on {show(base.median, 's')}"
    v = verdict.verdict(values, target.limit, runs, target.knob)
    row["verdict"], row["text"] = v.word, v.text
    return row


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def scenario_table(scen: Scenario) -> list[str]:
    lines = ["| contender | wall | CPU (user+sys, whole tree) | vhbackup's own CPU | vhbackup's own peak RSS |",
             "|---|---|---|---|---|"]
    for label in scen.order:
        if label in scen.errors:
            lines.append(f"| {cell(label)} | FAILED: {cell(scen.errors[label][:300])} | | | |")
            continue
        own = scen.spread(label, "own_rss")
        lines.append(f"| {cell(label)} | {show_spread(scen.spread(label), 's')} "
                     f"| {show_spread(scen.spread(label, 'cpu'), 's')} "
                     f"| {show_spread(scen.spread(label, 'own_cpu'), 's') if label.startswith('vhbackup') else '–'} "
                     f"| {show_spread(own, 'MB') if own and label.startswith('vhbackup') else '–'} |")
    return lines


def paired_table(scen: Scenario, baselines: list[str]) -> list[str]:
    """Every contender against each baseline, pair by pair (round i against round i)."""
    rows = []
    for b in baselines:
        for a in scen.order:
            if a == b or a in scen.errors or b in scen.errors:
                continue
            ratios = paired(scen.by_round(a), scen.by_round(b))
            if ratios:
                rows.append(f"| {cell(a)} | {cell(b)} | {show_spread(spread(ratios), '×')} "
                            f"| {show_spread(spread(paired(scen.by_round(a), scen.by_round(b), 'difference')), 'ms')} |")
    if not rows:
        return []
    return ["", "| contender | against | wall ratio, paired | wall difference, paired |", "|---|---|---|---|", *rows]


def command_line(meta: dict) -> str:
    args = ["make bench"]
    if meta["scale"]["name"] != meta.get("default_scale", "reference"):
        args.append(f"SCALE={meta['scale']['name']}")
    for knob in meta.get("overrides") or ():
        args.append(f"{knob}={meta['overrides'][knob]}")
    if meta["tree"].get("dirty"):
        args.append("ALLOW_DIRTY=1")
    return " ".join(args)


def busy(before: list[float], after: list[float], cores: int | str | None) -> bool:
    """Was the machine busy with other work? A 1-minute load average above half the cores, before or after
    (or a 5-minute one before): then the report and the README say its figures are noisy."""
    limit = 0.5 * int(cores or 1)
    return max(before[0], after[0]) > limit or before[1] > limit


def load_note(meta: dict) -> str:
    before, after = meta["load_before"], meta["load_after"]
    noisy = busy(before, after, meta["info"].get("cores"))
    text = (f"{' '.join(f'{x:.2f}' for x in before)} before, {' '.join(f'{x:.2f}' for x in after)} after "
            f"(1, 5, 15 min)")
    return text + (" — **the machine was busy: these figures are noisy**" if noisy else "")


def render(meta: dict, results: dict[str, Scenario]) -> str:
    sc = meta["scale"]
    counts = {"RUNS": sc["runs"], "STATUS_RUNS": sc["status_runs"], "RETENTION_RUNS": sc["retention_samples"]}
    rows = [evaluate(t, results, counts[t.knob]) for t in TARGETS]
    out = [
        "# Benchmarks",
        "",
        f"Written by `{command_line(meta)}` (run `{meta['run_id']}`) on {meta['started'][:16].replace('T', ' ')} UTC "
        f"in {meta['elapsed'] / 60:.1f} minutes; do not edit by hand, run that command again "
        "(`make bench SCALE=tiny` is a smoke test of the same code in about 2 minutes; its report goes to the "
        "work directory). `make bench-readme` quotes this report in the README.",
        "",
        "## What was measured",
        "",
        "| | |",
        "|---|---|",
        f"| run | `{meta['run_id']}` |",
        f"| vhbackup | {verdict.describe_tree(meta['tree'])} |",
        f"| scale | `{sc['name']}`, {sc['runs']} rounds of each side-by-side scenario |",
        f"| restic | {meta['restic_version']} (`{meta['restic']}`) |",
        f"| cores | {meta['info'].get('cores')} |",
        f"| load average | {load_note(meta)} |",
        *(f"| {k} | {v} |" for k, v in meta["info"].items() if k != "cores"),
        "",
        "## Data (generated from the seed)",
        "",
        *(f"- {k}: {v}" for k, v in meta["datasets"].items()),
        "",
        "## Method",
        "",
        "- Each scenario runs its contenders side by side in rounds: round i runs each contender once, in the "
        "order A B C D, then D C B A, and so on, so that drift in the machine's load hits them alike.",
        "- Every figure is given with its spread: **median (min–max, n)**.",
        "- A ratio or difference between two contenders is computed **pair by pair**: round i of A against "
        "round i of B, never as a ratio of medians.",
        f"- A target is **met** only when the whole spread (min–max) of its paired values (or, for a limit on "
        f"one command, of its runs) is at or below the limit, **missed** only when all of it is above; "
        f"otherwise, or with fewer than {verdict.MIN_PAIRS} values, it is **inconclusive** and the report "
        "says how many runs to try (`RUNS=…`).",
        "- **wall**: spawn to exit of the whole process tree (`time.monotonic`). **CPU**: user+sys of the "
        "process and every descendant it waited for (`os.wait4`): vhbackup + restic + dump tools together. "
        "**vhbackup's own CPU / peak RSS**: the vhbackup Python process alone (`bench/rsshook`: its "
        "`getrusage(RUSAGE_SELF)` and `VmHWM` at exit).",
        f"- Standard output and error of every timed command: {measure.OUTPUT}.",
        "- MB is 10^6 bytes; ms and s are wall-clock unless the column says CPU.",
        "- The vhbackup under test is this tree (`python3 -m vhbackup` with `PYTHONPATH` at the checkout, "
        "byte-compiled first as the Debian package is at install).",
        "",
        "## Targets",
        "",
        "| target | limit | measured (paired) | verdict |",
        "|---|---|---|---|",
    ]
    for row in rows:
        word = row["text"] if row["verdict"] != verdict.MET else "met"
        if row["verdict"] in (verdict.MISSED, verdict.INCONCLUSIVE, verdict.NOT_MEASURED):
            word = f"**{word}**"
        name = row["name"]
        if row["key"] == "nightly_parallel" and row["baseline"]:
            name += f" (best: {row['baseline']})"
        out.append(f"| {cell(name)} | {row['limit']} | {row['measured']} | {word} |")
    out += ["", "## Scenarios", ""]
    for key in ("nightly", "nochange", "status", "retention"):
        scen = results.get(key)
        if scen is None:
            continue
        out += [f"### {scen.title}", "", *(f"- {m}" for m in scen.method), ""]
        out += scenario_table(scen)
        if key == "nightly":
            out += paired_table(scen, [N.SCRIPT, N.PARALLEL, N.REPLAY])
        elif key == "nochange":
            out += paired_table(scen, [N.BARE])
        elif key == "retention":
            label = next(iter(scen.samples), None)
            if label:
                out += ["", "| figure | value |", "|---|---|",
                        f"| parse + plan time | {show_spread(spread(list(_values(scen, label, 'plan_seconds').values())), 's')} |",
                        f"| peak RSS of the process | {show_spread(spread(list(_values(scen, label, 'vmhwm').values())), 'MB')} |"]
        out += [*(f"\n{n}" for n in scen.notes), ""]
        for label, command in scen.commands.items():
            out += [f"`{label}`:", "", "```sh", command.rstrip("\n"), "```", ""]
    summary = {"run_id": meta["run_id"], "commit": meta["tree"]["commit"], "dirty": meta["tree"]["dirty"],
               "diff_sha256": meta["tree"].get("diff_sha256"), "scale": sc["name"], "runs": sc["runs"],
               "started": meta["started"], "restic": meta["restic_version"], "cores": meta["info"].get("cores"),
               "load_before": meta["load_before"], "load_after": meta["load_after"],
               "targets": [{k: row[k] for k in ("key", "name", "limit", "measured", "verdict", "text", "baseline")}
                           for row in rows]}
    out += browse_section()
    out += copy_section()
    out += [f"<!-- {SUMMARY_MARK} {json.dumps(summary, ensure_ascii=False)} -->", ""]
    return "\n".join(line for line in out if line is not None)


def browse_section(path: Path = BROWSE_REPORT) -> list[str]:
    """"Browsing": ls/find/diff against bare restic, quoted from docs/benchmarks-browse.md (bench/browse.py,
    measured apart: its repository of a year of runs takes a quarter of an hour to build), so that
    rewriting this report keeps it."""
    try:
        text = path.read_text()
    except OSError:
        return ["## Browsing", "", f"Not measured yet: run `/usr/bin/python3 bench/browse.py` ({path.name}).", ""]
    lines = text.splitlines()
    written = next((ln for ln in lines if ln.startswith("Written by")), "")
    run = re.search(r"\(run `([^`]+)`\)", written)
    when = re.search(r" on (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", written)
    machine = {m.group(1): m.group(2) for m in (re.match(r"\| ([^|]+?) \| (.*) \|$", ln) for ln in lines) if m}
    scale = next((ln[2:] for ln in lines if ln.startswith("- **")), "")
    start = next((i for i, ln in enumerate(lines) if ln.startswith("| what |")), None)
    table = []
    if start is not None:
        for ln in lines[start:]:
            if not ln.startswith("|"):
                break
            table.append(ln)
    return ["## Browsing", "",
            f"`vhbackup ls`, `find`, `diff` and `restore --path --to-stdout` against bare `restic ls`, `find`, "
            f"`diff` and `dump`, quoted from [benchmarks-browse.md](benchmarks-browse.md) (`bench/browse.py`, "
            f"run `{run.group(1) if run else '?'}` on {when.group(1) if when else '?'} UTC, "
            f"{machine.get('restic', 'restic ?')}, vhbackup {machine.get('vhbackup', '?')}, load average at start "
            f"{machine.get('load average at start', '?')}); the commands, the method and the reading are there.",
            "", f"Repository: {scale}", "", *table, ""]


def copy_section(path: Path = COPY_REPORT) -> list[str]:
    """"A run with a copy": quoted from docs/benchmarks-copy.md (bench/copy.py, measured apart), its
    provenance line and its tables as they are, so that rewriting this report keeps them."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ["## A run with a copy", "", f"Not measured yet: run `/usr/bin/python3 bench/copy.py` ({path.name}).", ""]
    written = next((ln for ln in lines if ln.startswith("Written by")), "")
    when = re.search(r"\(([^,]*UTC), commit (\w+)", written)
    after = next((i + 1 for i, ln in enumerate(lines) if ln.startswith("Written by")), 1)
    body = [ln for ln in lines[after:] if not ln.startswith("#")]
    while body and not body[0]:
        body.pop(0)
    return ["## A run with a copy", "",
            f"A backup with one copy (`repositories:`) against the same backup followed by a bare `restic copy`, and "
            f"the copy's growth, quoted from [benchmarks-copy.md](benchmarks-copy.md) (`bench/copy.py`, "
            f"{when.group(1) if when else '?'}, commit {when.group(2) if when else '?'}); the method is there.",
            "", *body, ""]


# --- the README's quote -------------------------------------------------------------------


def read_summary(report_text: str) -> dict:
    match = re.search(r"<!-- " + SUMMARY_MARK + r" (\{.*\}) -->", report_text)
    if not match:
        raise ValueError("the report has no bench-summary block: write it with `make bench` first")
    return json.loads(match.group(1))


def readme_block(summary: dict, report: str = "docs/benchmarks.md") -> str:
    load = summary["load_before"][0], summary["load_after"][0]
    tree = f"commit `{summary['commit'][:12]}`" + (
        f" plus uncommitted changes (diff SHA-256 `{summary['diff_sha256'][:16]}…`)" if summary["dirty"] else "")
    lines = [README_BEGIN,
             f"Quoted from [{report}]({report}), run `{summary['run_id']}` ({tree}, scale "
             f"`{summary['scale']}`, {summary['runs']} rounds, {summary['restic']}, {summary['cores']} cores, "
             f"load average {load[0]:.2f} before and {load[1]:.2f} after"
             + ("; **the machine was busy: these figures are noisy**" if busy(
                 summary["load_before"], summary["load_after"], summary["cores"]) else "")
             + "). Each figure is the median "
             "(min–max, n) of values paired round by round; a target is met or missed only when the whole "
             "spread is on one side of its limit. `make bench` measures again, `make bench-readme` rewrites "
             "this paragraph from the new report.",
             ""]
    for t in summary["targets"]:
        name = t["name"] + (f" (best: {t['baseline']})" if t["key"] == "nightly_parallel" and t["baseline"] else "")
        lines.append(f"- {name}: {t['measured']}, limit {t['limit']}: **{t['text']}**.")
    lines.append(README_END)
    return "\n".join(lines)


def rewrite_readme(readme_text: str, block: str) -> str:
    """Replace the generated block (or, the first time, the body of "## What it costs") with ``block``."""
    if README_BEGIN in readme_text:
        start = readme_text.index(README_BEGIN)
        end = readme_text.index(README_END, start) + len(README_END)
        return readme_text[:start] + block + readme_text[end:]
    head = "## What it costs\n"
    if head not in readme_text:
        raise ValueError("the README has no '## What it costs' section")
    start = readme_text.index(head) + len(head)
    nxt = readme_text.find("\n## ", start)
    end = nxt + 1 if nxt != -1 else len(readme_text)
    return readme_text[:start] + "\n" + block + "\n\n" + readme_text[end:]
