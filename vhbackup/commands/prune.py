"""vhbackup prune: thin out old snapshots by the policy's ``retention``, per service and database.

The keep/remove sets are computed by ``vhbackup.retention`` (restic cannot
group by a subset of the tags) and restic is then told exactly which
snapshot ids to forget, with ``--prune`` to free their data. When nothing
is to be forgotten, ``restic prune`` still runs: data that no snapshot
references (left by a backup that was interrupted, e.g. by a full disk)
is only freed by prune. ``--dry-run`` prints the same decision and changes
nothing.
"""

from __future__ import annotations

import logging

from vhbackup import lock, outcome, retention
from vhbackup.context import Context
from vhbackup.errors import EXIT_OK, PolicyError, VhError
from vhbackup.quantities import format_size
from vhbackup.runs import TAG

NAME = "prune"

log = logging.getLogger("vhbackup")


def add_arguments(parser) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help="print per group what would be kept (and why) and removed; remove nothing")


def refuse_empty(policy) -> None:
    if policy.retention.is_empty():
        raise PolicyError(f"{policy.source}: retention: no rule is set, so prune would not know what to keep; "
                          f"set at least one of last, hourly, daily, weekly, monthly, yearly, within "
                          f"(e.g. daily: 7)")


def decide(ctx: Context) -> list[retention.Decision]:
    """The per-group decisions for this host's vhbackup snapshots; refuses a policy that keeps nothing."""
    policy = ctx.policy
    refuse_empty(policy)
    snapshots = [s for s in ctx.restic.snapshots(tags=(TAG,)) if s.host == policy.host]
    decisions = retention.plan(snapshots, policy.retention)
    for decision in decisions:
        if decision.remove and not decision.keep:
            raise VhError(f"retention would remove every snapshot of the group ({decision.key.describe()}); "
                          f"refusing: fix retention in {policy.source}")
    return decisions


def describe(decisions: list[retention.Decision]) -> list[str]:
    lines = []
    for d in decisions:
        lines.append(f"group {d.key.describe()}: keep {len(d.keep)}, remove {len(d.remove)}")
        for snap in sorted(d.keep + d.remove, key=lambda s: s.time, reverse=True):
            kept = snap.id in d.reasons
            why = ", ".join(d.reasons[snap.id]) if kept else ""
            lines.append(f"  {'keep' if kept else 'remove':<6}  {snap.short_id}  "
                         f"{snap.time.astimezone():%Y-%m-%d %H:%M:%S}  run {snap.tag_value('run') or '-':<22}  {why}"
                         .rstrip())
    return lines


def run(ctx: Context, args) -> int:
    refuse_empty(ctx.policy)
    if ctx.dry_run:
        decisions = decide(ctx)
        print("dry run: nothing is removed")
        for line in describe(decisions) or ["no vhbackup snapshots in the repository"]:
            print(line)
        return EXIT_OK
    with lock.held(ctx.policy.state_dir, NAME, ctx.wait), outcome.recorded(ctx, NAME) as record:
        decisions = decide(ctx)
        for line in describe(decisions):
            log.info("%s", line)
        remove = [s.id for d in decisions for s in d.remove]
        record.snapshot_ids = remove
        record.details.update(groups=len(decisions), kept=sum(len(d.keep) for d in decisions),
                              removed=len(remove))
        if remove:
            ctx.restic.forget(remove, prune=True)
            log.info("forgot %d snapshot(s) and pruned their data", len(remove))
        else:
            # Still prune: an interrupted backup (a full disk, a killed restic) leaves packs that no
            # snapshot references, and only prune gives their space back.
            ctx.restic.prune()
            log.info("no snapshot to forget; pruned data that no snapshot references")
        size = ctx.restic.stats("raw-data").get("total_size")
        if isinstance(size, int):
            record.details["repository_size_bytes"] = size
            log.info("repository size: %s", format_size(size))
    return EXIT_OK
