"""vhbackup as an admin meets it: the .deb installed with apt on a booted Debian 12 and Debian 13.

One container ("web1") plays the server: the package is installed with apt,
the policy backs up files of a service, its PostgreSQL database and a dummy
unit that must be stopped during the backup, into a local repository on a
"backup disk" (a host folder bound at /srv/vhbackup, the units' default
writable repository place). The tests run in file order and build on each
other: backup, failure alert, stop in the middle, disaster recovery on a
second container, purge.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.system.conftest import RELEASE_FACTS
from tests.system.container import Container, ContainerError
from vhbackup import log as vlog

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "disaster-recovery.md"
REPO = "/srv/vhbackup/repo"
PASSWORD_FILE = "/etc/vhbackup/credentials/restic-password"
APP_UNIT = "vhtest-app.service"
TIMERS = ("vhbackup-backup.timer", "vhbackup-prune.timer", "vhbackup-verify.timer")
NOTIFY_UNIT = "vhbackup-notify@vhbackup-backup.service.service"
#: The healthchecks check the runs ping (on the host's sink). In the policy itself, not in a url_file: the
#: disaster recovery runbook brings only the policy and the password to the new server.
CHECK = "8d1c3e5a-7b9f-4e2d-a6c8-0f1e2d3c4b5a"

APP_SERVICE = f"""[Unit]
Description=vhtest dummy application whose data vhbackup backs up

[Service]
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
"""

SHOP_SQL = """
CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL, amount numeric(10,2), note text);
INSERT INTO orders (item, amount, note)
  SELECT 'item-' || g, g * 1.25, CASE WHEN g % 7 = 0 THEN E'tab\\there ünïcødé' END FROM generate_series(1, 5000) g;
CREATE TABLE customers (id int PRIMARY KEY, name text);
INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 300) g;
CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 1000;
"""

DB_FINGERPRINT = """
SELECT (SELECT count(*) FROM orders) || ' ' ||
       (SELECT md5(string_agg(id || ':' || item || ':' || amount || ':' || coalesce(note, '-'), ',' ORDER BY id))
          FROM orders) || ' ' ||
       (SELECT count(*) FROM customers) || ' ' ||
       (SELECT md5(string_agg(id || ':' || name, ',' ORDER BY id)) FROM customers) || ' ' ||
       (SELECT count(*) FROM big_orders)
"""

FILES_FINGERPRINT = r"""
cd /
find srv/app etc/vhtest -printf '%y %p %m %U:%G %l\n' | LC_ALL=C sort
find srv/app etc/vhtest -type f -printf '%p %s %T@\n' | LC_ALL=C sort
find srv/app etc/vhtest -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
"""


def policy_yaml(webhook_url: str) -> str:
    ping_url = f"{webhook_url.rsplit('/', 1)[0]}/hc/{CHECK}"
    return f"""\
host: web1
repository:
  url: {REPO}
  password_file: {PASSWORD_FILE}
paths:
  - /etc/vhtest
services:
  app:
    paths: [/srv/app]
    databases: [shop]
    units: [{APP_UNIT}]
    stop: true
databases:
  shop:
    type: postgresql
notify:
  on: [failure]
  webhook:
    url: {webhook_url}
monitor:
  healthchecks:
    url: {ping_url}
    timeout: 10s
"""


def journal(box: Container, *matches: str) -> list[dict]:
    out = box.run("journalctl", "--no-pager", "-o", "json", *matches).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def restic(box: Container, *args: str, timeout: float = 120) -> str:
    return box.run("restic", "--no-cache", "-r", REPO, "--password-file", PASSWORD_FILE, *args,
                   timeout=timeout).stdout


def snapshots(box: Container, *args: str) -> list[dict]:
    return json.loads(restic(box, "snapshots", "--json", *args) or "[]")


def start_unit(box: Container, unit: str, timeout: float = 300):
    return box.run("systemctl", "start", unit, check=False, timeout=timeout)


def install_deb(box: Container, deb: Path) -> str:
    box.put(f"/root/{deb.name}", deb.read_bytes())
    return box.run("apt-get", "install", "-y", f"/root/{deb.name}", timeout=600).stdout


def make_app_data(box: Container) -> None:
    box.sh("""
        mkdir -p /etc/vhtest /srv/app/data/empty /srv/app/data/nested/deeper
        echo 'listen = 8080' > /etc/vhtest/app.conf
        chmod 640 /etc/vhtest/app.conf
        head -c 3000000 /dev/urandom > /srv/app/data/blob.bin
        printf 'spaces\\n' > '/srv/app/data/a file with spaces'
        printf 'utf-8\\n' > /srv/app/data/ünïcødé.txt
        printf 'secret\\n' > /srv/app/data/nested/deeper/secret.key
        chmod 600 /srv/app/data/nested/deeper/secret.key
        chown 1234:4321 /srv/app/data/nested/deeper/secret.key
        printf '#!/bin/sh\\necho hi\\n' > /srv/app/data/run.sh
        chmod 755 /srv/app/data/run.sh
        ln -s 'a file with spaces' /srv/app/data/link
        touch -d '2021-03-04 05:06:07' /srv/app/data/blob.bin
    """)


def make_shop_database(box: Container) -> None:
    box.wait_for("postgresql to accept connections",
                 lambda: box.run("runuser", "-u", "postgres", "--", "pg_isready", check=False).returncode == 0,
                 timeout=60)
    box.run("runuser", "-u", "postgres", "--", "createuser", "--superuser", "root")
    box.run("createdb", "shop")
    box.run("psql", "-v", "ON_ERROR_STOP=1", "-q", "-d", "shop", input=SHOP_SQL)


def db_fingerprint(box: Container) -> str:
    return box.run("psql", "-v", "ON_ERROR_STOP=1", "-At", "-d", "shop", "-c", DB_FINGERPRINT).stdout.strip()


def files_fingerprint(box: Container) -> str:
    return box.sh(FILES_FINGERPRINT).stdout


def runbook_blocks() -> list[str]:
    """Every ```sh block of docs/disaster-recovery.md, in order."""
    blocks = re.findall(r"^```sh\n(.*?)^```$", RUNBOOK.read_text(), flags=re.S | re.M)
    assert len(blocks) >= 4, f"{RUNBOOK} has too few ```sh blocks to be a runbook"
    return blocks


@pytest.fixture(scope="module")
def backup_disk(tmp_path_factory) -> Path:
    """The disk holding the repository: outlives the server, reattached to the replacement."""
    disk = tmp_path_factory.mktemp("backup-disk")
    disk.chmod(0o700)
    return disk


@pytest.fixture(scope="module")
def web1(boot, deb, sink, backup_disk) -> Container:
    box = boot("web1", binds=((str(backup_disk), "/srv/vhbackup"),))
    install_deb(box, deb)
    box.put(PASSWORD_FILE, "correct-horse-battery-staple-0123456789-abcdef\n", mode=0o600)
    box.put("/etc/vhbackup/policy.yml", policy_yaml(sink.url))
    box.put(f"/etc/systemd/system/{APP_UNIT}", APP_SERVICE)
    box.run("systemctl", "daemon-reload")
    box.run("systemctl", "enable", "--now", APP_UNIT)
    make_app_data(box)
    make_shop_database(box)
    box.run("vhbackup", "init")
    return box


def test_the_booted_host_is_the_release_under_test(web1, release):
    """Debian 12 or 13 as it ships: its systemd as PID 1, Python, PostgreSQL and restic."""
    facts = RELEASE_FACTS[release]
    assert web1.run("cat", "/etc/debian_version").stdout.startswith(facts["debian"] + ".")
    assert web1.run("readlink", "/proc/1/exe").stdout.strip().endswith("/systemd")
    assert web1.run("systemctl", "--version").stdout.split()[1] == str(facts["systemd"])
    assert web1.run("python3", "--version").stdout.startswith(f"Python {facts['python']}.")
    assert web1.run("ls", "/etc/postgresql").stdout.split() == [facts["postgresql"]]
    assert web1.run("restic", "version").stdout.startswith(f"restic {facts['restic']}.")
    assert web1.run("stat", "-f", "-c", "%T", "/sys/fs/cgroup").stdout.strip() == "cgroup2fs"


def test_timers_are_listed_with_their_next_run(web1):
    listed = web1.run("systemctl", "list-timers", "--all", "--no-pager", "--no-legend").stdout
    shipped = web1.run("systemctl", "list-unit-files", "--no-legend", "vhbackup-*.timer").stdout.split()
    # vhbackup-maintenance.timer is shipped disabled (the maintenance role runs on a trusted machine only)
    timers = set(TIMERS) | {name for name in shipped if name.endswith(".timer")} - {"vhbackup-maintenance.timer"}
    for timer in sorted(timers):
        line = next((l for l in listed.splitlines() if timer in l.split()), None)
        assert line is not None, f"{timer} is not in systemctl list-timers:\n{listed}"
        assert not line.startswith("n/a"), f"{timer} has no next run: {line}"
        props = web1.show(timer, "ActiveState", "UnitFileState", "NextElapseUSecRealtime")
        assert props["ActiveState"] == "active" and props["UnitFileState"] == "enabled", props
        assert props["NextElapseUSecRealtime"] not in ("", "0", "n/a"), props


def test_backup_unit_backs_up_files_and_database_and_restarts_the_service(web1, sink):
    before = web1.show(APP_UNIT, "InvocationID", "ActiveState")
    assert before["ActiveState"] == "active"
    result = start_unit(web1, "vhbackup-backup.service")
    status = web1.run("systemctl", "status", "--no-pager", "-l", "vhbackup-backup.service", check=False).stdout
    assert result.returncode == 0, f"systemctl start vhbackup-backup.service failed:\n{result.stderr}\n{status}"

    invocation = web1.show("vhbackup-backup.service", "InvocationID")["InvocationID"]
    entries = journal(web1, f"_SYSTEMD_INVOCATION_ID={invocation}")
    ours = [e for e in entries if e.get("VHBACKUP_RUN_ID")]
    assert ours, f"no journal entry of the run carries VHBACKUP_RUN_ID: {[e.get('MESSAGE') for e in entries]}"
    run_id = ours[0]["VHBACKUP_RUN_ID"]
    assert {e["VHBACKUP_RUN_ID"] for e in ours} == {run_id}
    assert all(e.get("SYSLOG_IDENTIFIER") == "vhbackup" for e in ours)
    assert {e.get("VHBACKUP_ACTION") for e in ours} == {"backup"}
    by_id: dict[str, list[dict]] = {}
    for e in ours:
        by_id.setdefault(e.get("MESSAGE_ID", ""), []).append(e)
    assert vlog.RUN_STARTED in by_id and vlog.RUN_FINISHED in by_id, sorted(by_id)
    assert vlog.RUN_FAILED not in by_id
    saved = by_id.get(vlog.SNAPSHOT_SAVED, [])
    assert all(e.get("VHBACKUP_SNAPSHOT_ID") for e in saved)
    assert any(e.get("VHBACKUP_DATABASE") == "shop" for e in saved), "no SNAPSHOT_SAVED entry for database shop"

    snaps = snapshots(web1, "--tag", f"run:{run_id}")
    files = [s for s in snaps if not any(t.startswith("db:") for t in s.get("tags", []))]
    dbs = [s for s in snaps if "db:shop" in s.get("tags", [])]
    assert len(files) == 1 and len(dbs) == 1, snaps
    assert set(files[0]["paths"]) == {"/etc/vhtest", "/srv/app", "/etc/vhbackup/policy.yml"}
    assert {"service:app", "service:system"} <= set(files[0]["tags"])
    assert {e["VHBACKUP_SNAPSHOT_ID"] for e in saved} <= {s["id"] for s in snaps} | {s["short_id"] for s in snaps}
    listing = restic(web1, "ls", files[0]["id"])
    for name in ("/srv/app/data/blob.bin", "/srv/app/data/nested/deeper/secret.key", "/etc/vhtest/app.conf"):
        assert name in listing.splitlines(), f"{name} missing from the files snapshot"
    db_files = [json.loads(l) for l in restic(web1, "ls", "--json", dbs[0]["id"]).splitlines()]
    dumps = [n for n in db_files if n.get("type") == "file"]
    assert dumps and all(n["size"] > 1000 for n in dumps), f"database snapshot holds no real dump: {db_files}"

    started = int(by_id[vlog.RUN_STARTED][0]["__REALTIME_TIMESTAMP"])
    finished = int(by_id[vlog.RUN_FINISHED][0]["__REALTIME_TIMESTAMP"])
    changes = [(int(e["__REALTIME_TIMESTAMP"]), e.get("JOB_TYPE"), e.get("JOB_RESULT"))
               for e in journal(web1, "_PID=1", f"UNIT={APP_UNIT}") if e.get("JOB_TYPE")]
    during = [(kind, res) for ts, kind, res in changes if started <= ts <= finished]
    assert ("stop", "done") in during, f"{APP_UNIT} was not stopped during the backup: {changes}"
    assert during.index(("stop", "done")) < len(during) - 1 and during[-1] == ("start", "done"), during
    after = web1.show(APP_UNIT, "InvocationID", "ActiveState", "SubState")
    assert after["ActiveState"] == "active" and after["SubState"] == "running", after
    assert after["InvocationID"] != before["InvocationID"]
    # the outside monitor was pinged at the start and the end, the end with the log's last lines
    pings = [r for r in sink.requests if r["path"].startswith(f"/hc/{CHECK}")]
    assert [r["path"] for r in pings][-2:] == [f"/hc/{CHECK}/start", f"/hc/{CHECK}"], pings
    assert f"backup run {run_id} finished: success" in pings[-1]["body"]
    assert not any(CHECK in e.get("MESSAGE", "") for e in entries), "the monitor's UUID reached the journal"


def notify_ran_after(box: Container, since: int) -> bool:
    props = box.show(NOTIFY_UNIT, "ActiveState", "ExecMainExitTimestampMonotonic")
    return props["ActiveState"] != "activating" and int(props["ExecMainExitTimestampMonotonic"] or 0) > since


def monotonic_usec(box: Container) -> int:
    return int(float(box.run("cat", "/proc/uptime").stdout.split()[0]) * 1e6)


def notify_unit_result(box: Container) -> tuple[dict, list[dict]]:
    props = box.show(NOTIFY_UNIT, "Result", "ExecMainStatus", "InvocationID")
    entries = journal(box, f"_SYSTEMD_INVOCATION_ID={props['InvocationID']}")
    assert props["Result"] == "success" and props["ExecMainStatus"] == "0", \
        f"{NOTIFY_UNIT} failed: {props} {[e.get('MESSAGE') for e in entries]}"
    return props, entries


def is_ping(request: dict) -> bool:
    return request["path"].startswith("/hc/")


def fail_pings(sink, start: int = 0) -> list[dict]:
    return [r for r in sink.requests[start:] if r["path"] == f"/hc/{CHECK}/fail"]


def wait_for_alerts(sink, predicate, start: int = 0, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in sink.requests[start:] if predicate(r["body"]) and not is_ping(r)]
        if found:
            return found
        time.sleep(0.2)
    return []


def test_broken_repository_fails_the_unit_and_alerts_exactly_once(web1, sink, backup_disk):
    since = monotonic_usec(web1)
    (backup_disk / "repo").rename(backup_disk / "repo.away")
    try:
        result = start_unit(web1, "vhbackup-backup.service")
        assert result.returncode != 0, "the backup unit succeeded without its repository"
        web1.wait_for(f"{NOTIFY_UNIT} to run", lambda: notify_ran_after(web1, since), timeout=60)
    finally:
        (backup_disk / "repo.away").rename(backup_disk / "repo")
    notify_unit_result(web1)
    invocation = web1.show("vhbackup-backup.service", "InvocationID")["InvocationID"]
    failed = [e for e in journal(web1, f"_SYSTEMD_INVOCATION_ID={invocation}")
              if e.get("MESSAGE_ID") == vlog.RUN_FAILED]
    assert failed, "the failed run logged no RUN_FAILED entry"
    run_id = failed[0]["VHBACKUP_RUN_ID"]
    alerts = wait_for_alerts(sink, lambda body: run_id in body)
    assert alerts, f"no alert about run {run_id} reached the webhook: {sink.requests}"
    time.sleep(1)
    assert len([r for r in sink.requests if run_id in r["body"] and not is_ping(r)]) == 1, \
        "the failure was alerted twice"
    # the run pinged fail itself; the OnFailure= handler saw that and did not ping again
    assert len([r for r in fail_pings(sink) if run_id in r["body"]]) == 1, fail_pings(sink)
    assert web1.show(APP_UNIT, "ActiveState")["ActiveState"] == "active"


def test_a_crash_before_vhbackup_can_report_is_alerted_by_the_notify_unit(web1, sink):
    since = monotonic_usec(web1)
    before = len(sink.requests)
    web1.run("systemctl", "start", "--no-block", "vhbackup-backup.service")
    web1.wait_for("the backup to run", lambda: web1.show("vhbackup-backup.service", "MainPID")["MainPID"] != "0",
                  timeout=30, interval=0.05)
    web1.run("systemctl", "kill", "--kill-who=main", "--signal=SIGKILL", "vhbackup-backup.service")
    try:
        web1.wait_for(f"{NOTIFY_UNIT} to run", lambda: notify_ran_after(web1, since), timeout=60)
        props = web1.show("vhbackup-backup.service", "Result")
        assert props["Result"] == "signal", props
        _, entries = notify_unit_result(web1)
        assert any(e.get("MESSAGE_ID") == vlog.ALERT_SENT for e in entries), \
            f"{NOTIFY_UNIT} logged no ALERT_SENT: {[e.get('MESSAGE') for e in entries]}"
        assert wait_for_alerts(sink, lambda body: "vhbackup-backup.service" in body and "KILL" in body, before), \
            f"the notify unit's alert (naming the unit and the kill) did not arrive: {sink.requests[before:]}"
        # the killed run could not ping its end: the OnFailure= handler pinged fail for it
        pinged = fail_pings(sink, before)
        assert len(pinged) == 1 and pinged[0]["body"].startswith("vhbackup-backup.service failed on web1"), \
            sink.requests[before:]
    finally:
        web1.run("systemctl", "start", APP_UNIT)
        web1.run("vhbackup", "unlock", check=False)


def restic_backing_up(argv: list[str]) -> bool:
    return bool(argv) and argv[0].endswith("restic") and "backup" in argv and "/srv/app" in argv


def test_stop_in_the_middle_of_a_backup_restarts_the_service_and_leaves_no_lock(web1, backup_disk):
    web1.sh("mkdir -p /srv/app/bulk; for i in 1 2 3 4 5 6 7 8; do head -c 100000000 /dev/urandom "
            "> /srv/app/bulk/part$i; done", timeout=300)
    try:
        web1.run("systemctl", "start", "--no-block", "vhbackup-backup.service")

        def files_backup_running_with_lock():
            running = any(restic_backing_up(argv) for argv in web1.processes())
            locked = any((backup_disk / "repo" / "locks").iterdir())
            stopped = web1.show(APP_UNIT, "ActiveState")["ActiveState"] != "active"
            return running and locked and stopped

        web1.wait_for("restic to back up the files while holding its lock", files_backup_running_with_lock,
                      timeout=120, interval=0.2)
        # restic 0.14 registers its lock for removal on SIGINT only ~200 ms after writing it: stop in
        # the middle of the upload, not in that window.
        time.sleep(2)
        assert any(restic_backing_up(argv) for argv in web1.processes()), \
            "the files backup finished within 2 s: make the bulk tree bigger"
        web1.run("systemctl", "stop", "vhbackup-backup.service", timeout=120)
        props = web1.show("vhbackup-backup.service", "ActiveState", "Result")
        assert props["ActiveState"] in ("inactive", "failed") and props["Result"] != "success", props
        assert not [a for a in web1.processes() if a and a[0].endswith("restic")], "restic still runs"
        app = web1.show(APP_UNIT, "ActiveState", "SubState")
        assert app["ActiveState"] == "active" and app["SubState"] == "running", \
            f"{APP_UNIT} was not started again after systemctl stop: {app}"
        locks = restic(web1, "list", "locks", "--no-lock").split()
        assert locks == [], "a stale restic lock is left: " + " ".join(
            restic(web1, "cat", "lock", lock, "--no-lock") for lock in locks) + web1.run(
            "journalctl", "--no-pager", "-u", "vhbackup-backup", "-n", "25").stdout
        assert not any((backup_disk / "repo" / "locks").iterdir())
    finally:
        web1.run("rm", "-rf", "/srv/app/bulk")


def test_disaster_recovery_runbook_restores_files_and_database_identically(web1, boot, apt_source, tmp_path,
                                                                           backup_disk):
    result = start_unit(web1, "vhbackup-backup.service")
    assert result.returncode == 0, result.stderr
    runs_before = len(json.loads(web1.run("vhbackup", "restore", "--list", "--json").stdout))
    expected_files, expected_db = files_fingerprint(web1), db_fingerprint(web1)
    policy = web1.path("/etc/vhbackup/policy.yml").read_bytes()
    sheet = web1.run("vhbackup", "recovery-sheet").stdout
    assert "repository:  " + REPO in sheet and "correct-horse" not in sheet
    # what is kept off-site: the password file and the recovery sheet (the policy is in the repository)
    offsite = {"recovery-sheet.txt": sheet.encode(), "restic-password": web1.path(PASSWORD_FILE).read_bytes()}

    new = boot("web1-new", binds=((str(backup_disk), "/srv/vhbackup"), (str(apt_source), "/srv/vhbackup-apt")))
    assert not new.path("/srv/app").exists() and new.run("dpkg", "-s", "vhbackup", check=False).returncode != 0
    new.put("/etc/apt/sources.list.d/vhbackup.list", "deb [trusted=yes] file:/srv/vhbackup-apt ./\n")
    for name, content in offsite.items():
        new.put(f"/root/recovery/{name}", content, mode=0o600)

    for number, block in enumerate(runbook_blocks(), 1):
        result = new.run("/bin/sh", "-ex", "-c", block, check=False, timeout=600)
        assert result.returncode == 0, \
            f"runbook block {number} failed ({result.returncode}):\n{block}\n{result.stdout}\n{result.stderr}"

    assert new.path("/etc/vhbackup/policy.yml").read_bytes() == policy
    assert files_fingerprint(new) == expected_files
    assert db_fingerprint(new) == expected_db
    runs = json.loads(new.run("vhbackup", "restore", "--list", "--json").stdout)
    assert len(runs) == runs_before + 1, f"the recovered server's backup run is not in the repository: {runs}"


def test_purge_removes_what_the_package_created_but_keeps_the_credentials(web1):
    assert web1.path("/var/lib/vhbackup").is_dir() and web1.path("/var/cache/vhbackup").is_dir()
    out = web1.run("apt-get", "purge", "-y", "vhbackup", timeout=300)
    assert "/etc/vhbackup/credentials" in out.stdout + out.stderr, "purge does not say where the password is kept"
    for gone in ("/var/lib/vhbackup", "/var/cache/vhbackup", "/etc/vhbackup/policy.yml",
                 "/usr/lib/systemd/system/vhbackup-backup.service", "/lib/systemd/system/vhbackup-backup.timer",
                 "/usr/bin/vhbackup"):
        assert not web1.path(gone).exists(), f"{gone} survived the purge"
    assert not list(web1.path("/var/lib/systemd/timers").glob("stamp-vhbackup-*"))
    assert web1.path(PASSWORD_FILE).read_text().startswith("correct-horse")
    assert web1.run("dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "vhbackup", check=False).stdout.strip() \
        in ("", "un")
    assert "vhbackup" not in web1.run("systemctl", "list-timers", "--all", "--no-pager").stdout
