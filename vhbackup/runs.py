"""Backup runs: the snapshots that one ``vhbackup backup`` made, seen as one unit.

Every snapshot of a run carries ``run:<id>``. A run has at most one files
snapshot (tagged ``service:<name>`` for each service whose paths it holds,
``service:system`` for the top-level paths) and one snapshot per database
(``db:<name>``). Users pick runs by run id or by any unique prefix of one of
their snapshot ids.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from vhbackup.errors import NotFound, UsageError
from vhbackup.policy import SYSTEM_SERVICE, Policy
from vhbackup.restic import Snapshot

TAG = "vhbackup"
RUN_REF = re.compile(r"^[0-9A-Za-z][0-9A-Za-z-]{3,63}$")


@dataclass(frozen=True)
class Run:
    id: str
    snapshots: tuple[Snapshot, ...]

    @property
    def time(self) -> datetime:
        return min(s.time for s in self.snapshots)

    @property
    def host(self) -> str:
        return self.snapshots[0].host

    @property
    def files(self) -> Snapshot | None:
        return next((s for s in self.snapshots if not s.tag_value("db")), None)

    @property
    def services(self) -> tuple[str, ...]:
        return self.files.tag_values("service") if self.files else ()

    def database(self, name: str) -> Snapshot | None:
        return next((s for s in self.snapshots if s.tag_value("db") == name), None)

    @property
    def databases(self) -> tuple[str, ...]:
        return tuple(s.tag_value("db") for s in self.snapshots if s.tag_value("db"))

    def has(self, services: tuple[str, ...], databases: tuple[str, ...]) -> bool:
        return set(services) <= set(self.services) and set(databases) <= set(self.databases)

    def size(self) -> int | None:
        sizes = [s.summary.get("total_bytes_processed") for s in self.snapshots]
        return sum(sizes) if sizes and None not in sizes else None


def group(snapshots: list[Snapshot]) -> list[Run]:
    """Runs, newest first."""
    by_run: dict[str, list[Snapshot]] = {}
    for snap in snapshots:
        run_id = snap.tag_value("run")
        if run_id:
            by_run.setdefault(run_id, []).append(snap)
    runs = [Run(run_id, tuple(sorted(snaps, key=lambda s: s.time))) for run_id, snaps in by_run.items()]
    return sorted(runs, key=lambda r: r.time, reverse=True)


def validate_ref(ref: str) -> str:
    if not RUN_REF.match(ref):
        raise UsageError(f"not a run or snapshot id: {ref!r}; see 'vhbackup restore --list'")
    return ref


def find(runs: list[Run], ref: str) -> Run:
    """The run whose id is ``ref`` or that holds the one snapshot whose id starts with ``ref``."""
    validate_ref(ref)
    for run in runs:
        if run.id == ref:
            return run
    matches = {run.id: run for run in runs for snap in run.snapshots if snap.id.startswith(ref.lower())}
    if len(matches) == 1:
        return next(iter(matches.values()))
    if len(matches) > 1:
        raise UsageError(f"{ref!r} matches snapshots of several runs ({', '.join(sorted(matches))}); type more of it")
    raise NotFound(f"no backup run or snapshot matches {ref!r}; see 'vhbackup restore --list'")


#: A run dated further than this in the future is never "the latest" (a forged time, or a wrong clock).
FUTURE_SKEW = 300.0


def of_host(runs: list[Run], host: str) -> list[Run]:
    """The runs made under ``host`` (the policy's): in a repository shared by several hosts, the newest run
    is not necessarily ours, and another host's service of the same name has other data."""
    return [r for r in runs if r.host == host]


def latest(runs: list[Run], services: tuple[str, ...], databases: tuple[str, ...],
           now: datetime | None = None) -> Run:
    """The newest run that holds every requested service's files and every requested database.

    Runs dated in the future are passed over: a host that can only append
    to a repository could otherwise forge "the latest" run with a future
    time (``restic backup --time``). They stay restorable by ``--snapshot``.
    ``now`` is the caller's clock (restore and drill pass theirs); None: no
    run is in the future.
    """
    limit = now + timedelta(seconds=FUTURE_SKEW) if now is not None else None
    for run in runs:
        if (limit is None or run.time <= limit) and run.has(services, databases):
            return run
    wanted = ", ".join([*services, *(f"db:{d}" for d in databases)])
    raise NotFound(f"no backup run holds all of: {wanted}; see 'vhbackup restore --list' and pick one with --snapshot")


def newer_parts(runs: list[Run], chosen: Run, services: tuple[str, ...],
                databases: tuple[str, ...]) -> dict[str, Run]:
    """Requested items (``files:<service>``, ``db:<name>``) that a run newer than ``chosen`` holds: the newest
    such run for each. ``--latest`` restores one whole run, so these would come back older than they could."""
    found: dict[str, Run] = {}
    for run in runs:
        if run.id == chosen.id or run.time <= chosen.time:
            break
        for name in services:
            if name in run.services:
                found.setdefault(f"files:{name}", run)
        for name in databases:
            if name in run.databases:
                found.setdefault(f"db:{name}", run)
    return found


def includes(policy: Policy, run: Run, services: tuple[str, ...]) -> tuple[str, ...]:
    """restic ``--include`` paths that restore only ``services``' files; empty when the run holds no others.

    The policy file saved beside the services' paths (the recovery bundle)
    is never restored with them: the snapshot's other paths are named.
    """
    if not services or set(run.services) <= set(services):
        bundle = {os.path.abspath(policy.source), os.path.realpath(policy.source)}
        paths = run.files.paths if run.files else ()
        if bundle & set(paths):
            return tuple(p for p in paths if p not in bundle)
        return ()
    paths: list[str] = []
    for name in services:
        paths.extend(policy.paths if name == SYSTEM_SERVICE else policy.service(name).paths)
    return tuple(dict.fromkeys(paths))


def before(runs: list[Run], when: datetime) -> list[Run]:
    """The runs that started before ``when`` (an aware time), newest first."""
    return [run for run in runs if run.time < when]


def parse_before(text: str) -> datetime:
    """``--before``: ``YYYY-MM-DD HH:MM[:SS]`` or ``YYYY-MM-DD`` (midnight) in local time, as an aware time."""
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(text.strip(), fmt).astimezone()
        except ValueError:
            continue
    raise UsageError(f"--before {text!r}: expected a local time as 'YYYY-MM-DD HH:MM' (or with :SS, or a date)")


def pick(runs: list[Run], ref: str | None) -> Run:
    """The run named by ``ref`` (a run id, a unique snapshot id prefix, or ``latest``/None: the newest)."""
    if ref in (None, "latest"):
        if not runs:
            raise NotFound("no backup runs yet; make one with 'vhbackup backup'")
        return runs[0]
    return find(runs, ref)
