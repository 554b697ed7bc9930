"""vhbackup backup: one run = one files snapshot plus one snapshot per database.

All file paths of the run go into a single restic snapshot tagged with every
service it holds, so that restic's per-call costs (opening the repository,
loading the index) are paid once per run, not once per service.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from vhbackup import databases, lock, outcome, prechecks, service_units, state, systemd_notify
from vhbackup import log as vlog
from vhbackup.context import Context
from vhbackup.errors import EXIT_OK, EXIT_PARTIAL, DumpError, UsageError, VhError
from vhbackup.policy import IDENTIFIER, SYSTEM_SERVICE, Database, Policy
from vhbackup.quantities import format_duration, format_size
from vhbackup.restic import BackupResult
from vhbackup.runs import TAG

NAME = "backup"
HELP = "back up files and databases now"

log = logging.getLogger("vhbackup")


def add_arguments(parser) -> None:
    parser.add_argument("--service", action="append", default=[], metavar="NAME",
                        help="only this service's paths and databases (repeatable); top-level paths are left out")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--files-only", action="store_true", help="skip the databases")
    only.add_argument("--databases-only", action="store_true", help="dump the databases, skip the files")
    parser.add_argument("--no-verify", action="store_true", help="skip the check that the new snapshots are listed")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be backed up; touch nothing (also DRY_RUN=true)")


@dataclass(frozen=True)
class Plan:
    services: tuple[str, ...]
    paths: tuple[str, ...]
    databases: tuple[Database, ...]
    units: tuple[str, ...]

    def describe(self) -> list[str]:
        lines = []
        if self.paths:
            lines.append(f"files of {', '.join(self.services)}: {' '.join(self.paths)}")
        for db in self.databases:
            names = "all databases" if db.names is None else ", ".join(db.names)
            lines.append(f"database {db.name} ({db.type}: {names}) of service {db.service}")
        if self.units:
            lines.append(f"stopping and restarting: {', '.join(self.units)}")
        return lines


def selected_services(policy: Policy, names: list[str]) -> list[str]:
    """Validate --service arguments against the policy."""
    known = [s.name for s in policy.services]
    for name in names:
        if not IDENTIFIER.match(name):
            raise UsageError(f"not a service name: {name!r}")
        if name not in known:
            raise UsageError(f"unknown service {name!r}; the policy defines: {', '.join(known) or 'none'}")
    return list(dict.fromkeys(names))


def make_plan(policy: Policy, service_names: list[str], files: bool = True, dbs: bool = True) -> Plan:
    chosen = [policy.service(n) for n in service_names] if service_names else list(policy.services)
    services, paths = [], []
    if not service_names and policy.paths:
        services.append(SYSTEM_SERVICE)
        paths.extend(policy.paths)
    for svc in chosen:
        if svc.paths:
            services.append(svc.name)
            paths.extend(p for p in svc.paths if p not in paths)
    if service_names:
        wanted = {db for svc in chosen for db in svc.databases}
        databases_ = tuple(db for db in policy.databases if db.name in wanted)
    else:
        databases_ = policy.databases
    units = tuple(u for svc in chosen if svc.stop for u in svc.units)
    return Plan(services=tuple(services) if files else (), paths=tuple(paths) if files else (),
                databases=databases_ if dbs else (), units=units)


def run(ctx: Context, args) -> int:
    names = selected_services(ctx.policy, args.service)
    plan = make_plan(ctx.policy, names, files=not args.databases_only, dbs=not args.files_only)
    if not plan.paths and not plan.databases:
        raise VhError("nothing to back up: the policy (or the --service selection) has no paths and no databases")
    if ctx.dry_run:
        print(f"dry run: would back up to {ctx.policy.repository.url} as run {ctx.run_id}:")
        for line in plan.describe():
            print(f"  {line}")
        return EXIT_OK
    with lock.held(ctx.policy.state_dir, NAME, ctx.wait), outcome.recorded(ctx, NAME) as record:
        record.services = list(plan.services)
        record.databases = [db.name for db in plan.databases]
        prechecks.before_backup(ctx, plan)
        tags = (TAG, f"run:{ctx.run_id}")
        files: BackupResult | None = None
        with service_units.stopped(ctx, plan.units):
            failures = databases.backup_all(ctx, plan.databases, tags, record) if plan.databases else []
            if plan.paths:
                systemd_notify.status(f"backing up files of {', '.join(plan.services)}")
                files = ctx.restic.backup(plan.paths, tags + tuple(f"service:{s}" for s in plan.services),
                                          ctx.policy.exclude)
                ctx.end_progress()
                _record_files(record, plan, files)
        if not args.no_verify:
            verify_run(ctx, plan, record)
        state.remember_run_size(ctx.policy.state_dir, ctx.run_id, record.bytes_total)
        if failures:
            raise DumpError("; ".join(failures))
        if files and files.partial:
            record.status = "partial"
            log.warning("backup finished, but %d file(s) could not be read (first: %s); they are not in the "
                        "snapshot", len(files.unreadable), files.unreadable[0] if files.unreadable else "?")
            return EXIT_PARTIAL
    return EXIT_OK


def _record_files(record: outcome.Record, plan: Plan, files: BackupResult) -> None:
    record.snapshot_ids.append(files.snapshot_id)
    record.bytes_added += files.data_added
    record.bytes_total += files.total_bytes
    log.info("snapshot %s saved: files of %s: %d new, %d changed, %d unchanged, %s added, %s in %d files, %s",
             files.snapshot_id[:8], ", ".join(plan.services), files.files_new, files.files_changed,
             files.files_unmodified, format_size(files.data_added), format_size(files.total_bytes),
             files.total_files, format_duration(files.duration),
             extra=vlog.fields(vlog.SNAPSHOT_SAVED, snapshot_id=files.snapshot_id, service=plan.services))


def verify_run(ctx: Context, plan: Plan, record: outcome.Record) -> None:
    """Check that the run's snapshots are in the repository and hold the expected paths."""
    listed = ctx.restic.snapshots(tags=(f"run:{ctx.run_id}",))
    full_ids = []
    for snap_id in record.snapshot_ids:
        match = next((s for s in listed if s.id.startswith(snap_id)), None)
        if match is None:
            raise VhError(f"verification failed: snapshot {snap_id[:8]} of run {ctx.run_id} is not in the repository")
        full_ids.append(match.id)
        if not match.tag_value("db"):
            missing = [p for p in plan.paths if p not in match.paths and os.path.lexists(p)]
            if missing:
                raise VhError(f"verification failed: snapshot {snap_id[:8]} does not list {', '.join(missing)}")
    record.snapshot_ids = full_ids
    log.info("verified: %d snapshot(s) of run %s are in the repository", len(full_ids), ctx.run_id)
