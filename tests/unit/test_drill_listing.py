"""Reading restic's JSON listing into treediff entries, and the drill's scratch database names."""

from __future__ import annotations

import os
import stat

from vhbackup import treediff
from vhbackup.commands.drill import scratch_db_name

# As restic ls --json prints them (Go's os.FileMode: type and setuid/sticky bits up high).
NODES = [
    {"name": "tmp", "type": "dir", "path": "/tmp", "mode": 2148532735, "mtime": "2026-11-28T00:30:57.420492868Z"},
    {"name": "d", "type": "dir", "path": "/tmp/d", "mode": 2147484141, "mtime": "2026-11-28T00:30:54.392029644Z"},
    {"name": "f", "type": "file", "path": "/tmp/d/f", "size": 3, "mode": 8389101,
     "mtime": "2026-11-28T00:30:54.386454008Z"},
    {"name": "l", "type": "symlink", "path": "/tmp/d/l", "mode": 134218239, "mtime": "2026-11-28T00:30:54.9Z"},
    {"name": "fifo", "type": "fifo", "path": "/tmp/fifo", "mode": 33554852, "mtime": "2026-11-28T00:30:54+01:00"},
    {"name": "other", "type": "dir", "path": "/srv/other", "mode": 2147484141, "mtime": "2026-11-28T00:30:54Z"},
]


def test_listing_becomes_treediff_entries():
    tree = treediff.from_listing(NODES)
    assert tree["tmp"] == treediff.Entry("dir", 0o1777, 0, 1795825857)
    assert tree["tmp/d/f"] == treediff.Entry("file", 0o4755, 3, 1795825854)
    assert tree["tmp/d/l"].kind == "symlink" and tree["tmp/d/l"].mode == 0
    assert tree["tmp/fifo"] == treediff.Entry("other", 0o644, 0, 1795825854 - 3600)


def test_listing_matches_a_real_tree_and_catches_changes(tmp_path):
    root = tmp_path / "srv"
    (root / "d").mkdir(parents=True)
    (root / "d/f").write_text("abc")
    os.chmod(root / "d/f", 0o4755)
    os.utime(root / "d/f", (1795825854, 1795825854))
    os.utime(root / "d", (1795825850, 1795825850))
    nodes = [{"type": "dir", "path": "/d", "mode": 2147484141, "mtime": "2026-11-28T00:30:50Z"},
             {"type": "file", "path": "/d/f", "size": 3, "mode": 8389101, "mtime": "2026-11-28T00:30:54.5Z"}]
    assert stat.S_IMODE((root / "d").stat().st_mode) == 0o755
    assert treediff.differences(treediff.from_listing(nodes), treediff.describe(root, content=False)) == []
    (root / "d/f").write_text("abcd")
    os.utime(root / "d/f", (1795825854, 1795825854))
    os.utime(root / "d", (1795825850, 1795825850))
    assert treediff.differences(treediff.from_listing(nodes), treediff.describe(root, content=False)) == \
        ["size differs for 'd/f': expected 3, got 4"]


def test_includes_keep_the_included_paths_and_their_parents():
    tree = treediff.from_listing(NODES, includes=("/tmp/d",))
    assert sorted(tree) == ["tmp", "tmp/d", "tmp/d/f", "tmp/d/l"]


def test_scratch_database_names():
    assert scratch_db_name("shop", "20261128-020000-a1b2") == "shop_vhdrill_a1b2"
    assert scratch_db_name("my-app", "20261128-020000-a1b2") == "my_app_vhdrill_a1b2"
    long = scratch_db_name("x" * 63, "20261128-020000-a1b2")
    assert len(long) == 63 and long.endswith("_vhdrill_a1b2")
