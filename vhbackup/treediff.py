"""Describe a directory tree exactly and compare two descriptions.

Used by restore drills and snapshot verification (restored tree against the
snapshot's listing), by ``make demo`` and by the tests (restored tree
against the original).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    kind: str  # file | dir | symlink | other
    mode: int
    size: int
    mtime: int  # whole seconds; restic keeps nanoseconds, file systems differ
    target: str | None = None
    sha256: str | None = None


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(root: str, content: bool = True) -> dict[str, Entry]:
    """Every entry under ``root`` keyed by its path relative to ``root``."""
    out: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = Entry("symlink", 0, 0, int(st.st_mtime), target=os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = Entry("dir", stat.S_IMODE(st.st_mode), 0, int(st.st_mtime))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = Entry("file", stat.S_IMODE(st.st_mode), st.st_size, int(st.st_mtime),
                                 sha256=_sha256(full) if content else None)
            else:
                out[rel] = Entry("other", stat.S_IMODE(st.st_mode), 0, int(st.st_mtime))
    return out


def differences(expected: dict[str, Entry], actual: dict[str, Entry]) -> list[str]:
    """Human-readable differences, empty when the trees match."""
    out = []
    for rel in sorted(expected.keys() - actual.keys()):
        out.append(f"missing: {rel!r}")
    for rel in sorted(actual.keys() - expected.keys()):
        out.append(f"unexpected: {rel!r}")
    for rel in sorted(expected.keys() & actual.keys()):
        want, got = expected[rel], actual[rel]
        for name in ("kind", "mode", "size", "mtime", "target", "sha256"):
            a, b = getattr(want, name), getattr(got, name)
            if a is not None and b is not None and a != b:
                out.append(f"{name} differs for {rel!r}: expected {a!r}, got {b!r}")
    return out
