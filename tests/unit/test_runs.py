"""Snapshots grouped into backup runs, and how users pick one."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from vhbackup import runs
from vhbackup.errors import EXIT_FAILURE, EXIT_USAGE, VhError
from vhbackup.restic import Snapshot, parse_time

T0 = datetime(2026, 11, 28, 2, 0, tzinfo=timezone.utc)


def snap(sid: str, run_id: str, minutes: int, *tags: str, size: int | None = None) -> Snapshot:
    summary = {"total_bytes_processed": size} if size is not None else {}
    return Snapshot(id=sid * 8 if len(sid) < 64 else sid, time=T0 + timedelta(minutes=minutes), host="web01",
                    tags=("vhbackup", f"run:{run_id}", *tags), paths=("/etc",), summary=summary)


@pytest.fixture
def all_runs():
    return runs.group([
        snap("aaaa1111", "20261128-020000-0001", 0, "service:system", "service:hub", "service:agent", size=10),
        snap("bbbb2222", "20261128-020000-0001", 1, "db:pg", "service:hub", size=5),
        snap("cccc3333", "20261129-020000-0002", 1440, "service:hub"),
        snap("abcd4444", "20261130-020000-0003", 2880, "service:system", "service:hub", "service:agent"),
        Snapshot(id="d" * 64, time=T0, host="x", tags=("vhbackup",), paths=("/x",)),
    ])


def test_group_newest_first_and_ignores_untagged(all_runs):
    assert [r.id for r in all_runs] == ["20261130-020000-0003", "20261129-020000-0002", "20261128-020000-0001"]
    first = all_runs[-1]
    assert first.services == ("system", "hub", "agent")
    assert first.databases == ("pg",)
    assert first.files.id.startswith("aaaa1111")
    assert first.database("pg").id.startswith("bbbb2222")
    assert first.size() == 15
    assert all_runs[0].size() is None
    assert first.time == T0 and first.host == "web01"


def test_find_by_run_id_and_snapshot_prefix(all_runs):
    assert runs.find(all_runs, "20261129-020000-0002").id == "20261129-020000-0002"
    assert runs.find(all_runs, "bbbb2222").id == "20261128-020000-0001"
    assert runs.find(all_runs, "BBBB").id == "20261128-020000-0001"
    assert runs.find(all_runs, "cccc3333cccc").id == "20261129-020000-0002"


def test_prefix_matching_two_snapshots_of_one_run_picks_that_run(all_runs):
    same = runs.group([snap("eeee1111", "20261201-020000-0005", 0, "service:hub"),
                       snap("eeee2222", "20261201-020000-0005", 1, "db:pg", "service:hub")])
    assert runs.find(same, "eeee").id == "20261201-020000-0005"


def test_prefix_matching_several_runs(all_runs):
    extra = runs.group([snap("abcd0000", "20261201-020000-0004", 5000, "service:hub"),
                        *[s for r in all_runs for s in r.snapshots]])
    with pytest.raises(VhError) as info:
        runs.find(extra, "abcd")
    assert info.value.exit_code == EXIT_USAGE and "several runs" in str(info.value)


def test_unknown_ref(all_runs):
    with pytest.raises(VhError) as info:
        runs.find(all_runs, "ffff0000")
    assert info.value.exit_code == EXIT_FAILURE and "restore --list" in str(info.value)


@pytest.mark.parametrize("ref", ["abc", "--help", "-abcd", "a;rm -rf /", "abcd/../x", "ab cd", "latest!", "x" * 65,
                                 "snap\n1234"])
def test_bad_refs_are_usage_errors(all_runs, ref):
    with pytest.raises(VhError) as info:
        runs.find(all_runs, ref)
    assert info.value.exit_code == EXIT_USAGE


def test_latest_is_newest_run_holding_everything_asked(all_runs):
    assert runs.latest(all_runs, ("system", "hub"), ()).id == "20261130-020000-0003"
    assert runs.latest(all_runs, ("hub",), ()).id == "20261130-020000-0003"
    assert runs.latest(all_runs, ("hub",), ("pg",)).id == "20261128-020000-0001"
    with pytest.raises(VhError, match="no backup run holds"):
        runs.latest(all_runs, ("nosuch",), ())


def test_parse_time_handles_restic_nanoseconds():
    t = parse_time("2026-11-28T02:00:00.123456789+01:00")
    assert t == datetime(2026, 11, 28, 1, 0, 0, 123456, tzinfo=timezone.utc)
    assert parse_time("2026-11-28T02:00:00Z") == datetime(2026, 11, 28, 2, tzinfo=timezone.utc)


def test_latest_passes_over_runs_dated_in_the_future(all_runs):
    """A forged run (restic backup --time in the future) is never "the latest"; --snapshot still finds it."""
    forged = runs.group([snap("f", "20991231-000000-dead", 60 * 24 * 365 * 70, "service:system", "service:hub")])
    everything = forged + all_runs
    now = T0 + timedelta(days=3)
    assert runs.latest(everything, ("system", "hub"), (), now=now).id == "20261130-020000-0003"
    assert runs.latest(everything, ("hub",), ("pg",), now=now).id == "20261128-020000-0001"
    assert runs.latest(everything, ("system", "hub"), ()).id == "20991231-000000-dead"  # no clock given
    assert runs.find(everything, "20991231-000000-dead").id == "20991231-000000-dead"
