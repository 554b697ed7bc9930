"""Which snapshots ``prune`` keeps: grouping and restic's keep algorithm, computed here.

restic's own ``forget --group-by`` cannot group by a subset of the tags: the
per-run tag ``run:<id>`` would make every run a group of its own, and
``--tag`` filters match supersets. So vhbackup groups the snapshots itself,
by host and their tags without ``run:*`` (each service's files and each
database keep their own history), applies restic's documented policy to
each group, and hands restic the exact ids to forget.

The policy is the one restic 0.17+ documents for ``forget``: snapshots are
walked newest first; each ``last/hourly/daily/weekly/monthly/yearly`` rule
keeps the newest snapshot of each of its next N buckets (time periods in the
snapshot's own recorded time zone), and, while a rule still has buckets left,
also the oldest snapshot of the group; ``within`` keeps every snapshot newer
than the group's newest (not future) snapshot minus the duration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Sequence

from vhbackup.policy import Retention
from vhbackup.restic import Snapshot

_BUCKETS: tuple[tuple[str, Callable[[datetime, int], object], str], ...] = (
    ("last", lambda t, nr: nr, "last snapshot"),
    ("hourly", lambda t, nr: (t.year, t.month, t.day, t.hour), "hourly snapshot"),
    ("daily", lambda t, nr: (t.year, t.month, t.day), "daily snapshot"),
    ("weekly", lambda t, nr: tuple(t.isocalendar())[:2], "weekly snapshot"),
    ("monthly", lambda t, nr: (t.year, t.month), "monthly snapshot"),
    ("yearly", lambda t, nr: t.year, "yearly snapshot"),
)


@dataclass(frozen=True)
class GroupKey:
    host: str
    tags: tuple[str, ...]

    def describe(self) -> str:
        return f"host {self.host}, tags {','.join(self.tags)}"


@dataclass
class Decision:
    key: GroupKey
    keep: list[Snapshot] = field(default_factory=list)
    remove: list[Snapshot] = field(default_factory=list)
    reasons: dict[str, list[str]] = field(default_factory=dict)  # snapshot id -> why it is kept


def group_key(snap: Snapshot) -> GroupKey:
    return GroupKey(snap.host, tuple(sorted(t for t in set(snap.tags) if not t.startswith("run:"))))


def group(snapshots: Sequence[Snapshot]) -> dict[GroupKey, list[Snapshot]]:
    groups: dict[GroupKey, list[Snapshot]] = {}
    for snap in snapshots:
        groups.setdefault(group_key(snap), []).append(snap)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0].host, kv[0].tags)))


def _latest(snapshots: Sequence[Snapshot], now: datetime) -> datetime | None:
    past = [s.time for s in snapshots if s.time < now]
    return max(past) if past else None


def apply(snapshots: Sequence[Snapshot], policy: Retention, key: GroupKey | None = None,
          now: datetime | None = None) -> Decision:
    """Split one group's snapshots into keep and remove, newest first, with restic's reasons."""
    if policy.is_empty():
        raise ValueError("empty retention policy")
    now = now or datetime.now(timezone.utc)
    ordered = sorted(snapshots, key=lambda s: s.time, reverse=True)
    decision = Decision(key=key or (group_key(ordered[0]) if ordered else GroupKey("", ())))
    counts = {name: getattr(policy, name) or 0 for name, _, _ in _BUCKETS}
    last_value: dict[str, object] = {}
    latest = _latest(ordered, now)
    cutoff = None
    if policy.within_seconds:
        oldest_possible = datetime.min.replace(tzinfo=timezone.utc)
        try:
            cutoff = latest - timedelta(seconds=policy.within_seconds) if latest else oldest_possible
        except OverflowError:  # longer than the calendar goes back: every snapshot is within it
            cutoff = oldest_possible
    for nr, snap in enumerate(ordered):
        reasons = []
        if cutoff is not None and snap.time > cutoff:
            reasons.append(f"within {policy.within}")
        for name, bucket, reason in _BUCKETS:
            if counts[name] > 0:
                value = bucket(snap.time, nr)
                if name not in last_value or value != last_value[name] or nr == len(ordered) - 1:
                    last_value[name] = value
                    counts[name] -= 1
                    reasons.append(reason)
        if reasons:
            decision.keep.append(snap)
            decision.reasons[snap.id] = reasons
        else:
            decision.remove.append(snap)
    return decision


def plan(snapshots: Sequence[Snapshot], policy: Retention, now: datetime | None = None) -> list[Decision]:
    """One decision per group of vhbackup snapshots."""
    return [apply(snaps, policy, key, now) for key, snaps in group(snapshots).items()]
