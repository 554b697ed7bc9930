"""make bench's honesty rules (bench/verdict.py, bench/report.py): verdicts from paired spreads, the dirty-tree
refusal, the README quoting the report. No timing is checked here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from bench import report, verdict
from bench.verdict import INCONCLUSIVE, MET, MISSED, NOT_MEASURED

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --- verdicts ------------------------------------------------------------------------------

@pytest.mark.parametrize("values, word", [
    ([0.60, 0.70, 0.75], MET),  # the limit itself is met
    ([0.76, 0.90, 1.20], MISSED),
    ([0.70, 0.74, 0.76], INCONCLUSIVE),  # median met, but the spread crosses the limit
    ([0.80, 0.90, 0.74], INCONCLUSIVE),  # median missed, but one pair is under
    ([0.50, 0.60], INCONCLUSIVE),  # too few pairs, however clear
    ([], NOT_MEASURED),
])
def test_a_target_is_met_or_missed_only_when_the_whole_spread_is_on_one_side(values, word):
    assert verdict.verdict(values, 0.75, runs=len(values) or 5).word == word


def test_an_inconclusive_verdict_says_how_many_runs_to_try_and_with_which_setting():
    v = verdict.verdict([0.70, 0.74, 0.76, 0.80, 0.71], 0.75, runs=5)
    assert v.text == "inconclusive, rerun with more runs (RUNS=10)"
    v = verdict.verdict([0.09, 0.12, 0.08], 0.100, runs=21, knob="STATUS_RUNS")
    assert v.text == "inconclusive, rerun with more runs (STATUS_RUNS=42)"
    assert "RUNS=" in verdict.verdict([0.5], 0.75, runs=1).text


def test_ratios_are_paired_round_by_round_not_taken_of_medians():
    a = {0: 10.0, 1: 4.0, 2: 6.0, 3: 99.0}  # round 3 has no partner: left out
    b = {0: 10.0, 1: 2.0, 2: 12.0}
    assert verdict.paired(a, b) == [1.0, 2.0, 0.5]
    assert verdict.paired(a, b, "difference") == [0.0, 2.0, -6.0]
    sp = verdict.spread(verdict.paired(a, b))
    assert (sp.median, sp.low, sp.high, sp.n) == (1.0, 0.5, 2.0, 3)
    with pytest.raises(ValueError):
        verdict.paired(a, b, "quotient")


def test_a_paired_target_is_judged_from_the_report_samples():
    from bench.measure import Sample
    from bench.results import Scenario
    from bench.scenarios import Nightly
    scen = Scenario("nochange", "t")
    for i, (vh, bare) in enumerate([(1.30, 1.00), (1.20, 1.00), (1.33, 1.00)]):
        scen.add(Nightly.VH_NC, Sample(wall=vh, cpu=0, round=i))
        scen.add(Nightly.BARE, Sample(wall=bare, cpu=0, round=i))
    target = next(t for t in report.TARGETS if t.key == "nochange_verify")
    row = report.evaluate(target, {"nochange": scen}, runs=3)
    assert row["verdict"] == MET and row["measured"] == "1.30 (1.20–1.33, n=3)"
    assert report.evaluate(target, {}, runs=3)["verdict"] == NOT_MEASURED


# --- the tree measured ---------------------------------------------------------------------

def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.org")
    _git(tmp_path, "config", "user.name", "t")
    (tmp_path / "a.py").write_text("one\n")
    (tmp_path / ".gitignore").write_text("ignored\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "one")
    return tmp_path


def test_a_clean_tree_is_recorded_by_its_commit(repo):
    (repo / "ignored").write_text("not a change\n")
    state = verdict.tree_state(str(repo))
    assert state["commit"] == _git(repo, "rev-parse", "HEAD").strip()
    assert state["dirty"] is False and state["diff_sha256"] is None


def test_a_dirty_tree_is_refused_unless_allowed_and_then_its_diff_is_hashed(repo):
    (repo / "a.py").write_text("two\n")
    with pytest.raises(verdict.DirtyTree, match="ALLOW_DIRTY=1"):
        verdict.tree_state(str(repo))
    first = verdict.tree_state(str(repo), allow_dirty=True)
    assert first["dirty"] is True and len(first["diff_sha256"]) == 64
    assert verdict.tree_state(str(repo), allow_dirty=True)["diff_sha256"] == first["diff_sha256"]
    (repo / "new.py").write_text("untracked\n")
    with pytest.raises(verdict.DirtyTree):
        verdict.tree_state(str(repo))
    second = verdict.tree_state(str(repo), allow_dirty=True)
    (repo / "new.py").write_text("untracked, changed\n")
    third = verdict.tree_state(str(repo), allow_dirty=True)
    assert len({first["diff_sha256"], second["diff_sha256"], third["diff_sha256"]}) == 3
    assert "plus uncommitted changes" in verdict.describe_tree(third)


def test_make_bench_refuses_a_dirty_tree_before_it_touches_anything(repo):
    shutil.copytree(os.path.join(ROOT, "bench"), repo / "bench", ignore=shutil.ignore_patterns("__pycache__"))
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "bench")
    (repo / "a.py").write_text("uncommitted\n")
    cache = repo / "cache"
    env = {**os.environ, "BENCH_CACHE": str(cache), "SCALE": "tiny"}
    env.pop("ALLOW_DIRTY", None)
    out = subprocess.run([sys.executable, str(repo / "bench" / "run.py")], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert "refusing to measure" in out.stderr and "a.py" in out.stderr
    assert not cache.exists()


# --- the README quotes the report ------------------------------------------------------------

SUMMARY = {"run_id": "bench-20261130-0712-ab12", "commit": "0123456789abcdef" * 2 + "01234567", "dirty": False,
           "diff_sha256": None, "scale": "reference", "runs": 5, "started": "2026-11-30T07:12:00+00:00",
           "restic": "restic 0.14.0", "cores": "2", "load_before": [0.1, 0.2, 0.3], "load_after": [0.2, 0.2, 0.3],
           "targets": [{"key": "nightly_script", "name": "Full nightly run: vhbackup / sequential script",
                        "limit": "≤ 0.75", "measured": "0.62 (0.60–0.65, n=5)", "verdict": MET, "text": MET,
                        "baseline": "sequential script"}]}


def test_the_readme_paragraph_is_rewritten_from_the_report_summary():
    text = "# x\n\n## What it costs\n\n- First backup: 0.97 of bare restic.\n\n## Documentation\n\nmore\n"
    page = f"# Benchmarks\n\n<!-- {report.SUMMARY_MARK} {json.dumps(SUMMARY, ensure_ascii=False)} -->\n"
    summary = report.read_summary(page)
    once = report.rewrite_readme(text, report.readme_block(summary))
    assert "0.97" not in once and "## Documentation\n\nmore\n" in once
    assert "run `bench-20261130-0712-ab12`" in once and "commit `0123456789ab`" in once
    assert "scale `reference`" in once and "0.62 (0.60–0.65, n=5), limit ≤ 0.75: **met**" in once
    assert "busy" not in once
    assert report.rewrite_readme(once, report.readme_block(summary)) == once
    noisy = report.rewrite_readme(once, report.readme_block({**summary, "load_before": [7.7, 7.0, 4.1]}))
    assert "the machine was busy: these figures are noisy" in noisy
    with pytest.raises(ValueError):
        report.read_summary("# Benchmarks\n")


def test_the_report_quotes_the_browsing_benchmark_with_its_run_id_and_table(tmp_path):
    """make bench rewrites docs/benchmarks.md whole: its Browsing section is built from docs/benchmarks-browse.md."""
    from bench import report
    browse_md = tmp_path / "benchmarks-browse.md"
    browse_md.write_text("# Benchmarks: browsing runs\n\nWritten by `bench/browse.py` (run `browse-20261130-070000`) "
                         "on 2026-11-30 07:00 UTC; do not edit by hand.\n\n| | |\n|---|---|\n"
                         "| restic | restic 0.14.0 |\n| vhbackup | abc1234 |\n"
                         "| load average at start | 1.00 2.00 3.00 |\n"
                         "\n## Repository\n\n- **365 runs** of **20,000 files**\n\n## Results\n\n"
                         "| what | vhbackup | bare restic | vhbackup − restic |\n|---|---:|---:|---:|\n"
                         "| ls of a folder | 2.00 s | 1.30 s | +0.70 s |\n\nCommands:\n")
    text = "\n".join(report.browse_section(browse_md))
    assert text.startswith("## Browsing\n")
    for needed in ("run `browse-20261130-070000` on 2026-11-30 07:00 UTC", "restic 0.14.0", "vhbackup abc1234",
                   "**365 runs** of **20,000 files**", "| ls of a folder | 2.00 s | 1.30 s | +0.70 s |",
                   "[benchmarks-browse.md](benchmarks-browse.md)"):
        assert needed in text
    assert "Commands:" not in text
    assert "Not measured yet" in "\n".join(report.browse_section(tmp_path / "missing.md"))


def test_the_copy_section_quotes_benchmarks_copy_md_with_its_provenance(tmp_path):
    """make bench rewrites docs/benchmarks.md whole: its copy section comes from docs/benchmarks-copy.md."""
    from bench import report
    copy_md = tmp_path / "benchmarks-copy.md"
    copy_md.write_text("# Benchmark: a run with a copy (issue 10)\n\nWritten by `bench/copy.py` (2026-11-30 07:10 UTC, "
                       "commit 57bb54f, restic 0.14.0).\n\n| | first run |\n|---|---|\n| vhbackup + copy | 5.4 s |\n\n"
                       "Difference: +0.13 s.\n")
    text = "\n".join(report.copy_section(copy_md))
    assert "(`bench/copy.py`, 2026-11-30 07:10 UTC, commit 57bb54f)" in text
    assert "| vhbackup + copy | 5.4 s |" in text and "Difference: +0.13 s." in text and "# Benchmark" not in text
    assert "Not measured yet" in "\n".join(report.copy_section(tmp_path / "missing.md"))
