"""A small host: 1 GiB and 2 GiB of memory, /tmp a tmpfs of half of it, as Debian 13 mounts it.

vhbackup 0.1.0 refused to back up there ("only 985.8 MiB free for the temp directory /tmp") and restic
would have written its temporary packs into that tmpfs, i.e. into memory. The hardened backup unit must
back up a 1.5 GiB tree and a PostgreSQL database within the memory limit, with restic's temporary files
in /var/cache/vhbackup/tmp (on disk, the unit's CacheDirectory=), and both must restore identically.
The container's memory cgroup (v1 on this host) enforces the limit; the test reads it from the host.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.system.container import Container, MiB, memory_hierarchy
from tests.system.test_system import SHOP_SQL, install_deb, make_shop_database

GiB = 1024 * MiB
PASSWORD_FILE = "/etc/vhbackup/credentials/restic-password"
TREE = "/srv/big"
TEMP = "/var/cache/vhbackup/tmp"

# 6 x 256 MiB of random data (incompressible, so restic really moves 1.5 GiB) and a few small files
MAKE_TREE = f"""
mkdir -p {TREE}/media {TREE}/conf/empty
for i in 1 2 3 4 5 6; do head -c {256 * MiB} /dev/urandom > {TREE}/media/part$i.bin; done
printf 'small\\n' > {TREE}/conf/app.conf
ln -s app.conf {TREE}/conf/link
du -sb {TREE} | cut -f1
"""

BIG_SQL = SHOP_SQL + """
CREATE TABLE events (id bigserial PRIMARY KEY, payload text NOT NULL);
INSERT INTO events (payload) SELECT repeat(md5(g::text), 8) FROM generate_series(1, 200000) g;
"""

FINGERPRINT = ("SELECT (SELECT count(*) FROM orders) || ' ' || (SELECT count(*) FROM events) || ' ' || "
               "(SELECT md5(string_agg(payload, ',' ORDER BY id)) FROM events)")


def memory_stats(box: Container) -> dict[str, int]:
    """Peak usage, limit and OOM kills of the container's memory cgroup, read on the host."""
    path = box.memory_cgroup()
    read = lambda name: open(f"{path}/{name}").read()  # noqa: E731
    if memory_hierarchy()[1] == "memory.limit_in_bytes":  # cgroup v1
        oom = re.search(r"^oom_kill (\d+)", read("memory.oom_control"), re.M)
        return {"limit": int(read("memory.limit_in_bytes")), "peak": int(read("memory.max_usage_in_bytes")),
                "oom_kills": int(oom.group(1)) if oom else 0}
    events = dict(line.split() for line in read("memory.events").splitlines())
    return {"limit": int(read("memory.max")), "peak": int(read("memory.peak")), "oom_kills": int(events["oom_kill"])}


@pytest.mark.parametrize("memory", [1 * GiB, 2 * GiB], ids=["1GiB", "2GiB"])
def test_small_host_backs_up_and_restores_1_5_gib_and_a_database(boot, deb, memory, release):
    box = boot(f"small{memory // GiB}g", memory=memory)
    tmp = box.sh("stat -f -c %T /tmp; df -B1 --output=size /tmp | tail -1").stdout.split()
    assert tmp == ["tmpfs", str(memory // 2)], f"/tmp is not a tmpfs of half the memory: {tmp}"
    install_deb(box, deb)
    box.put(PASSWORD_FILE, "correct-horse-battery-staple-0123456789-abcdef\n", mode=0o600)
    box.put("/etc/vhbackup/policy.yml", f"""\
repository:
  url: /srv/vhbackup/repo
  password_file: {PASSWORD_FILE}
paths:
  - {TREE}
databases:
  shop:
    type: postgresql
""")
    size = int(box.sh(MAKE_TREE, timeout=600).stdout.split()[-1])
    assert size >= 1.5 * GiB
    make_shop_database(box)
    box.run("psql", "-v", "ON_ERROR_STOP=1", "-q", "-d", "shop", input=BIG_SQL.replace(SHOP_SQL, ""))
    expected_db = box.run("psql", "-At", "-d", "shop", "-c", FINGERPRINT).stdout.strip()
    box.run("vhbackup", "init")

    box.run("systemctl", "start", "--no-block", "vhbackup-backup.service")
    environ = box.wait_for("restic to back up the tree", lambda: restic_environment(box), timeout=120, interval=0.2)
    assert environ.get("TMPDIR") == TEMP, f"restic's TMPDIR is {environ.get('TMPDIR')!r}, not {TEMP}"
    props = box.wait_for("the backup unit to finish", lambda: finished(box), timeout=1200, interval=1)
    journal = box.run("journalctl", "--no-pager", "-n", "30", "-u", "vhbackup-backup.service").stdout
    assert (props["Result"], props["ExecMainStatus"]) == ("success", "0"), f"{props}\n{journal}"
    record = json.loads(box.path("/var/lib/vhbackup/last-backup.json").read_text())
    assert record["status"] == "success", record
    assert record["details"]["free_space"]["temp"]["path"] == TEMP, record["details"]["free_space"]
    assert record["databases"] == ["shop"], record

    stats = memory_stats(box)
    # (the kernel's peak counter may pass the limit by a few pages; reclaim, not the OOM killer, held it)
    assert stats["limit"] == memory and stats["peak"] <= memory + MiB and stats["oom_kills"] == 0, stats

    box.run("vhbackup", "restore", "--latest", "--files-only", "--target", "/srv/restore", timeout=1200)
    box.run("diff", "-r", "--no-dereference", TREE, f"/srv/restore{TREE}", timeout=600)
    box.run("vhbackup", "restore", "--latest", "--database", "shop", "--into-database", "shop_check", "--yes",
            timeout=600)
    restored_db = box.run("psql", "-At", "-d", "shop_check", "-c", FINGERPRINT).stdout.strip()
    assert restored_db == expected_db
    stats = memory_stats(box)
    assert stats["peak"] <= memory + MiB and stats["oom_kills"] == 0, stats


def restic_environment(box: Container) -> dict[str, str] | None:
    """The environment of the restic process backing up the tree, read from the host's /proc."""
    for pid, argv in box.process_ids():
        if argv and argv[0].endswith("restic") and "backup" in argv and TREE in argv:
            try:
                raw = open(f"/proc/{pid}/environ", "rb").read()
            except OSError:
                continue
            return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if b"=" in item)
    return None


def finished(box: Container) -> dict[str, str] | None:
    props = box.show("vhbackup-backup.service", "ActiveState", "Result", "ExecMainStatus")
    return props if props["ActiveState"] in ("inactive", "failed") else None
