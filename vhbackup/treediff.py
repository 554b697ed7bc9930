"""Describe a directory tree exactly and compare two descriptions.

A description comes from a directory on disk (``describe``) or from a
snapshot's ``restic ls --json`` listing (``from_listing``). Used by restore
drills and snapshot verification (restored tree against the snapshot's
listing, see ``scratch``), by ``make demo`` and by the tests (restored tree
against the original).

Names are file names, not text: a name that is not valid UTF-8 reaches
restic's JSON listing with each invalid byte replaced by U+FFFD (Go's
rule), so both sides are keyed by ``name_key``, which applies the same
rule to the bytes on disk. Names that become equal under that rule are
compared as a group.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import stat
from dataclasses import dataclass
from typing import Iterable, Union

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


def _one_byte_replaced(exc: UnicodeDecodeError) -> tuple[str, int]:
    """Go's rule for invalid UTF-8: one U+FFFD per invalid byte (Python's 'replace' merges some)."""
    return "\ufffd", exc.start + 1


codecs.register_error("vhbackup-go", _one_byte_replaced)


def name_key(name: str | bytes) -> str:
    """A file name as restic's JSON shows it: invalid UTF-8 bytes become U+FFFD one by one."""
    raw = name if isinstance(name, bytes) else os.fsencode(name)
    return raw.decode("utf-8", "vhbackup-go")


Tree = dict[str, Union["Entry", tuple["Entry", ...]]]


def _add(tree: dict, key: str, entry: "Entry") -> None:
    """Names that collide under ``name_key`` are kept as a sorted group instead of overwriting each other."""
    if key not in tree:
        tree[key] = entry
        return
    old = tree[key]
    group = (old if isinstance(old, tuple) else (old,)) + (entry,)
    tree[key] = tuple(sorted(group, key=repr))


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(root: str, content: bool = True) -> Tree:
    """Every entry under ``root`` keyed by ``name_key`` of its path relative to ``root``."""
    out: Tree = {}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = name_key(os.path.relpath(full, os.fsencode(root)))
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                entry = Entry("symlink", 0, 0, int(st.st_mtime), target=name_key(os.readlink(full)))
            elif stat.S_ISDIR(st.st_mode):
                entry = Entry("dir", stat.S_IMODE(st.st_mode), 0, int(st.st_mtime))
            elif stat.S_ISREG(st.st_mode):
                entry = Entry("file", stat.S_IMODE(st.st_mode), st.st_size, int(st.st_mtime),
                              sha256=_sha256(full) if content else None)
            else:
                entry = Entry("other", stat.S_IMODE(st.st_mode), 0, int(st.st_mtime))
            _add(out, rel, entry)
    return out


def _same(want: Entry, got: Entry) -> list[str]:
    """The fields in which two entries differ (a field one side does not know is not compared)."""
    names = ("kind", "mode", "size", "mtime", "target", "sha256")
    return [n for n in names if getattr(want, n) is not None and getattr(got, n) is not None
            and getattr(want, n) != getattr(got, n)]


def differences(expected: Tree, actual: Tree) -> list[str]:
    """Human-readable differences, empty when the trees match."""
    out = []
    for rel in sorted(expected.keys() - actual.keys()):
        out.append(f"missing: {rel!r}")
    for rel in sorted(actual.keys() - expected.keys()):
        out.append(f"unexpected: {rel!r}")
    for rel in sorted(expected.keys() & actual.keys()):
        want, got = expected[rel], actual[rel]
        if isinstance(want, tuple) or isinstance(got, tuple):
            wants = want if isinstance(want, tuple) else (want,)
            gots = got if isinstance(got, tuple) else (got,)
            if len(wants) != len(gots) or any(_same(w, g) for w, g in zip(wants, gots)):
                out.append(f"{len(wants)} entries named {rel!r} expected, {len(gots)} differing ones found")
            continue
        for name in _same(want, got):
            out.append(f"{name} differs for {rel!r}: expected {getattr(want, name)!r}, got {getattr(got, name)!r}")
    return out


def unix_mode(go_mode: int) -> int:
    """Permission bits with setuid/setgid/sticky from Go's os.FileMode as restic's JSON gives it."""
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


def from_listing(nodes: Iterable[dict], includes: tuple[str, ...] = ()) -> Tree:
    """A snapshot's listing (``restic ls --json`` nodes) keyed like ``describe`` of its restore target.

    With ``includes`` (restic restore's ``--include`` paths), only what such a restore writes.
    """
    out: Tree = {}
    for node in nodes:
        path = node.get("path") or ""
        if includes and not _included(path, includes):
            continue
        kind = node.get("type")
        mtime = int(parse_time(node["mtime"]).timestamp()) if node.get("mtime") else 0
        mode = unix_mode(int(node.get("mode") or 0))
        if kind == "file":
            entry = Entry("file", mode, int(node.get("size") or 0), mtime)
        elif kind == "dir":
            entry = Entry("dir", mode, 0, mtime)
        elif kind == "symlink":
            entry = Entry("symlink", 0, 0, mtime, target=node.get("linktarget"))
        else:
            entry = Entry("other", mode, 0, mtime)
        _add(out, path.lstrip("/"), entry)
    return out


def loosen_ancestors(trees: Iterable[Tree], includes: tuple[str, ...]) -> None:
    """Make the parents of included paths plain directories: ``--include`` restores them without metadata."""
    for inc in includes:
        parent = name_key(os.path.dirname(inc.rstrip("/")).lstrip("/"))
        while parent:
            for tree in trees:
                if parent in tree:
                    tree[parent] = Entry("dir", 0, 0, 0)
            parent = os.path.dirname(parent)
