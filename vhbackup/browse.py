"""What runs hold: list a run under a path, find files across runs, compare two runs.

Runs (``runs.Run``) are the unit: a run's files are its files snapshot, its
databases are its ``db:<name>`` snapshots, shown as database items. Paths
are literal everywhere (restic ``ls`` and ``dump`` take paths, not
patterns); ``find``'s PATTERN is the one pattern, a restic ``find`` glob on
the file name. Listings are compared here, from one ``restic find --json *``
over both runs' snapshots (type, mode, size, mtime, link target, identical
on restic 0.14 and 0.18; one repository open instead of two ``restic ls``),
and content changes come from ``restic diff --json`` (``M``), whose change
messages are also the same on both versions.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Sequence

from vhbackup.errors import NotFound, UsageError
from vhbackup.policy import SYSTEM_SERVICE, Policy
from vhbackup.restic import Restic, parse_time
from vhbackup.runs import Run
from vhbackup.treediff import unix_mode

_TYPE_BITS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "dev": stat.S_IFBLK,
              "chardev": stat.S_IFCHR, "fifo": stat.S_IFIFO, "socket": stat.S_IFSOCK}


@dataclass(frozen=True)
class Item:
    """One entry of a run: a file system node of its files snapshot, or one of its databases."""

    type: str  # file | dir | symlink | dev | chardev | fifo | socket | database
    path: str  # the absolute path; ``db:<name>`` for a database
    mode: int = 0  # permission bits with setuid/setgid/sticky, as on disk
    size: int | None = None
    mtime: datetime | None = None
    target: str | None = None  # a symlink's target

    @property
    def mode_text(self) -> str:
        if self.type == "database":
            return "-"
        return stat.filemode(_TYPE_BITS.get(self.type, 0) | self.mode)

    def as_json(self) -> dict:
        out = {"type": self.type, "path": self.path, "mode": None if self.type == "database" else self.mode,
               "mode_text": self.mode_text, "size": self.size,
               "mtime": self.mtime.isoformat() if self.mtime else None}
        if self.target is not None:
            out["target"] = self.target
        return out


def item(node: dict) -> Item:
    """An ``Item`` from a ``restic ls --json`` or ``restic find --json`` node."""
    kind = node.get("type") or "other"
    return Item(type=kind, path=node.get("path") or "", mode=unix_mode(int(node.get("mode") or 0)),
                size=int(node.get("size") or 0) if kind == "file" else None,
                mtime=parse_time(node["mtime"]) if node.get("mtime") else None,
                target=node.get("linktarget") if kind == "symlink" else None)


def normalize(path: str, what: str = "PATH") -> str:
    """A literal absolute path without a trailing slash; ``.``/``..`` components are refused, not resolved."""
    if "\0" in path:
        raise UsageError(f"{what} must not contain a NUL character")
    if not path.startswith("/"):
        raise UsageError(f"{what} must be an absolute path (starting with /): {path!r}")
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise UsageError(f"{what} must not contain '.' or '..' components: {path!r}")
    return "/" + "/".join(parts)


def below(path: str, root: str) -> bool:
    """``path`` is ``root`` or lies below it (path components, not string prefixes)."""
    return path == root or root == "/" or path.startswith(root.rstrip("/") + "/")


# --- ls ----------------------------------------------------------------------------------------


def _database_item(restic: Restic, run: Run, name: str) -> Item:
    snap = run.database(name)
    size = snap.summary.get("total_bytes_processed") if snap.summary else None
    if size is None:  # restic < 0.17 keeps no summary in the snapshot: the dump file's size
        nodes = [n for n in restic.ls(snap.id) if n.get("type") == "file"]
        size = sum(int(n.get("size") or 0) for n in nodes) if nodes else None
    return Item(type="database", path=f"db:{name}", size=size, mtime=snap.time)


def ls(restic: Restic, run: Run, path: str | None = None, recursive: bool = False) -> list[Item]:
    """What ``run`` holds under ``path``: the entry and its children (all below it with ``recursive``).

    Without ``path``: the paths its files snapshot saved (everything below
    them with ``recursive``), and its databases.
    """
    if path is None:
        out: list[Item] = []
        if run.files:
            roots = set(run.files.paths)
            nodes = (item(n) for n in restic.ls(run.files.id, sorted(roots), recursive=recursive))
            out += [n for n in nodes if n.path in roots or (recursive and any(below(n.path, r) for r in roots))]
        out += [_database_item(restic, run, name) for name in run.databases]
        return out
    if path.startswith("db:"):
        name = path[3:]
        if name not in run.databases:
            raise NotFound(f"run {run.id} holds no database {name!r}; it has: {', '.join(run.databases) or 'none'}")
        return [_database_item(restic, run, name)]
    if run.files is None:
        raise NotFound(f"run {run.id} holds no files, only databases: {', '.join(run.databases)}")
    depth = path.rstrip("/").count("/") if path != "/" else 0
    nodes = [item(n) for n in restic.ls(run.files.id, [path], recursive=recursive)]
    nodes = [n for n in nodes if below(n.path, path) and (recursive or n.path.count("/") <= depth + 1)]
    if not any(n.path == path for n in nodes) and path != "/":
        raise NotFound(f"run {run.id} does not hold {path}")
    return nodes


def lookup(restic: Restic, run: Run, path: str) -> Item | None:
    """The entry at exactly ``path`` in ``run``'s files, or None."""
    if run.files is None:
        return None
    return next((item(n) for n in restic.ls(run.files.id, [path]) if n.get("path") == path), None)


def lookup_many(restic: Restic, run: Run, paths: Sequence[str]) -> dict[str, Item]:
    """The entries at exactly ``paths`` in ``run``'s files (one restic call); absent paths are left out."""
    if run.files is None or not paths:
        return {}
    wanted = set(paths)
    return {i.path: i for i in (item(n) for n in restic.ls(run.files.id, sorted(wanted))) if i.path in wanted}


# --- find --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    run: Run
    items: tuple[Item, ...]


def service_roots(policy: Policy, service: str) -> tuple[str, ...]:
    if service == SYSTEM_SERVICE:
        return policy.paths
    try:
        return policy.service(service).paths
    except KeyError:
        raise UsageError(f"unknown service {service!r}; the policy defines: "
                         f"{', '.join(s.name for s in policy.file_sets()) or 'none'}") from None


def find(restic: Restic, runs: Sequence[Run], pattern: str, roots: Sequence[str] = (),
         by_id: bool = True) -> list[Found]:
    """The runs (newest first, as given) whose files hold entries matching ``pattern``, below ``roots`` if any.

    ``by_id``: restic searches exactly those runs' files snapshots (``--snapshot ID``); otherwise every
    snapshot tagged vhbackup (the whole history) and the hits outside ``runs`` are dropped.
    """
    if not pattern or "\0" in pattern:
        raise UsageError("PATTERN must be a non-empty glob without NUL characters")
    by_snapshot = {run.files.id: run for run in runs if run.files is not None}
    if not by_snapshot:
        return []
    hits: dict[str, list[Item]] = {}
    for entry in restic.find(pattern, snapshot_ids=list(by_snapshot) if by_id else ()):
        snap = entry.get("snapshot") or ""
        if snap in by_snapshot:
            items = [item(m) for m in entry.get("matches") or []]
            hits.setdefault(snap, []).extend(i for i in items if not roots or any(below(i.path, r) for r in roots))
    return [Found(run, tuple(sorted(hits[run.files.id], key=lambda i: i.path)))
            for run in runs if run.files is not None and hits.get(run.files.id)]


# --- diff --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    kind: str  # added | removed | changed
    path: str
    what: tuple[str, ...] = ()  # for changed: type, mode, size, mtime, content, target
    before: Item | None = None
    after: Item | None = None

    def as_json(self) -> dict:
        return {"change": self.kind, "path": self.path, "what": list(self.what),
                "before": self.before.as_json() if self.before else None,
                "after": self.after.as_json() if self.after else None}


def _listings(restic: Restic, first: Run, second: Run, roots: Sequence[str]) -> tuple[dict[str, Item], dict[str, Item]]:
    """Both runs' files listings from one ``restic find *`` over the two snapshots (one repository open, not two
    ``restic ls``: each restic process pays the key derivation and the index loading)."""
    ids = [run.files.id for run in (first, second) if run.files is not None]
    by_snapshot: dict[str, dict[str, Item]] = {sid: {} for sid in ids}
    if ids:
        for entry in restic.find("*", snapshot_ids=list(dict.fromkeys(ids))):
            snap = entry.get("snapshot") or ""
            for node in entry.get("matches") or []:
                i = item(node)
                if snap in by_snapshot and (not roots or any(below(i.path, r) for r in roots)):
                    by_snapshot[snap][i.path] = i
    return tuple(by_snapshot.get(run.files.id, {}) if run.files is not None else {} for run in (first, second))


def _fields(a: Item, b: Item) -> list[str]:
    if a.type != b.type:
        return ["type"]
    what = [name for name in ("mode", "size", "target") if getattr(a, name) != getattr(b, name)]
    # A directory's mtime follows from what was added or removed inside it: not a change of its own.
    if a.type != "dir" and a.mtime != b.mtime:
        what.append("mtime")
    return what


def diff(restic: Restic, first: Run, second: Run, roots: Sequence[str] = (),
         databases: Iterable[str] | None = None) -> list[Change]:
    """What changed from ``first`` to ``second``: entries added, removed, changed (and in what)."""
    changes: list[Change] = []
    old, new = _listings(restic, first, second, roots)
    content: set[str] = set()
    if first.files is not None and second.files is not None and first.files.id != second.files.id:
        content = {c["path"] for c in restic.diff(first.files.id, second.files.id) if c.get("modifier") == "M"}
    for path in sorted(old.keys() | new.keys()):
        a, b = old.get(path), new.get(path)
        if a is None:
            changes.append(Change("added", path, after=b))
        elif b is None:
            changes.append(Change("removed", path, before=a))
        else:
            what = _fields(a, b)
            if path in content and a.type == b.type == "file":
                what.insert(0, "content")
            if what:
                changes.append(Change("changed", path, tuple(what), a, b))
    wanted = set(first.databases) | set(second.databases)
    if databases is not None:
        wanted &= set(databases)
    for name in sorted(wanted):
        a_snap, b_snap = first.database(name), second.database(name)
        key = f"db:{name}"
        if a_snap is None:
            changes.append(Change("added", key, after=_database_item(restic, second, name)))
        elif b_snap is None:
            changes.append(Change("removed", key, before=_database_item(restic, first, name)))
        elif a_snap.id != b_snap.id:
            modified = any(c.get("modifier") == "M" for c in restic.diff(a_snap.id, b_snap.id))
            if modified:
                changes.append(Change("changed", key, ("content",), _database_item(restic, first, name),
                                      _database_item(restic, second, name)))
    return changes


def human_time(when: datetime | None) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when else "-"


def human_size(size: int | None) -> str:
    return "-" if size is None else str(size)


def line(i: Item) -> str:
    """One human line: type, mode, size, mtime, path (printed as it is, never quoted)."""
    text = f"{i.type:<8} {i.mode_text:<10} {human_size(i.size):>12}  {human_time(i.mtime)}  {i.path}"
    return text + (f" -> {i.target}" if i.target is not None else "")
