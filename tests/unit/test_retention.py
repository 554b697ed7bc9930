"""retention: grouping by host and tags without run:*, and restic's keep algorithm."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone

import pytest

from vhbackup import retention
from vhbackup.errors import PolicyError
from vhbackup.policy import Retention, load_policy
from vhbackup.restic import Snapshot

UTC = timezone.utc
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def snap(n: int, when: datetime, tags=("vhbackup", "service:system"), host="web01") -> Snapshot:
    return Snapshot(id=f"{n:08x}" + "0" * 56, time=when, host=host,
                    tags=(*tags, f"run:run-{n}"), paths=("/etc",))


def ids(snaps) -> list[int]:
    return [int(s.id[:8], 16) for s in snaps]


def test_group_ignores_the_run_tag_but_separates_services_databases_and_hosts():
    t = datetime(2026, 2, 1, tzinfo=UTC)
    snaps = [
        snap(1, t, ("vhbackup", "service:system", "service:hub")),
        snap(2, t + timedelta(days=1), ("vhbackup", "service:hub", "service:system")),
        snap(3, t, ("vhbackup", "db:main", "service:hub")),
        snap(4, t + timedelta(days=1), ("vhbackup", "db:main", "service:hub")),
        snap(5, t, ("vhbackup", "db:other", "service:hub")),
        snap(6, t, ("vhbackup", "service:system", "service:hub"), host="web02"),
    ]
    groups = retention.group(snaps)
    assert sorted(ids(g) for g in groups.values()) == [[1, 2], [3, 4], [5], [6]]
    assert all(not any(t.startswith("run:") for t in key.tags) for key in groups)


def test_keep_last_counts_snapshots_newest_first():
    snaps = [snap(i, NOW - timedelta(hours=i)) for i in range(10)]
    d = retention.apply(snaps, Retention(last=3), now=NOW)
    assert ids(d.keep) == [0, 1, 2]
    assert ids(d.remove) == [3, 4, 5, 6, 7, 8, 9]
    assert d.reasons[d.keep[0].id] == ["last snapshot"]


def test_daily_keeps_the_newest_per_day_and_the_oldest_while_days_are_left():
    # two snapshots a day over three days; daily: 7 cannot be filled, so the oldest is kept too (restic >= 0.17)
    snaps = [snap(i, NOW - timedelta(days=i // 2, hours=6 * (i % 2))) for i in range(6)]
    d = retention.apply(snaps, Retention(daily=7), now=NOW)
    assert ids(d.keep) == [0, 2, 4, 5]
    assert ids(d.remove) == [1, 3]


def test_filled_buckets_do_not_keep_the_oldest():
    snaps = [snap(i, NOW - timedelta(days=i)) for i in range(10)]
    d = retention.apply(snaps, Retention(daily=3), now=NOW)
    assert ids(d.keep) == [0, 1, 2]


def test_rules_combine_and_report_every_reason():
    snaps = [snap(i, NOW - timedelta(days=i)) for i in range(40)]
    d = retention.apply(snaps, Retention(last=2, daily=3, weekly=2, monthly=2), now=NOW)
    by_id = {int(k[:8], 16): v for k, v in d.reasons.items()}
    # NOW is Sunday 2026-03-01: day 1 (Feb 28) opens a new month, day 7 (Sunday Feb 22) a new ISO week
    assert by_id == {
        0: ["last snapshot", "daily snapshot", "weekly snapshot", "monthly snapshot"],
        1: ["last snapshot", "daily snapshot", "monthly snapshot"],
        2: ["daily snapshot"],
        7: ["weekly snapshot"],
    }
    assert ids(d.keep) == [0, 1, 2, 7]
    assert len(d.remove) == 36  # every bucket was used up before the oldest, so it goes too


def test_weekly_uses_iso_weeks():
    sunday = datetime(2026, 3, 1, 10, tzinfo=UTC)
    monday = datetime(2026, 3, 2, 10, tzinfo=UTC)
    saturday = datetime(2026, 2, 28, 10, tzinfo=UTC)
    d = retention.apply([snap(1, monday), snap(2, sunday), snap(3, saturday)], Retention(weekly=2), now=monday)
    assert ids(d.keep) == [1, 2]  # Sunday closes the week that Saturday is in
    assert ids(d.remove) == [3]


def test_buckets_use_the_snapshots_own_time_zone():
    plus2 = timezone(timedelta(hours=2))
    late = datetime(2026, 3, 1, 23, 30, tzinfo=plus2)
    early_next = datetime(2026, 3, 2, 0, 30, tzinfo=plus2)  # same UTC day as `late`
    d = retention.apply([snap(1, early_next), snap(2, late), snap(3, late - timedelta(minutes=5))],
                        Retention(daily=2), now=NOW + timedelta(days=2))
    assert ids(d.keep) == [1, 2]


def test_within_is_relative_to_the_newest_snapshot_not_now():
    old = NOW - timedelta(days=400)
    snaps = [snap(i, old - timedelta(hours=12 * i)) for i in range(8)]
    d = retention.apply(snaps, Retention(within="2d", within_seconds=2 * 86400), now=NOW)
    assert ids(d.keep) == [0, 1, 2, 3]  # 0, 12, 24, 36 h older than the newest; 48 h is not "after"
    assert d.reasons[d.keep[0].id] == ["within 2d"]


def test_within_ignores_snapshots_in_the_future_as_the_reference():
    snaps = [snap(1, NOW + timedelta(days=30)), snap(2, NOW - timedelta(hours=1)), snap(3, NOW - timedelta(days=5))]
    d = retention.apply(snaps, Retention(within="1d", within_seconds=86400), now=NOW)
    assert ids(d.keep) == [1, 2]


def test_plan_never_keeps_nothing_in_a_group_and_refuses_an_empty_policy():
    snaps = [snap(i, NOW - timedelta(days=i)) for i in range(3)]
    for decision in retention.plan(snaps, Retention(yearly=1), now=NOW):
        assert decision.keep
    with pytest.raises(ValueError):
        retention.apply(snaps, Retention(), now=NOW)


# --- the policy keys --------------------------------------------------------------

def _policy(tmp_path, body: str):
    pw = tmp_path / "pw"
    pw.write_text("x" * 40)
    pw.chmod(0o600)
    path = tmp_path / "policy.yml"
    path.write_text(f"repository: {{url: /srv/repo, password_file: {pw}}}\n" + textwrap.dedent(body))
    return load_policy(path)


def test_retention_keys_parse(tmp_path):
    p = _policy(tmp_path, "retention:\n  daily: 7\n  weekly: 4\n  within: 2 weeks\n")
    assert p.retention.rules() == {"daily": 7, "weekly": 4}
    assert p.retention.within_seconds == 14 * 86400 and p.retention.within == "2 weeks"


@pytest.mark.parametrize("body,line,key", [
    ("retention:\n  daily: seven\n", 3, "retention.daily"),
    ("retention:\n  daily: -1\n", 3, "retention.daily"),
    ("retention:\n  weekly: 4\n  within: forever\n", 4, "retention.within"),
    ("retention:\n  within: 0\n", 3, "retention.within"),
    ("retention:\n  dayly: 7\n", 3, "retention.dayly"),
])
def test_bad_retention_names_file_line_and_key(tmp_path, body, line, key):
    with pytest.raises(PolicyError) as exc:
        _policy(tmp_path, body)
    assert exc.value.exit_code == 78
    assert f"policy.yml:{line}: {key}:" in str(exc.value)


@pytest.mark.parametrize("seconds", [1e17, 1e300])
def test_a_within_longer_than_the_calendar_keeps_everything_not_a_traceback(seconds):
    """'within: 99999999999999 weeks' passed the policy check, then prune died with OverflowError."""
    snaps = [snap(i, NOW - timedelta(days=400 * i)) for i in range(4)]
    d = retention.apply(snaps, Retention(within="forever", within_seconds=seconds), now=NOW)
    assert ids(d.keep) == [0, 1, 2, 3] and d.remove == []

# --- restic's snapshot list, as prune reads it ---------------------------------------

def test_parse_snapshots_reads_restics_listing_oldest_first_keeping_only_what_vhbackup_uses():
    from vhbackup.restic import parse_snapshots
    text = ('[{"time":"2026-02-01T02:00:00.123456789+01:00","tree":"t","paths":["/srv/a"],"hostname":"web01",'
            '"username":"root","tags":["vhbackup","run:r2","service:a"],"id":"' + "b" * 64 + '",'
            '"summary":{"files_new":3,"total_bytes_processed":4096}},\n'
            ' {"time":"2026-01-01T02:00:00Z","paths":["/postgresql-db.dump"],"hostname":"web01",'
            '"tags":["vhbackup","run:r1","db:db"],"id":"' + "a" * 64 + '"}]\n')
    first, second = parse_snapshots(text)
    assert (first.id, second.id) == ("a" * 64, "b" * 64)
    assert first.time == datetime(2026, 1, 1, 2, tzinfo=UTC) and first.summary == {}
    assert second.time == datetime(2026, 2, 1, 1, 0, 0, 123456, tzinfo=UTC)
    assert second.tags == ("vhbackup", "run:r2", "service:a") and second.paths == ("/srv/a",)
    assert second.summary == {"total_bytes_processed": 4096}
    assert second.host == first.host == "web01"


@pytest.mark.parametrize("text", ["", "null", "[]", " [\n] \n", "null\n"])
def test_parse_snapshots_of_an_empty_listing_is_empty(text):
    from vhbackup.restic import parse_snapshots
    assert parse_snapshots(text) == []


def test_parse_snapshots_refuses_a_broken_listing():
    from vhbackup.restic import parse_snapshots
    with pytest.raises(ValueError):
        parse_snapshots('[{"id": "a", "time": "2026-01-01T00:00:00Z"} {"id": "b"}]')
    with pytest.raises(ValueError):
        parse_snapshots('[{"id": "a", "time": "2026-01-01T00:00:00Z"},')
