"""Describe a directory tree exactly and compare two descriptions.

A description comes from a directory on disk (``describe``) or from a
snapshot's ``restic ls --json`` listing (``from_listing``). Used by restore
drills and snapshot verification (restored tree against the snapshot's
listing, see ``scratch``), by ``make demo`` and by the tests (restored tree
against the original).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from typing import Iterable

from vhbackup.restic import parse_time

# Go's os.FileMode bits for setuid, setgid and sticky, as restic's JSON listing gives them.
_GO_SETUID, _GO_SETGID, _GO_STICKY = 1 << 23, 1 << 22, 1 << 20


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


def _unix_mode(go_mode: int) -> int:
    mode = go_mode & 0o777
    if go_mode & _GO_SETUID:
        mode |= stat.S_ISUID
    if go_mode & _GO_SETGID:
        mode |= stat.S_ISGID
    if go_mode & _GO_STICKY:
        mode |= stat.S_ISVTX
    return mode


def _included(path: str, includes: Iterable[str]) -> bool:
    """``path`` is an included path, lies below one, or is a parent that restic recreates for one."""
    return any(path == inc or path.startswith(inc.rstrip("/") + "/") or inc.startswith(path.rstrip("/") + "/")
               for inc in includes)


def from_listing(nodes: Iterable[dict], includes: tuple[str, ...] = ()) -> dict[str, Entry]:
    """A snapshot's listing (``restic ls --json`` nodes) keyed like ``describe`` of its restore target.

    With ``includes`` (restic restore's ``--include`` paths), only what such a restore writes.
    """
    out: dict[str, Entry] = {}
    for node in nodes:
        path = node.get("path") or ""
        if includes and not _included(path, includes):
            continue
        kind = node.get("type")
        mtime = int(parse_time(node["mtime"]).timestamp()) if node.get("mtime") else 0
        mode = _unix_mode(int(node.get("mode") or 0))
        if kind == "file":
            entry = Entry("file", mode, int(node.get("size") or 0), mtime)
        elif kind == "dir":
            entry = Entry("dir", mode, 0, mtime)
        elif kind == "symlink":
            entry = Entry("symlink", 0, 0, mtime, target=node.get("linktarget"))
        else:
            entry = Entry("other", mode, 0, mtime)
        out[path.lstrip("/")] = entry
    return out


def loosen_ancestors(trees: Iterable[dict[str, Entry]], includes: tuple[str, ...]) -> None:
    """Make the parents of included paths plain directories: ``--include`` restores them without metadata."""
    for inc in includes:
        parent = os.path.dirname(inc.rstrip("/")).lstrip("/")
        while parent:
            for tree in trees:
                if parent in tree:
                    tree[parent] = Entry("dir", 0, 0, 0)
            parent = os.path.dirname(parent)
