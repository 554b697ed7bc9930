"""ls, find, diff and restore --path/--before/--to-stdout: bad arguments are one-line errors before restic runs.

restic_binary does not exist (tests/unit/test_cli.py's policy): a command that reached restic would exit 1
("command not found") instead of the usage code 2 asserted here.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.unit.test_cli import make_policy, one_line_error, vh
from vhbackup import browse, runs
from vhbackup.errors import EXIT_USAGE, UsageError


@pytest.mark.parametrize("args, says", [
    (["restore", "--before", "2026-11-20T12:00", "--path", "/srv/hub/x"], "--before '2026-11-20T12:00': expected"),
    (["restore", "--before", "20.11.2026 12:00"], "expected a local time as 'YYYY-MM-DD HH:MM'"),
    (["restore", "--before", "2026-02-30 12:00"], "expected a local time"),
    (["restore", "--latest", "--to-stdout"], "--to-stdout needs exactly one --path FILE"),
    (["restore", "--latest", "--to-stdout", "--path", "/srv/hub/a", "--path", "/srv/hub/b"],
     "--to-stdout needs exactly one --path FILE"),
    (["restore", "--latest", "--to-stdout", "--path", "/srv/hub/a", "--target", "/tmp/x"],
     "does not go with --target or --yes"),
    (["restore", "--latest", "--path", "srv/hub/a"], "--path must be an absolute path"),
    (["restore", "--latest", "--path", "/srv/hub/../agent"], "must not contain '.' or '..'"),
    (["restore", "--latest", "--path", "/srv/hub/a", "--database", "main"], "--path restores files"),
    (["restore", "--latest", "--path", "/srv/hub/a", "--databases-only"], "--path restores files"),
    (["restore", "--latest", "--path", "/srv/other/a"], "--path /srv/other/a is not within the paths of any"),
    (["restore", "--latest", "--path", "/srv/agent/a", "--service", "hub"],
     "--path /srv/agent/a is not within the paths of service hub"),
    (["restore", "--latest", "--path", "/srv/hub/a", "--service", "nope"], "unknown service 'nope'"),
    (["ls", "latest", "relative/path"], "PATH must be an absolute path"),
    (["ls", "a;b", "/srv"], "not a run or snapshot id"),
    (["diff", "latest", "../x"], "not a run or snapshot id"),
    (["diff", "20261120-020000-ab00", "latest", "--service", "nope"], "unknown service 'nope'"),
    (["find", "x", "--service", "nope"], "unknown service 'nope'"),
    (["find", "x", "--newest", "0"], "--newest '0': expected a number of runs, 1 or more"),
    (["find", "x", "--newest", "ten"], "--newest 'ten': expected a number of runs"),
    (["find", "x", "--newest", "5", "--all"], "--all searches every run: it does not go with --newest"),
    (["find", "x", "--after", "yesterday"], "--after 'yesterday': expected a local time"),
    (["find", "x", "--before", "2026-13-01"], "--before '2026-13-01': expected a local time"),
    (["find", "x", "--after", "2026-11-20", "--before", "2026-11-20"], "is not earlier than --before"),
])
def test_bad_arguments_are_one_line_usage_errors_before_restic(tmp_path, args, says):
    policy = make_policy(tmp_path)
    result = vh("-c", str(policy), *args)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert says in one_line_error(result)
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())


def test_before_and_at_are_mutually_exclusive_with_latest_and_snapshot(tmp_path):
    policy = make_policy(tmp_path)
    result = vh("-c", str(policy), "restore", "--latest", "--before", "2026-11-20 12:00")
    assert result.returncode == 2 and "not allowed with argument" in result.stderr


def test_parse_before_is_local_time():
    when = runs.parse_before("2026-11-20 12:00")
    assert when.tzinfo is not None and when.replace(tzinfo=None) == datetime(2026, 11, 20, 12, 0)
    assert runs.parse_before("2026-11-20") == datetime(2026, 11, 20).astimezone()
    assert runs.parse_before("2026-11-20 12:00:30").second == 30
    with pytest.raises(UsageError):
        runs.parse_before("yesterday")


def test_paths_are_normalised_literally_and_compared_by_component():
    assert browse.normalize("/srv//app [1]/") == "/srv/app [1]"
    assert browse.normalize("/") == "/"
    assert browse.below("/srv/app/x", "/srv/app") and browse.below("/srv/app", "/srv/app")
    assert not browse.below("/srv/app1", "/srv/app")
    assert not browse.below("/srv/app[1]", "/srv/app")


def test_a_directory_mtime_alone_is_not_a_change_but_a_files_is():
    t0, t1 = datetime(2026, 1, 1).astimezone(), datetime(2026, 1, 2).astimezone()
    d0, d1 = browse.Item("dir", "/d", 0o755, mtime=t0), browse.Item("dir", "/d", 0o755, mtime=t1)
    f0, f1 = browse.Item("file", "/f", 0o644, 3, t0), browse.Item("file", "/f", 0o600, 3, t1)
    assert browse._fields(d0, d1) == []
    assert browse._fields(f0, f1) == ["mode", "mtime"]
    assert browse._fields(d0, browse.Item("file", "/d", 0o755, 0, t0)) == ["type"]


def test_restore_path_stops_the_units_of_the_file_sets_it_touches_and_only_in_place(tmp_path):
    from vhbackup.policy import load_policy
    from vhbackup.selection import for_paths

    policy = load_policy(str(make_policy(tmp_path, services={
        "hub": {"paths": ["/srv/hub"], "units": ["hub.service"]},
        "agent": {"paths": ["/srv/agent"], "units": ["agent.service"]}})))
    hub = for_paths(policy, ["/srv/hub/data/report.txt"])
    assert hub.services == ("hub",) and hub.units == ("hub.service",)
    assert for_paths(policy, ["/srv/hub/data/report.txt"], in_place=False).units == ()
    both = for_paths(policy, ["/srv"])
    assert set(both.services) == {"hub", "agent"} and set(both.units) == {"hub.service", "agent.service"}
    system = for_paths(policy, ["/etc/hostname"])
    assert system.services == ("system",) and system.units == ()
    with pytest.raises(UsageError, match="not within the paths"):
        for_paths(policy, ["/srv/hub1/x"])
