"""Scratch restores: a files snapshot restored into scratch space and compared with its own listing.

``verify --snapshot`` and ``drill`` check a backup's files this way. The
scratch directory is ``<repository.cache_dir>/<purpose>/<run id>/``: beside
restic's cache, so writable under the systemd sandbox (``CacheDirectory=``),
and never inside the live tree. A restore that would leave less than
``checks.min_free_space`` free there is refused before anything is written.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass

from vhbackup import prechecks, treediff
from vhbackup.context import Context
from vhbackup.errors import VhError
from vhbackup.policy import Policy
from vhbackup.quantities import format_size


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
    need = sum(e.size for e in expected.values())
    free = prechecks.free_bytes(target)
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
