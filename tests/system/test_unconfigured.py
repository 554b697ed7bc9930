"""A fresh install that nobody has configured yet, under systemd (Debian 12 and 13).

The package enables its timers at installation, before anyone wrote a password or a policy. Their runs
must be skipped, not failed: the system stays "running" (not "degraded"), OnFailure= sends nothing, and
`vhbackup status` says "not configured yet". Once the admin writes the password and the policy, the next
timer run backs up; a configured but broken policy fails the run and starts the OnFailure= alert unit.
The timers get a drop-in that fires every 10 s, so the tests see real timer runs without waiting for 02:00.
"""

from __future__ import annotations

import json

import pytest

from tests.system.test_system import install_deb

PASSWORD_FILE = "/etc/vhbackup/credentials/restic-password"
POLICY = "/etc/vhbackup/policy.yml"
REPO = "/srv/vhbackup/repo"
NOTIFY_UNIT = "vhbackup-notify@vhbackup-backup.service.service"
FAST = "[Timer]\nOnCalendar=\nOnCalendar=*:*:0/10\nRandomizedDelaySec=0\nAccuracySec=1s\n"
JOBS = ("vhbackup-backup.service", "vhbackup-check.service")


@pytest.fixture(scope="module")
def fresh(boot, deb):
    box = boot("fresh")
    assert box.state == "running", f"the container itself did not boot to running: {box.state}"
    install_deb(box, deb)
    return box


def system_state(box) -> str:
    return box.run("systemctl", "is-system-running", check=False).stdout.strip()


def assert_quiet(box, sink) -> None:
    """Nothing failed and nothing was alerted."""
    failed = box.run("systemctl", "list-units", "--failed", "--no-legend", "--plain").stdout.strip()
    assert failed == "" and system_state(box) == "running", f"{system_state(box)}; failed units: {failed}"
    assert box.show(NOTIFY_UNIT, "InvocationID")["InvocationID"] == "", "OnFailure= ran the alert unit"
    assert sink.requests == [], sink.requests


def next_run(box, unit: str, timeout: float = 40) -> dict[str, str]:
    """Wait for the timer to start ``unit`` again (skipped or run) and for that run to end; its properties."""
    props = ("ConditionTimestampMonotonic", "ActiveState", "Result", "ConditionResult", "ExecMainStatus",
             "ExecMainStartTimestampMonotonic", "InvocationID")
    before = int(box.show(unit, *props)["ConditionTimestampMonotonic"] or 0)

    def ended():
        now = box.show(unit, *props)
        return now if int(now["ConditionTimestampMonotonic"] or 0) > before and \
            now["ActiveState"] not in ("activating", "deactivating") else None

    return box.wait_for(f"a timer run of {unit}", ended, timeout=timeout, interval=0.5)


def test_a_fresh_install_is_running_and_says_it_is_not_configured(fresh, sink):
    fresh.wait_for("systemd to settle", lambda: system_state(fresh) == "running", timeout=30)
    for timer in ("backup", "prune", "verify", "drill", "check"):
        props = fresh.show(f"vhbackup-{timer}.timer", "ActiveState", "UnitFileState")
        assert props == {"ActiveState": "active", "UnitFileState": "enabled"}, (timer, props)
    status = fresh.run("vhbackup", "status", check=False)
    assert status.returncode == 3 and status.stdout.startswith("UNKNOWN: not configured yet"), status
    check = fresh.run("vhbackup", "config", "check", check=False)
    assert check.returncode == 78 and "not configured yet" in check.stderr, check
    assert_quiet(fresh, sink)


def test_timer_runs_are_skipped_and_nothing_is_alerted_until_configured(fresh, sink):
    for unit in ("vhbackup-backup.timer", "vhbackup-check.timer"):
        fresh.put(f"/etc/systemd/system/{unit}.d/every-10s.conf", FAST)
    fresh.run("systemctl", "daemon-reload")
    fresh.run("systemctl", "restart", "vhbackup-backup.timer", "vhbackup-check.timer")

    # no password: the jobs' ConditionPathExists= skips them before LoadCredential= could fail them
    run = next_run(fresh, "vhbackup-backup.service")
    assert (run["ConditionResult"], run["Result"], run["ExecMainStartTimestampMonotonic"]) == ("no", "success", "0")
    journal = fresh.run("journalctl", "--no-pager", "-u", "vhbackup-backup.service").stdout
    assert "ConditionPathExists=/etc/vhbackup/credentials/restic-password" in journal
    assert "243/CREDENTIALS" not in journal
    assert_quiet(fresh, sink)

    # password, but the policy is still the template: ExecCondition= (config check --if-configured) skips
    fresh.put(PASSWORD_FILE, "correct-horse-battery-staple-0123456789-abcdef\n", mode=0o600)
    for unit in JOBS:
        run = next_run(fresh, unit)
        assert (run["Result"], run["ExecMainStartTimestampMonotonic"]) == ("exec-condition", "0"), (unit, run)
        out = fresh.run("journalctl", "--no-pager", "-o", "cat", f"_SYSTEMD_INVOCATION_ID={run['InvocationID']}").stdout
        assert "not configured yet" in out, out
    assert_quiet(fresh, sink)


def test_the_next_timer_run_after_configuration_backs_up(fresh, sink):
    fresh.sh("mkdir -p /etc/vhtest /srv/vhbackup && echo 'listen = 8080' > /etc/vhtest/app.conf")
    fresh.put(POLICY, f"""\
repository:
  url: {REPO}
  password_file: {PASSWORD_FILE}
paths:
  - /etc/vhtest
notify:
  on: [failure]
  webhook:
    url: {sink.url}
""")
    assert fresh.run("vhbackup", "config", "check", "--if-configured").returncode == 0
    fresh.run("vhbackup", "init")
    run = next_run(fresh, "vhbackup-backup.service", timeout=60)
    assert (run["Result"], run["ExecMainStatus"]) == ("success", "0"), run
    assert run["ExecMainStartTimestampMonotonic"] != "0"
    snapshots = json.loads(fresh.run("restic", "-r", REPO, "--password-file", PASSWORD_FILE, "--no-cache",
                                     "snapshots", "--json").stdout)
    assert [sorted(s["paths"]) for s in snapshots] == [["/etc/vhbackup/policy.yml", "/etc/vhtest"]], snapshots
    status = fresh.run("vhbackup", "status", check=False)
    assert status.returncode == 0 and status.stdout.startswith("OK: last backup"), status
    assert system_state(fresh) == "running"


def test_a_configured_but_broken_policy_fails_the_run_and_starts_the_alert_unit(fresh):
    fresh.put(POLICY, f"repository:\n  url: {REPO}\n  pasword_file: {PASSWORD_FILE}\n")
    run = next_run(fresh, "vhbackup-backup.service")
    assert (run["Result"], run["ExecMainStatus"]) == ("exit-code", "78"), run
    fresh.wait_for(f"{NOTIFY_UNIT} to run", lambda: fresh.show(NOTIFY_UNIT, "InvocationID")["InvocationID"] and
                   fresh.show(NOTIFY_UNIT, "ActiveState")["ActiveState"] != "activating", timeout=30)
    journal = fresh.run("journalctl", "--no-pager", "-o", "cat",
                        f"_SYSTEMD_INVOCATION_ID={run['InvocationID']}").stdout
    assert "pasword_file" in journal, journal
    assert system_state(fresh) == "degraded"
    # the alert unit cannot read a receiver from a broken policy either: it fails too, and says why
    notify = fresh.show(NOTIFY_UNIT, "Result", "ExecMainStatus")
    assert notify == {"Result": "exit-code", "ExecMainStatus": "78"}, notify
