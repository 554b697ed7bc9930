"""A real backup run logging to journald: every entry's fields and MESSAGE_IDs, as journald receives them.

There is no journald on the test machine, so the run happens in a private
mount namespace (`unshare -m`) in which a tmpfs covers /run/systemd and a
datagram socket bound at /run/systemd/journal/socket plays journald: it
receives libsystemd's native protocol exactly as journald would. The CLI
runs with stderr in a file and JOURNAL_STREAM naming that file, as systemd
sets it for a unit whose output goes to the journal.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vhbackup import log as vlog

ROOT = Path(__file__).resolve().parent.parent.parent

FAKE_JOURNALD = r'''
import json, os, select, socket, struct, subprocess, sys
out, stderr_path, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run/systemd"], check=True)
os.makedirs("/run/systemd/journal")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("/run/systemd/journal/socket")
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

def parse(data):
    entry, pos = {}, 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        line = data[pos:end]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            pos = end + 1
        else:
            key = line
            (size,) = struct.unpack("<Q", data[end + 1:end + 9])
            value = data[end + 9:end + 9 + size]
            pos = end + 9 + size + 1
        entry[key.decode()] = value.decode("utf-8", "replace")
    return entry

entries = []
with open(stderr_path, "w") as err:
    st = os.fstat(err.fileno())
    env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
    while True:
        ready, _, _ = select.select([sock], [], [], 0.2)
        if ready:
            entries.append(parse(sock.recv(1 << 20)))
        elif proc.poll() is not None:
            break
with open(out, "w") as fh:
    json.dump({"returncode": proc.returncode, "entries": entries}, fh)
'''


def run_under_journal(env, tmp_path, *args: str) -> tuple[int, list[dict], str]:
    script = tmp_path / "fake_journald.py"
    script.write_text(FAKE_JOURNALD)
    out, stderr = tmp_path / "journal.json", tmp_path / "stderr"
    argv = ["unshare", "-m", sys.executable, str(script), str(out), str(stderr),
            sys.executable, "-m", "vhbackup", "-c", str(env.policy_file), *args]
    full_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
    result = subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    return data["returncode"], data["entries"], stderr.read_text()


def with_id(entries: list[dict], message_id: str) -> list[dict]:
    return [e for e in entries if e.get("MESSAGE_ID") == message_id]


def test_backup_run_logs_structured_entries_to_the_journal(env, sample_tree, tmp_path):
    env.write_policy(paths=[str(sample_tree / "etc")],
                     services={"hub": {"paths": [str(sample_tree / "srv/hub/data")]}})
    assert env.vh("init").returncode == 0

    returncode, entries, stderr = run_under_journal(env, tmp_path, "backup")
    assert returncode == 0, entries
    assert stderr == "", "under the journal nothing is written to stderr as plain text"
    assert entries, "nothing reached the journal socket"
    run_ids = {e.get("VHBACKUP_RUN_ID") for e in entries}
    assert len(run_ids) == 1 and re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", run_ids.pop())
    for entry in entries:
        assert entry["SYSLOG_IDENTIFIER"] == "vhbackup"
        assert entry["VHBACKUP_ACTION"] == "backup"
        assert entry["PRIORITY"] in ("3", "4", "5", "6", "7")
        assert entry["MESSAGE"]

    started, = with_id(entries, vlog.RUN_STARTED)
    saved, = with_id(entries, vlog.SNAPSHOT_SAVED)
    finished, = with_id(entries, vlog.RUN_FINISHED)
    assert entries.index(started) < entries.index(saved) < entries.index(finished)
    assert not with_id(entries, vlog.RUN_FAILED)
    assert saved["VHBACKUP_SERVICE"] == "system,hub"
    listed = json.loads(env.run_restic("snapshots", "--json").stdout)
    assert len(listed) == 1
    # restic 0.14 reports the new snapshot's short id, 0.18 the full one; the run's end names the full id
    assert len(saved["VHBACKUP_SNAPSHOT_ID"]) >= 8 and listed[0]["id"].startswith(saved["VHBACKUP_SNAPSHOT_ID"])
    assert finished["VHBACKUP_STATUS"] == "success"
    assert finished["VHBACKUP_SNAPSHOT_ID"] == listed[0]["id"]
    assert env.password_file.read_text().strip() not in json.dumps(entries)


def test_failed_run_logs_the_failure_with_its_error(env, sample_tree, tmp_path):
    env.write_policy(paths=[str(sample_tree / "etc")])  # repository never initialised

    returncode, entries, stderr = run_under_journal(env, tmp_path, "backup")
    assert returncode == 1
    assert stderr == ""
    failed, = with_id(entries, vlog.RUN_FAILED)
    assert failed["PRIORITY"] == "3"
    assert failed["VHBACKUP_ERROR"] and failed["VHBACKUP_ERROR"] in failed["MESSAGE"]
    assert failed["VHBACKUP_RUN_ID"] == with_id(entries, vlog.RUN_STARTED)[0]["VHBACKUP_RUN_ID"]
    assert not with_id(entries, vlog.RUN_FINISHED)
