"""The spot check (``verify --spot``): each service's live files against its latest backup.

For every file set (the top-level paths as ``system``, each service's
``paths:``) the newest files snapshot that holds it (the run named good in
``items.json`` when it is still in the repository, else the newest run with
that service) is listed (``restic ls --json``) and compared with the live
tree (``os.walk`` with ``lstat``, never following links, honouring
``exclude:`` as restic does, ``files.excluded_by``):

- the number of regular files and their total size: a difference beyond
  ``verify.spot_tolerance`` (files 5%, size 10% of the backed-up values by
  default) is a WARNING: wrong excludes, a vanished mount, mass deletion;
- how many backed-up files changed (size or mtime) or vanished: more than
  ``verify.spot_tolerance.changed`` (default 50%) is a WARNING: mass change;
- content: of the files whose size and mtime (to the nanosecond) are the
  same as in the backup, ``verify.spot_sample`` (default 50) chosen at
  random (at most ``SAMPLE_BYTES``, 1 GiB, in all) are restored from the snapshot into a scratch directory (one
  ``restic restore`` for all of them) and compared byte for byte with the
  live file (SHA-256). Same size and mtime but other bytes means the file
  was changed behind the file system's back: tampering, encryption by
  ransomware that restores mtimes, or silent corruption. That is CRITICAL.

Container volumes (``volumes:``) are resolved at backup time and are not
spot checked; their files are in the count of no service.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Iterable

from vhbackup import runs, scratch, state
from vhbackup.files import excluded_by
from vhbackup.quantities import format_size
from vhbackup.treediff import name_key

if TYPE_CHECKING:
    from vhbackup.context import Context
    from vhbackup.policy import Service

log = logging.getLogger("vhbackup")

OK, WARNING, CRITICAL = "OK", "WARNING", "CRITICAL"
#: The most the content sample restores per service: larger files are passed over, so that a tree of
#: disk images does not turn a spot check into a full restore.
SAMPLE_BYTES = 1 << 30
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


@dataclass
class ServiceSpot:
    service: str
    snapshot: str = ""
    run: str = ""
    backed_files: int = 0
    backed_bytes: int = 0
    live_files: int = 0
    live_bytes: int = 0
    changed: int = 0
    sampled: int = 0
    mismatched: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    critical: list[str] = field(default_factory=list)

    @property
    def level(self) -> str:
        return CRITICAL if self.critical else WARNING if self.warnings else OK

    def as_json(self) -> dict:
        return {"service": self.service, "snapshot": self.snapshot[:8], "run": self.run, "level": self.level,
                "backed_files": self.backed_files, "backed_bytes": self.backed_bytes,
                "live_files": self.live_files, "live_bytes": self.live_bytes, "changed": self.changed,
                "sampled": self.sampled, "mismatched": self.mismatched[:20],
                "problems": self.critical + self.warnings}


def mtime_ns(text: str) -> int | None:
    """restic's RFC 3339 mtime (nanoseconds) as integer nanoseconds since the epoch."""
    match = _TIME.match(text or "")
    if not match:
        return None
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    seconds = int(datetime.fromisoformat(match.group(1) + zone).timestamp())
    frac = (match.group(2) or "0")[:9].ljust(9, "0")
    return seconds * 1_000_000_000 + int(frac)


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def backed_up(nodes: Iterable[dict], roots: tuple[str, ...]) -> dict[str, tuple[int, int | None, str]]:
    """The regular files of a listing under ``roots``: name_key(path) -> (size, mtime ns, restic's path)."""
    out = {}
    for node in nodes:
        path = node.get("path") or ""
        if node.get("type") == "file" and _under(path, roots):
            out[name_key(path)] = (int(node.get("size") or 0), mtime_ns(node.get("mtime") or ""), path)
    return out


def live(roots: tuple[str, ...], excludes: tuple[str, ...]) -> dict[str, tuple[int, int, bytes]]:
    """The regular files under ``roots`` as restic would save them: name_key(path) -> (size, mtime ns, path)."""
    out: dict[str, tuple[int, int, bytes]] = {}
    for root in roots:
        if not os.path.isdir(root) or os.path.islink(root):
            if os.path.isfile(root) and not os.path.islink(root) and excluded_by(root, excludes) is None:
                st = os.lstat(root)
                out[name_key(root)] = (st.st_size, st.st_mtime_ns, os.fsencode(root))
            continue
        if excluded_by(root, excludes) is not None:
            continue
        for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
            text_dir = os.fsdecode(dirpath)
            dirnames[:] = [d for d in dirnames
                           if excluded_by(os.path.join(text_dir, os.fsdecode(d)), excludes) is None]
            for name in filenames:
                full = os.path.join(dirpath, name)
                if excluded_by(os.fsdecode(full), excludes) is not None:
                    continue
                try:
                    st = os.lstat(full)
                except OSError:
                    continue  # gone while we looked
                if stat.S_ISREG(st.st_mode):
                    out[name_key(full)] = (st.st_size, st.st_mtime_ns, full)
    return out


def _percent(live_value: int, backed: int) -> float:
    return 100.0 * abs(live_value - backed) / max(backed, 1)


def _sha256(path: str | bytes) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def compare(ctx: Context, fs: Service, snapshot_id: str, run_id: str, nodes: list[dict],
            rng: random.Random) -> ServiceSpot:
    settings = ctx.policy.verify
    result = ServiceSpot(fs.name, snapshot_id, run_id)
    saved = backed_up(nodes, fs.paths)
    now = live(fs.paths, ctx.policy.exclude)
    result.backed_files, result.backed_bytes = len(saved), sum(s for s, _, _ in saved.values())
    result.live_files, result.live_bytes = len(now), sum(s for s, _, _ in now.values())
    files_delta = _percent(result.live_files, result.backed_files)
    size_delta = _percent(result.live_bytes, result.backed_bytes)
    if files_delta > settings.spot_files_tolerance:
        result.warnings.append(f"{result.live_files} files now, {result.backed_files} in the backup "
                               f"({files_delta:.1f}% apart, more than the tolerance of "
                               f"{settings.spot_files_tolerance:g}%)")
    if size_delta > settings.spot_size_tolerance:
        result.warnings.append(f"{format_size(result.live_bytes)} now, {format_size(result.backed_bytes)} in the "
                               f"backup ({size_delta:.1f}% apart, more than the tolerance of "
                               f"{settings.spot_size_tolerance:g}%)")
    unchanged = sorted(key for key, (size, mtime, _) in saved.items()
                       if key in now and now[key][0] == size and now[key][1] == mtime)
    result.changed = len(saved) - len(unchanged)
    # a name that is not UTF-8 reaches restic's listing with U+FFFD in it: no --include can name it
    unchanged = [key for key in unchanged if "\ufffd" not in key]
    changed_pct = 100.0 * result.changed / max(len(saved), 1)
    if saved and changed_pct > settings.spot_changed_tolerance:
        result.warnings.append(f"{result.changed} of {len(saved)} backed-up files changed or vanished since the "
                               f"backup ({changed_pct:.0f}%, more than the tolerance of "
                               f"{settings.spot_changed_tolerance:g}%)")
    sample = pick(rng, unchanged, {k: saved[k][0] for k in unchanged}, settings.spot_sample)
    if sample:
        result.sampled = len(sample)
        result.mismatched = _content_mismatches(ctx, snapshot_id, [(saved[k][2], now[k][2]) for k in sample])
        if result.mismatched:
            shown = ", ".join(repr(p) for p in result.mismatched[:5])
            more = f" and {len(result.mismatched) - 5} more" if len(result.mismatched) > 5 else ""
            result.critical.append(f"{len(result.mismatched)} of {len(sample)} sampled files have the size and "
                                   f"mtime of the backup but other content (tampered with or encrypted?): "
                                   f"{shown}{more}")
    return result


def pick(rng: random.Random, keys: list[str], sizes: dict[str, int], count: int,
         budget: int = SAMPLE_BYTES) -> list[str]:
    """Up to ``count`` keys at random whose sizes add up to at most ``budget`` (larger files passed over)."""
    order = list(keys)
    rng.shuffle(order)
    chosen, total = [], 0
    for key in order:
        if len(chosen) >= count:
            break
        if total + sizes[key] <= budget:
            chosen.append(key)
            total += sizes[key]
    return chosen


def _content_mismatches(ctx: Context, snapshot_id: str, pairs: list[tuple[str, bytes]]) -> list[str]:
    """Restore the sampled files (one restic call) into scratch; the paths whose live bytes differ."""
    target = scratch.directory(ctx.policy, "spot", ctx.run_id)
    try:
        os.makedirs(target, mode=0o700)
        ctx.restic.restore(snapshot_id, target, tuple(p for p, _ in pairs))
        out = []
        for restic_path, live_path in pairs:
            restored = os.path.join(target, restic_path.lstrip("/"))
            want = _sha256(restored)
            got = _sha256(live_path)
            if got is None:
                continue  # vanished or unreadable since the walk: not a content finding
            if want is None:
                log.warning("spot check: restic did not restore %r from snapshot %s; its content is not "
                            "compared", restic_path, snapshot_id[:8])
                continue
            if want != got:
                out.append(restic_path)
        return sorted(out)
    finally:
        if (error := scratch.remove(target)) is not None:
            log.warning("%s", error)


def check(ctx: Context, seed: int | None = None) -> list[ServiceSpot]:
    """The spot check of every file set; one ServiceSpot each (services never backed up are a WARNING)."""
    policy = ctx.policy
    rng = random.Random(seed)
    all_runs = runs.group(ctx.restic.snapshots())
    items = state.read_lenient(state.items_path(policy.state_dir))
    listings: dict[str, list[dict]] = {}
    out = []
    for fs in policy.file_sets():
        snap, run = None, None
        good = ((items.get(fs.item) or {}).get("good") or {}) if isinstance(items.get(fs.item), dict) else {}
        for candidate in all_runs:
            files = candidate.files
            if files is None or fs.name not in candidate.services:
                continue
            if not good.get("snapshot_id") or files.id.startswith(str(good["snapshot_id"])):
                snap, run = files, candidate
                break
        if snap is None:  # the recorded good one is gone (pruned, another state_dir): the newest that holds it
            run = next((r for r in all_runs if r.files is not None and fs.name in r.services), None)
            snap = run.files if run else None
        if snap is None:
            spot = ServiceSpot(fs.name)
            spot.warnings.append("no backup holds this service yet; nothing to compare")
            out.append(spot)
            continue
        if snap.id not in listings:
            listings[snap.id] = list(ctx.restic.ls(snap.id))
        out.append(compare(ctx, fs, snap.id, run.id, listings[snap.id], rng))
    return out


def summary_lines(spots: list[ServiceSpot]) -> list[str]:
    lines = []
    for s in spots:
        head = (f"{s.service}: {s.level}: {s.live_files} files / {format_size(s.live_bytes)} live, "
                f"{s.backed_files} files / {format_size(s.backed_bytes)} in run {s.run or '-'}; "
                f"{s.changed} changed since; {len(s.mismatched)} of {s.sampled} sampled files differ")
        lines.append(head)
        lines += [f"  {p}" for p in s.critical + s.warnings]
    return lines
