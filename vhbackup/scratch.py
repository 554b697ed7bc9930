"""Scratch space for checks: restores into a scratch directory or database, and cleaning them up.

``verify --snapshot`` and ``drill`` restore a files snapshot into
``<repository.cache_dir>/<purpose>/<run id>/`` (beside restic's cache, so
writable under the systemd sandbox, never inside the live tree) and compare
it with the snapshot's own listing. A restore that would leave less than
``checks.min_free_space`` free there is refused before anything is written.

Scratch databases are registered in ``state_dir/scratch.json`` before they
are created and unregistered after they are dropped. Both commands hold
vhbackup's lock, so whatever is still registered (or still lies in a
scratch directory) when one starts was left by a run that was killed, and
is removed first: a SIGKILLed drill cannot make the next one fail.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vhbackup import state, treediff
from vhbackup.diskspace import free_bytes
from vhbackup.errors import VhError
from vhbackup.policy import Policy
from vhbackup.quantities import format_size

if TYPE_CHECKING:
    from vhbackup.context import Context

log = logging.getLogger("vhbackup")

PURPOSES = ("drill", "verify", "spot")
#: The name of a scratch directory: the run id (``YYYYmmdd-HHMMSS-xxxx``). Nothing else under
#: ``cache_dir/drill`` or ``cache_dir/verify`` is ever removed (cache_dir may be a directory the admin shares).
SCRATCH_NAME = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{4}$")


@dataclass(frozen=True)
class Comparison:
    entries: int  # what the snapshot lists (within the includes)
    bytes: int  # the size of the listed files, all of which were restored
    seconds: float  # how long restic's restore took
    differences: list[str]


def directory(policy: Policy, purpose: str, run_id: str) -> str:
    return os.path.join(policy.repository.cache_dir, purpose, run_id)


def restore_and_compare(ctx: Context, snapshot_id: str, target: str, includes: tuple[str, ...] = (),
                        verify: bool = False, hint: str = "") -> Comparison:
    """Restore the snapshot (only ``includes``, if given) into the new directory ``target`` and compare.

    ``verify``: restic also reads every restored file back and checks its
    content. ``hint`` ends the message when there is not enough room.
    """
    policy = ctx.policy
    expected = treediff.from_listing(ctx.restic.ls(snapshot_id), includes)
    need = sum(e.size for entry in expected.values() for e in (entry if isinstance(entry, tuple) else (entry,)))
    free = free_bytes(target)
    if need + policy.checks.min_free_space > free:
        raise VhError(f"restoring snapshot {snapshot_id[:8]} needs {format_size(need)} in {os.path.dirname(target)} "
                      f"but only {format_size(free)} is free (keeping checks.min_free_space "
                      f"{format_size(policy.checks.min_free_space)}); free space there{hint}")
    try:
        os.makedirs(target, mode=0o700)
    except OSError as exc:
        raise VhError(f"cannot create the scratch directory {target}: {exc.strerror}; "
                      f"check repository.cache_dir in {policy.source}") from None
    started = time.monotonic()
    ctx.restic.restore(snapshot_id, target, includes, verify=verify)
    seconds = time.monotonic() - started
    actual = treediff.describe(target, content=False)
    if includes:
        treediff.loosen_ancestors((expected, actual), includes)
    return Comparison(len(expected), need, seconds, treediff.differences(expected, actual))


def remove(target: str) -> str | None:
    """Remove a scratch directory (and its purpose directory once empty); what went wrong, or None."""
    try:
        shutil.rmtree(target)
    except FileNotFoundError:
        pass
    except OSError as exc:
        return f"could not remove the scratch directory {target}: {exc.strerror}"
    try:
        os.rmdir(os.path.dirname(target))
    except OSError:
        pass
    return None


# --- scratch databases -----------------------------------------------------------------

def _registry(policy: Policy) -> str:
    return os.path.join(policy.state_dir, "scratch.json")


def _databases(policy: Policy) -> list[dict]:
    entries = state.read_lenient(_registry(policy)).get("databases") or []
    return [e for e in entries if isinstance(e, dict)]


def _save(policy: Policy, entries: list[dict]) -> None:
    state.write_json_atomic(_registry(policy), {"databases": entries})


def register_database(policy: Policy, db_name: str, scratch_name: str, run_id: str, created: bool = False) -> None:
    """Note a scratch database before creating it (and again once it exists), so a killed run's copy is dropped.

    Only databases noted as created are ever dropped by ``clean_leftovers``:
    a run killed between the two notes may or may not have created it, and
    a database vhbackup cannot be sure it created is never dropped.
    """
    entries = [e for e in _databases(policy) if e.get("scratch") != scratch_name or e.get("db") != db_name]
    _save(policy, entries + [{"db": db_name, "scratch": scratch_name, "run_id": run_id, "created": created}])


def unregister_database(policy: Policy, db_name: str, scratch_name: str) -> None:
    entries = _databases(policy)
    kept = [e for e in entries if not (e.get("scratch") == scratch_name and e.get("db") == db_name)]
    if kept != entries:
        _save(policy, kept)


def clean_leftovers(policy: Policy, drop) -> list[str]:
    """Remove what killed runs left: registered scratch databases (``drop(db, name)``) and scratch directories.

    Returns one problem line per thing that could not be removed.
    """
    problems = []
    for entry in _databases(policy):
        db_name, name = entry.get("db"), entry.get("scratch")
        if not entry.get("created"):
            log.warning("run %s was killed while creating the scratch database %s; if it exists, drop it by hand",
                        entry.get("run_id"), name)
            unregister_database(policy, db_name, name)
            continue
        try:
            db = policy.database(db_name)
        except KeyError:
            log.warning("scratch database %s of database %s (no longer in the policy) was left by run %s; "
                        "drop it by hand", name, db_name, entry.get("run_id"))
            unregister_database(policy, db_name, name)
            continue
        try:
            drop(db, name)
            log.info("dropped the scratch database %s left by interrupted run %s", name, entry.get("run_id"))
            unregister_database(policy, db_name, name)
        except VhError as exc:
            problems.append(f"could not drop the scratch database {name} left by run {entry.get('run_id')}: {exc}")
    for purpose in PURPOSES:
        base = os.path.join(policy.repository.cache_dir, purpose)
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            if not SCRATCH_NAME.match(name):
                continue
            log.info("removing the scratch directory %s left by an interrupted run", os.path.join(base, name))
            if (error := remove(os.path.join(base, name))) is not None:
                problems.append(error)
    return problems
