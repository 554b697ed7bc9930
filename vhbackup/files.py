"""The files of a run: one restic snapshot of every selected path, and what each file set got.

A path from the policy is a file name, never a pattern. One that does not
exist, is a symbolic link (restic would save the link, not what it points
to) or is matched by an ``exclude`` pattern makes its file set *partial*
(exit 3, status WARNING, the path named), unless the policy marks it
``optional``; a file set none of whose paths could be saved *failed*. A
snapshot that holds no file at all is partial too: "success, 0 B" is not
a backup.

Every files snapshot also holds the policy file that was loaded (the
*recovery bundle*: a new server gets it back with ``restic dump``, see
``vhbackup recovery-sheet``), never a credential file. It belongs to no file
set: it does not count as a saved file, and ``restore`` leaves it out
(``runs.includes``) so that a restore never replaces the live policy.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from vhbackup import log as vlog
from vhbackup import systemd_notify
from vhbackup.policy import Policy, Service
from vhbackup.quantities import format_duration, format_size
from vhbackup.restic import BackupResult

if TYPE_CHECKING:
    from vhbackup.context import Context
    from vhbackup.selection import Selection

log = logging.getLogger("vhbackup")


@dataclass
class FilesOutcome:
    result: BackupResult | None
    #: item -> {"status": success|partial|failure, "error": why (for partial/failure)}
    items: dict[str, dict] = field(default_factory=dict)


# --- which configured paths cannot be saved ------------------------------------------------

def path_problem(path: str, excludes: Sequence[str]) -> str | None:
    """Why restic would not save the files at ``path``, or None."""
    if not os.path.lexists(path):
        return f"{path} does not exist"
    if os.path.islink(path):
        return (f"{path} is a symbolic link (to {os.readlink(path)}): restic saves the link, not the files; "
                f"list the real path in the policy")
    pattern = excluded_by(path, excludes)
    if pattern is not None:
        return f"{path} is excluded by the pattern {pattern!r}"
    return None


def excluded_by(path: str, patterns: Sequence[str]) -> str | None:
    """The first exclude pattern that matches ``path`` itself or a directory above it, as restic matches.

    restic matches a pattern against the path's components: a pattern that
    does not start with ``/`` may match anywhere (``**/`` is put before it),
    ``**`` matches any number of directories, and a match of the first
    components excludes everything below them. Negated (``!``) patterns make
    the answer uncertain: then nothing is claimed.
    """
    if any(p.startswith("!") for p in patterns):
        return None
    parts = path.split("/")
    for pattern in patterns:
        if pattern and _matches(_pattern_parts(pattern), parts):
            return pattern
    return None


def _pattern_parts(pattern: str) -> list[str]:
    parts = pattern.rstrip("/").split("/")
    return parts if parts[0] == "" else ["**", *parts]


def _matches(pattern: list[str], parts: list[str]) -> bool:
    """Whether ``pattern`` (components, ``**`` allowed) matches the leading components of ``parts``."""
    if not pattern:
        return True
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_matches(rest, parts[i:]) for i in range(len(parts) + 1))
    if not parts:
        return False
    return _component(head, parts[0]) and _matches(rest, parts[1:])


_GO_CLASS = re.compile(r"\[(\^|!)?((?:\\.|[^\]\\])+)\]")


def _component(pattern: str, name: str) -> bool:
    """Go's filepath.Match for one component: ``*``, ``?``, ``[a-z]``/``[^a-z]`` and ``\\`` escapes."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            match = _GO_CLASS.match(pattern, i)
            if match is None:
                return False  # a bad pattern: restic refuses it, it excludes nothing
            negate = "^" if match.group(1) else ""
            out.append(f"[{negate}{match.group(2)}]")
            i = match.end()
            continue
        else:
            out.append(re.escape(c))
        i += 1
    try:
        return re.fullmatch("".join(out), name) is not None
    except re.error:
        return False


# --- the recovery bundle ------------------------------------------------------------------

def bundle_paths(policy: Policy, saved: Sequence[str]) -> list[str]:
    """The policy file, as the literal path restic is to save beside ``saved`` (none if they hold it already).

    A symlinked policy is saved as the file it points to. A policy that an
    ``exclude`` pattern matches, or that is not a regular file, is left out
    with a warning.
    """
    path = os.path.realpath(policy.source)
    if any(path == p or path.startswith(p.rstrip("/") + "/") for p in saved):
        return []
    if not os.path.isfile(path):
        return []
    pattern = excluded_by(path, policy.exclude)
    if pattern is not None:
        log.warning("the policy file %s is excluded by the pattern %r: it is not in the snapshot, and a new "
                    "server cannot get it from the repository", path, pattern)
        return []
    return [path]


# --- the backup ------------------------------------------------------------------------------

def _owner(path: str, file_sets: Sequence[Service]) -> list[Service]:
    """The file sets whose paths hold ``path``."""
    return [fs for fs in file_sets
            if any(path == p or path.startswith(p.rstrip("/") + "/") for p in fs.paths)]


def backup(ctx: Context, selection: Selection, tags: Sequence[str]) -> FilesOutcome:
    """One snapshot of every selected path that can be saved, tagged with each file set it holds.

    Raises the typed restic error when restic failed as a whole (then every
    file set failed); partial outcomes are in the returned items.
    """
    policy = ctx.policy
    problems: dict[str, list[str]] = {fs.item: [] for fs in selection.file_sets}
    saved: list[str] = []
    for path in selection.paths:
        problem = path_problem(path, policy.exclude)
        if problem is None:
            saved.append(path)
        elif path in selection.optional_paths:
            log.info("optional path skipped: %s", problem)
        else:
            log.warning("%s; its files are not in this backup", problem)
            for fs in _owner(path, selection.file_sets):
                if path in fs.paths:
                    problems[fs.item].append(problem)
    holding = [fs for fs in selection.file_sets if any(p in saved for p in fs.paths)]
    outcome = FilesOutcome(None)
    result = None
    if saved:
        systemd_notify.status(f"backing up files of {', '.join(fs.name for fs in holding)}")
        bundle = bundle_paths(policy, saved)
        result = ctx.restic.backup([*saved, *bundle], (*tags, *(f"service:{fs.name}" for fs in holding)),
                                   policy.exclude)
        ctx.end_progress()
        outcome.result = result
        _log_saved(result, holding)
        for item_path in result.unreadable:
            for fs in _owner(item_path, selection.file_sets):
                problems[fs.item].append(f"could not read {item_path}")
        if result.total_files <= len(bundle):
            for fs in holding:
                problems[fs.item].append("the snapshot holds no file: every path is empty or excluded")
    for fs in selection.file_sets:
        found = problems[fs.item]
        entry: dict = {"status": "success"}
        if fs not in holding:
            entry = {"status": "failure" if found else "success",
                     "error": "; ".join(found) if found else None}
            if not found:
                entry["note"] = "every path is optional and absent"
        elif found:
            unreadable = [p for p in found if p.startswith("could not read ")]
            other = [p for p in found if not p.startswith("could not read ")]
            summary = other + ([f"{len(unreadable)} file(s) could not be read (first: "
                                f"{unreadable[0][len('could not read '):]})"] if unreadable else [])
            entry = {"status": "partial", "error": "; ".join(summary)}
        if result is not None and fs in holding:
            entry.update(snapshot_id=result.snapshot_id, bytes=result.total_bytes, duration=result.duration)
        outcome.items[fs.item] = entry
    return outcome


def _log_saved(files: BackupResult, holding: Sequence[Service]) -> None:
    names = [fs.name for fs in holding]
    log.info("snapshot %s saved: files of %s: %d new, %d changed, %d unchanged, %s added, %s in %d files, %s",
             files.snapshot_id[:8], ", ".join(names), files.files_new, files.files_changed,
             files.files_unmodified, format_size(files.data_added), format_size(files.total_bytes),
             files.total_files, format_duration(files.duration),
             extra=vlog.fields(vlog.SNAPSHOT_SAVED, snapshot_id=files.snapshot_id, service=names))
