"""The spot check's pure parts: the sample's byte budget, restic's nanosecond mtimes."""

from __future__ import annotations


def test_the_spot_sample_passes_over_files_beyond_its_byte_budget():
    import random

    from vhbackup.spotcheck import pick
    sizes = {f"f{i}": 10 for i in range(100)} | {"huge": 10**12}
    chosen = pick(random.Random(1), sorted(sizes), sizes, 1000, budget=500)
    assert "huge" not in chosen and len(chosen) == 50
    assert len(pick(random.Random(1), sorted(sizes), sizes, 7)) == 7


def test_restic_mtimes_keep_their_nanoseconds():
    from vhbackup.spotcheck import mtime_ns
    assert mtime_ns("2026-11-30T05:49:21.123456789+01:00") == 1796014161 * 10**9 + 123456789
    assert mtime_ns("1970-01-01T00:00:01Z") == 10**9
    assert mtime_ns("1970-01-01T00:00:00.5Z") == 5 * 10**8
    assert mtime_ns("garbage") is None
