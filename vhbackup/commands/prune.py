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
from datetime import datetime, timedelta, timezone

from vhbackup import lock, outcome, retention
from vhbackup.context import Context
from vhbackup.errors import EXIT_OK, EXIT_PARTIAL, PolicyError, VhError
from vhbackup.health import CLOCK_SKEW
from vhbackup.quantities import format_size
from vhbackup.runs import TAG

NAME = "prune"

log = logging.getLogger("vhbackup")


def add_arguments(parser) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help="print per group what would be kept (and why) and removed; remove nothing")
    parser.add_argument("--repository", metavar="NAME",
                        help="only this repository (default: every repository this host may prune)")
    parser.add_argument("--maintenance", action="store_true",
                        help="the maintenance role, run on a trusted machine: also prune append_only "
                             "repositories (each needs a 'within' retention rule); snapshots dated in the future "
                             "are reported, never removed")


def refuse_empty(policy) -> None:
    if policy.retention_of(policy.repository).is_empty():
        raise PolicyError(f"{policy.source}: retention: no rule is set, so prune would not know what to keep; "
                          f"set at least one of last, hourly, daily, weekly, monthly, yearly, within "
                          f"(e.g. daily: 7)")


def _future(ctx: Context, snapshots: list) -> list:
    """Snapshots dated in the future (a forged time, or a wrong clock): reported, never counted nor removed."""
    now = datetime.now(timezone.utc)
    future = [s for s in snapshots if s.time > now + timedelta(seconds=CLOCK_SKEW)]
    for snap in future:
        log.warning("repository %s: snapshot %s is dated %s, in the future (forged, or a clock was wrong): "
                    "not counted by the retention, not removed; look at it", ctx.policy.repository.name,
                    snap.short_id, snap.time.astimezone().isoformat(timespec="seconds"))
    return future


def decide(ctx: Context, future: list | None = None) -> list[retention.Decision]:
    """The per-group decisions for this host's vhbackup snapshots; refuses a policy that keeps nothing."""
    policy = ctx.policy
    refuse_empty(policy)
    snapshots = [s for s in ctx.restic.snapshots(tags=(TAG,)) if s.host == policy.host]
    ahead = _future(ctx, snapshots)
    if future is not None:
        future += ahead
    snapshots = [s for s in snapshots if s not in ahead]
    decisions = retention.plan(snapshots, policy.retention_of(policy.repository))
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


def _targets(ctx: Context, args) -> list:
    """The repositories this run prunes; an append-only one is named (who prunes it) and left alone."""
    policy = ctx.policy
    chosen = list(policy.repositories)
    if args.repository:
        ctx.use_repository(args.repository)
        chosen = [ctx.policy.repository]
    targets = []
    for repo in chosen:
        if repo.append_only and not args.maintenance:
            print(f"repository {repo.name} is append-only from this host: it is pruned only by the maintenance "
                  f"role on a trusted machine ('vhbackup prune --repository {repo.name} --maintenance', "
                  f"vhbackup-maintenance.timer); nothing to do here")
            continue
        if args.maintenance and policy.retention_of(repo).within is None:
            raise PolicyError(f"{policy.source}: repositories.{repo.name}: the maintenance role needs a 'within' "
                              f"rule in this repository's retention (snapshot times can be forged by the "
                              f"host; 'within' keeps every recent one), e.g. within: 30d")
        targets.append(repo)
    return targets


def run(ctx: Context, args) -> int:
    targets = _targets(ctx, args)
    if not targets:
        return EXIT_OK
    code = EXIT_OK
    for repo in targets:
        ctx.use_repository(repo.name)
        if len(ctx.policy.repositories) > 1:
            log.info("repository %s (%s):", repo.name, repo.role)
        code = max(code, _prune_one(ctx))
    return code


def _prune_one(ctx: Context) -> int:
    refuse_empty(ctx.policy)
    if ctx.dry_run:
        decisions = decide(ctx)
        print("dry run: nothing is removed")
        for line in describe(decisions) or ["no vhbackup snapshots in the repository"]:
            print(line)
        return EXIT_OK
    with lock.held(ctx.policy.state_dir, NAME, ctx.wait), outcome.recorded(ctx, NAME) as record:
        future: list = []
        decisions = decide(ctx, future)
        if future:
            record.details["future_snapshots"] = [s.id for s in future]
            record.status = "partial"
            record.error = (f"repository {ctx.policy.repository.name}: {len(future)} snapshot(s) dated in the "
                            f"future, left alone: {', '.join(s.short_id for s in future)}")
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
    return EXIT_PARTIAL if record.status == "partial" else EXIT_OK
