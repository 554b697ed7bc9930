"""Upgrading from vhbackup 0.1.0 (units in /lib/systemd/system) to this package (/usr/lib/systemd/system).

0.1.0 is built from its commit (tools/build-old-deb.sh 5e49a99, cached) and installed with apt on a
booted Debian 12 and 13, configured, one timer disabled by the admin. A backup is started and held in
the middle of its run (the service it stops takes until the test says so to stop), the new package is
installed over it with apt, then the backup is let go: it must finish with the old code, not be killed or
restarted. Afterwards the timers keep exactly their enablement (the enablement symlinks survive the
unit directory move and resolve to the new files) and the new units back up.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.system.test_system import install_deb

ROOT = Path(__file__).resolve().parents[2]
OLD_COMMIT = "5e49a99"  # vhbackup 0.1.0
PASSWORD_FILE = "/etc/vhbackup/credentials/restic-password"
REPO = "/srv/vhbackup/repo"
APP_UNIT = "vhtest-slowstop.service"
RELEASE_FLAG = "/run/vhtest-release"
TIMERS = ("backup", "prune", "verify", "drill", "check")

# Stopping it takes until the test creates RELEASE_FLAG: vhbackup's backup waits for that stop.
APP_SERVICE = f"""[Unit]
Description=vhtest application that takes its time to stop

[Service]
ExecStart=/bin/sleep infinity
ExecStop=/bin/sh -c 'while [ ! -e {RELEASE_FLAG} ]; do sleep 0.2; done'
TimeoutStopSec=600
"""


@pytest.fixture(scope="module")
def old_deb() -> Path:
    result = subprocess.run([str(ROOT / "tools/build-old-deb.sh"), OLD_COMMIT], capture_output=True, text=True,
                            timeout=900)
    if result.returncode != 0:
        pytest.fail(f"tools/build-old-deb.sh {OLD_COMMIT} failed:\n{result.stderr}")
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.name == "vhbackup_0.1.0_all.deb", path
    return path


def package_files(box) -> list[str]:
    return box.run("dpkg-query", "-L", "vhbackup").stdout.split()


def version(box) -> str:
    return box.run("dpkg-query", "-W", "-f", "${Version}", "vhbackup").stdout


def test_upgrade_from_0_1_0_keeps_timers_and_a_running_backup(boot, deb, old_deb):
    box = boot("upgrade")
    install_deb(box, old_deb)
    assert version(box) == "0.1.0"
    assert "/lib/systemd/system/vhbackup-backup.timer" in package_files(box)
    box.run("systemctl", "disable", "--now", "vhbackup-drill.timer")  # the admin's choice, to be kept

    box.put(PASSWORD_FILE, "correct-horse-battery-staple-0123456789-abcdef\n", mode=0o600)
    box.put(f"/etc/systemd/system/{APP_UNIT}", APP_SERVICE)
    box.run("systemctl", "daemon-reload")
    box.run("systemctl", "start", APP_UNIT)
    box.sh("mkdir -p /srv/app && head -c 5000000 /dev/urandom > /srv/app/data.bin && echo a > /srv/app/a.txt")
    box.put("/etc/vhbackup/policy.yml", f"""\
repository:
  url: {REPO}
  password_file: {PASSWORD_FILE}
services:
  app:
    paths: [/srv/app]
    units: [{APP_UNIT}]
    stop: true
""")
    box.run("vhbackup", "init")

    box.run("systemctl", "start", "--no-block", "vhbackup-backup.service")
    box.wait_for(f"the backup to be stopping {APP_UNIT}",
                 lambda: box.show(APP_UNIT, "ActiveState")["ActiveState"] == "deactivating", timeout=60)
    running = box.show("vhbackup-backup.service", "ActiveState", "MainPID", "InvocationID")
    assert running["ActiveState"] == "activating" and running["MainPID"] != "0", running

    # apt as an unattended upgrade runs it: the admin's edited policy (a conffile) is kept, the new
    # template lands beside it as policy.yml.dpkg-dist
    box.put(f"/root/{deb.name}", deb.read_bytes())
    upgrade = box.run("apt-get", "install", "-y", "-o", "Dpkg::Options::=--force-confdef", "-o",
                      "Dpkg::Options::=--force-confold", f"/root/{deb.name}", timeout=600).stdout
    assert version(box) == deb.name.split("_")[1], upgrade
    assert f"url: {REPO}" in box.path("/etc/vhbackup/policy.yml").read_text()
    assert "NOT CONFIGURED YET" in box.path("/etc/vhbackup/policy.yml.dpkg-dist").read_text()
    during = box.show("vhbackup-backup.service", "ActiveState", "MainPID", "InvocationID")
    assert during == running, f"the upgrade touched the running backup: {running} -> {during}\n{upgrade}"

    box.run("touch", RELEASE_FLAG)
    props = box.wait_for("the held backup to finish", lambda: box.show(
        "vhbackup-backup.service", "ActiveState", "Result", "ExecMainStatus", "InvocationID")
        if box.show("vhbackup-backup.service", "ActiveState")["ActiveState"] in ("inactive", "failed") else None,
        timeout=180)
    journal = box.run("journalctl", "--no-pager", "-n", "40", "-u", "vhbackup-backup.service").stdout
    assert (props["Result"], props["ExecMainStatus"], props["InvocationID"]) == (
        "success", "0", running["InvocationID"]), f"{props}\n{journal}"
    assert box.show(APP_UNIT, "ActiveState")["ActiveState"] == "active", f"{APP_UNIT} was not started again"

    # the units moved to /usr/lib/systemd/system and nothing of the package is left in /lib
    files = package_files(box)
    assert "/usr/lib/systemd/system/vhbackup-backup.timer" in files
    assert not [f for f in files if f.startswith("/lib/")], files
    for timer in TIMERS:
        unit = f"vhbackup-{timer}.timer"
        assert box.path(f"/usr/lib/systemd/system/{unit}").is_file(), f"{unit} was lost in the move"
        props = box.show(unit, "UnitFileState", "ActiveState", "FragmentPath")
        resolved = box.run("realpath", "-e", props["FragmentPath"]).stdout.strip()
        assert resolved == f"/usr/lib/systemd/system/{unit}", props
        wanted = f"/etc/systemd/system/timers.target.wants/{unit}"
        if timer == "drill":
            assert (props["UnitFileState"], props["ActiveState"]) == ("disabled", "inactive"), props
            assert box.run("test", "-e", wanted, check=False).returncode != 0
        else:
            assert (props["UnitFileState"], props["ActiveState"]) == ("enabled", "active"), (unit, props)
            link = box.run("realpath", "-e", wanted).stdout.strip()
            assert link == f"/usr/lib/systemd/system/{unit}", f"{wanted} -> {link}"

    # the held run saved its snapshot, and the new units back up
    result = box.run("systemctl", "start", "vhbackup-backup.service", check=False, timeout=300)
    assert result.returncode == 0, box.run("journalctl", "--no-pager", "-n", "30", "-u",
                                           "vhbackup-backup.service").stdout
    runs = json.loads(box.run("vhbackup", "restore", "--list", "--json").stdout)
    assert len(runs) == 2 and all(run["services"] == ["app"] for run in runs), runs
    assert box.run("systemctl", "is-system-running", check=False).stdout.strip() == "running"
