"""Durations, sizes and percentages as people write them in the policy."""

from __future__ import annotations

import pytest

from vhbackup.quantities import format_duration, format_size, parse_duration, parse_percent, parse_size


@pytest.mark.parametrize("text, seconds", [
    ("90", 90), ("1.5", 1.5), ("30s", 30), ("30m", 1800), ("24h", 86400), ("7d", 7 * 86400),
    ("2 weeks", 14 * 86400), ("1h30m", 5400), ("1 hour 30 minutes", 5400), ("1y", 365 * 86400), ("2D", 172800),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5 fortnights", "-5m", "0s", "h", "5m garbage", "1e3"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text, size", [
    ("1024", 1024), ("1GiB", 1 << 30), ("500MB", 500_000_000), ("1.5 KiB", 1536), ("2g", 2_000_000_000),
    ("10b", 10), ("3 TiB", 3 << 40),
])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "5 XB", "-1GB", "1 GB extra"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


@pytest.mark.parametrize("text, value", [("5%", 5.0), ("5", 5.0), ("0.5 %", 0.5), ("100%", 100.0)])
def test_parse_percent(text, value):
    assert parse_percent(text) == value


@pytest.mark.parametrize("text", ["0", "0%", "101%", "-5%", "five", ""])
def test_parse_percent_rejects(text):
    with pytest.raises(ValueError):
        parse_percent(text)


@pytest.mark.parametrize("n, text", [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
                                     (5 * 1024**3, "5.0 GiB"), (3 * 1024**5, "3072.0 TiB")])
def test_format_size(n, text):
    assert format_size(n) == text


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (59.4, "59 s"), (61, "1 min 1 s"), (600, "10 min"),
                                           (3600, "1 h"), (5400, "1 h 30 min"), (3 * 86400, "3 d")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
