"""The systemd units: systemd's own checks (verify, calendar, security) and the rules they must keep.

`systemd-analyze verify` runs on copies of the units whose only change is
the path of the vhbackup executable (a stub here, /usr/bin/vhbackup once
the package is installed), with MANPATH pointing at man/vhbackup.8 so that
Documentation=man:vhbackup(8) is really looked up. Any output line fails.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from vhbackup import log as vlog
from vhbackup.cli import build_parser
from vhbackup.quantities import parse_duration

ROOT = Path(__file__).resolve().parent.parent.parent
UNITS = ROOT / "systemd"
SERVICES = sorted(p.name for p in UNITS.glob("*.service"))
TIMERS = sorted(p.name for p in UNITS.glob("*.timer"))
#: Services started by a timer that run vhbackup's lock-holding jobs.
JOBS = ("vhbackup-backup.service", "vhbackup-prune.service", "vhbackup-verify.service", "vhbackup-drill.service",
        "vhbackup-maintenance.service")

#: Highest allowed `systemd-analyze security` exposure per unit (docs/systemd.md lists the measured values).
EXPOSURE_BAR = {
    "vhbackup-backup.service": 4.0,
    "vhbackup-prune.service": 2.5,
    "vhbackup-maintenance.service": 2.5,
    "vhbackup-verify.service": 2.5,
    "vhbackup-drill.service": 4.0,
    "vhbackup-check.service": 2.5,
    "vhbackup-notify@.service": 2.5,
}

SCHEDULE = {
    "vhbackup-backup.timer": "*-*-* 02:00:00",
    "vhbackup-prune.timer": "Sun *-*-* 03:00:00",
    "vhbackup-verify.timer": "Sat *-*-* 04:00:00",
    "vhbackup-drill.timer": "*-*-01 05:00:00",
    "vhbackup-maintenance.timer": "Sun *-*-* 05:00:00",
    "vhbackup-check.timer": "*-*-* *:00:00",
}


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value (systemd keys repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def one(name: str, section: str, key: str) -> str:
    values = unit(name)[section].get(key, [])
    assert len(values) == 1, f"{name}: [{section}] {key}= set {len(values)} times"
    return values[0]


def test_every_timer_has_its_service_and_every_job_its_timer():
    assert set(SCHEDULE) == set(TIMERS)
    for timer in TIMERS:
        assert timer.replace(".timer", ".service") in SERVICES
    assert set(JOBS) | {"vhbackup-check.service", "vhbackup-notify@.service"} == set(SERVICES)


@pytest.fixture(scope="module")
def verify_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("units")
    stub = base / "bin" / "vhbackup"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    units = base / "units"
    units.mkdir()
    for name in SERVICES + TIMERS:
        (units / name).write_text((UNITS / name).read_text().replace("/usr/bin/vhbackup", str(stub)))
    # the OnFailure= target of a job, as systemd instantiates it
    shutil.copy(units / "vhbackup-notify@.service", units / "vhbackup-notify@vhbackup-backup.service.service")
    man = base / "man" / "man8"
    man.mkdir(parents=True)
    shutil.copy(ROOT / "man" / "vhbackup.8", man)
    return base


def analyze_verify(verify_dir: Path, names: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, MANPATH=str(verify_dir / "man"), SYSTEMD_LOG_COLOR="0")
    return subprocess.run(["systemd-analyze", "verify", *names], cwd=verify_dir / "units", env=env,
                          capture_output=True, text=True, timeout=120)


def test_systemd_analyze_verify_prints_nothing(verify_dir):
    names = SERVICES + TIMERS + ["vhbackup-notify@vhbackup-backup.service.service"]
    result = analyze_verify(verify_dir, names)
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 0 and lines == [], "\n".join(lines)


def test_verify_would_catch_a_bad_key(verify_dir):
    bad = verify_dir / "units" / "vhbackup-bad.service"
    bad.write_text((verify_dir / "units" / "vhbackup-prune.service").read_text().replace("Nice=", "Nicety="))
    try:
        result = analyze_verify(verify_dir, ["vhbackup-bad.service"])
    finally:
        bad.unlink()
    assert "Unknown key 'Nicety'" in result.stdout + result.stderr


@pytest.mark.parametrize("timer", TIMERS)
def test_timer_calendar_and_catch_up(timer):
    calendar = one(timer, "Timer", "OnCalendar")
    result = subprocess.run(["systemd-analyze", "calendar", calendar], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    normalized = re.search(r"Normalized form: (.+)", result.stdout).group(1).strip()
    assert normalized == SCHEDULE[timer]
    assert "Next elapse:" in result.stdout
    assert one(timer, "Timer", "Persistent") == "true"
    assert one(timer, "Timer", "FixedRandomDelay") == "true"
    assert 0 < parse_duration(one(timer, "Timer", "RandomizedDelaySec")) <= 3600
    assert one(timer, "Install", "WantedBy") == "timers.target"


def exposure(name: str, threshold: float | None = None) -> tuple[int, float]:
    argv = ["systemd-analyze", "security", "--offline=yes", "--no-pager"]
    if threshold is not None:
        argv.append(f"--threshold={int(round(threshold * 10))}")
    result = subprocess.run([*argv, name], cwd=UNITS, capture_output=True, text=True, timeout=120)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    return result.returncode, float(match.group(1))


@pytest.mark.parametrize("name", sorted(EXPOSURE_BAR))
def test_security_exposure_holds_the_bar(name):
    returncode, level = exposure(name, EXPOSURE_BAR[name])
    assert returncode == 0 and level <= EXPOSURE_BAR[name], f"{name}: exposure {level} > {EXPOSURE_BAR[name]}"


def test_threshold_fails_a_unit_above_it(tmp_path):
    """The bar is enforced by systemd-analyze itself: a bar below the measured level exits non-zero."""
    returncode, level = exposure("vhbackup-prune.service", 0.5)
    assert level > 0.5 and returncode != 0


@pytest.mark.parametrize("name", SERVICES)
def test_service_basics(name):
    assert one(name, "Service", "Type") == "oneshot"
    assert parse_duration(one(name, "Service", "TimeoutStartSec")) > 0
    assert one(name, "Service", "SyslogIdentifier") == "vhbackup"
    assert "man:vhbackup(8)" in one(name, "Unit", "Documentation").split()
    assert one(name, "Service", "UMask") == "0077"
    assert one(name, "Service", "ProtectSystem") == "strict"
    assert one(name, "Service", "SystemCallFilter") == "@system-service"
    assert one(name, "Service", "CPUSchedulingPolicy") == "batch"
    assert one(name, "Service", "StateDirectory") == "vhbackup"
    families = set(one(name, "Service", "RestrictAddressFamilies").split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert "Conflicts" not in unit(name)["Unit"]
    assert "Install" not in unit(name), "services are started by their timers (or OnFailure=), never enabled"


@pytest.mark.parametrize("name", SERVICES)
def test_exec_start_is_a_valid_vhbackup_command_line(name):
    argv = shlex.split(one(name, "Service", "ExecStart").replace("%i", "vhbackup-backup.service"))
    assert argv[0] == "/usr/bin/vhbackup"
    args = build_parser().parse_args(argv[1:])
    command = name.removeprefix("vhbackup-").split(".")[0].rstrip("@")
    expected = {"check": "notify", "notify": "notify", "maintenance": "prune"}.get(command, command)
    assert args.command == expected
    if name in JOBS:
        assert args.wait is not None and 0 < args.wait < parse_duration(one(name, "Service", "TimeoutStartSec")), \
            "a job waits for the shared lock, bounded, and well within its start timeout"
    if name == "vhbackup-check.service":
        assert args.check
    if name == "vhbackup-maintenance.service":
        assert args.maintenance
    if name == "vhbackup-notify@.service":
        assert args.unit == "vhbackup-backup.service"


@pytest.mark.parametrize("name", JOBS)
def test_jobs_interrupt_cleanly_and_report_failure(name):
    assert one(name, "Service", "KillSignal") == "SIGINT"
    assert parse_duration(one(name, "Service", "TimeoutStopSec")) >= 300, \
        "time for restic to remove its lock and for the stopped units to start again"
    assert one(name, "Service", "NotifyAccess") == "main"
    assert one(name, "Unit", "OnFailure") == "vhbackup-notify@%n.service"
    assert one(name, "Service", "LoadCredential") == "restic-password:/etc/vhbackup/credentials/restic-password"
    assert one(name, "Service", "CacheDirectory") == "vhbackup"
    assert one(name, "Service", "NoNewPrivileges") == "yes"


def test_notify_and_check_never_trigger_themselves_and_need_no_password():
    for name in ("vhbackup-notify@.service", "vhbackup-check.service"):
        assert "OnFailure" not in unit(name)["Unit"]
        assert "LoadCredential" not in unit(name)["Service"]
        assert one(name, "Service", "CapabilityBoundingSet") == ""


def test_capabilities_are_minimal():
    assert one("vhbackup-backup.service", "Service", "CapabilityBoundingSet") == "CAP_DAC_READ_SEARCH CAP_FOWNER"
    assert one("vhbackup-prune.service", "Service", "CapabilityBoundingSet") == ""
    assert one("vhbackup-verify.service", "Service", "CapabilityBoundingSet") == ""


def test_catalog_documents_every_message_id(tmp_path):
    ids = {vlog.RUN_STARTED, vlog.RUN_FINISHED, vlog.RUN_FAILED, vlog.SNAPSHOT_SAVED, vlog.ALERT_SENT}
    text = (UNITS / "vhbackup.catalog").read_text()
    assert set(re.findall(r"^-- ([0-9a-f]{32})$", text, re.M)) == ids
    catalog_dir = tmp_path / "usr" / "lib" / "systemd" / "catalog"
    catalog_dir.mkdir(parents=True)
    shutil.copy(UNITS / "vhbackup.catalog", catalog_dir)
    update = subprocess.run(["journalctl", f"--root={tmp_path}", "--update-catalog"],
                            capture_output=True, text=True, timeout=60)
    assert update.returncode == 0 and update.stderr == "", update.stderr
    listed = subprocess.run(["journalctl", f"--root={tmp_path}", "--list-catalog"],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    assert {line.split()[0] for line in listed.splitlines()} == ids
    for message_id in ids:
        entry = subprocess.run(["journalctl", f"--root={tmp_path}", "--dump-catalog", message_id],
                               capture_output=True, text=True, timeout=60, check=True).stdout
        assert re.search(r"^Subject: .*vhbackup", entry, re.M), entry
        assert "Defined-By: vhbackup" in entry


@pytest.mark.parametrize("name", SERVICES)
def test_runs_are_skipped_not_failed_until_configured(name):
    """ExecCondition= exits 1 (skip) for the template policy; jobs also wait for the password file."""
    argv = shlex.split(one(name, "Service", "ExecCondition"))
    assert argv[0] == "/usr/bin/vhbackup"
    args = build_parser().parse_args(argv[1:])
    assert (args.command, args.config_command, args.if_configured) == ("config", "check", True)
    conditions = unit(name)["Unit"].get("ConditionPathExists", [])
    if name in JOBS:
        credential = one(name, "Service", "LoadCredential").split(":", 1)[1]
        assert conditions == [credential], "without the file LoadCredential= fails the unit (243/CREDENTIALS)"
    else:
        assert conditions == [] and "LoadCredential" not in unit(name)["Service"]


@pytest.mark.parametrize("name", SERVICES)
def test_documentation_links_name_shipped_files(name):
    """file: links name docs that the package installs uncompressed (debian/rules keeps them so)."""
    rules = (ROOT / "debian" / "rules").read_text()
    for link in one(name, "Unit", "Documentation").split():
        if link.startswith("file:"):
            path = Path(link.removeprefix("file:"))
            assert path.parent == Path("/usr/share/doc/vhbackup") and (ROOT / "docs" / path.name).is_file(), link
            assert f"dh_compress -X{path.name}" in rules, f"{path.name} would be compressed to .gz"
