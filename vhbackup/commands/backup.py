"""vhbackup backup: one run = one files snapshot plus one snapshot per database, made side by side.

All file paths of the run go into a single restic snapshot tagged with every
service it holds, so that restic's per-call costs (opening the repository,
loading the index) are paid once per run, not once per service. The files
backup and the database dumps run concurrently (``concurrency`` at a time),
longest first by the previous run's durations, inside one stop/start of
the services' units. Afterwards the run's snapshots are proven stored and
intact (``backend.prove``: without the key where the backend allows it).
"""

from __future__ import annotations

import logging

from vhbackup import backend, containers, databases, files, jobs, lock, outcome, prechecks, selection, service_units, state
from vhbackup.context import Context
from vhbackup.errors import EXIT_OK, EXIT_PARTIAL, Interrupted, RepositoryLocked, VhError
from vhbackup.urls import display_url
from vhbackup.runs import TAG

NAME = "backup"

log = logging.getLogger("vhbackup")


def add_arguments(parser) -> None:
    parser.add_argument("--service", action="append", default=[], metavar="NAME",
                        help="only this service's paths and databases (repeatable); top-level paths are left out")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--files-only", action="store_true", help="skip the databases")
    only.add_argument("--databases-only", action="store_true", help="dump the databases, skip the files")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the check that the new snapshots are stored intact")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be backed up; touch nothing (also DRY_RUN=true)")


def run(ctx: Context, args) -> int:
    policy = containers.with_volumes(ctx.policy, args.service) if not args.databases_only else ctx.policy
    chosen = selection.for_backup(policy, args.service, files=not args.databases_only,
                                  dbs=not args.files_only)
    engine = containers.detect(ctx.policy.container_engine) if chosen.containers else None
    if not chosen:
        raise VhError("nothing to back up: the policy (or the --service selection) has no paths and no databases")
    if ctx.dry_run:
        print(f"dry run: would back up to {display_url(ctx.policy.repository.url)} as run {ctx.run_id}:")
        for line in chosen.describe():
            print(f"  {line}")
        for repo in ctx.policy.copies:
            print(f"  then copy the run to repository {repo.name} ({display_url(repo.url)})")
        if chosen.containers:
            running = service_units.running_containers(engine, chosen.containers, chosen.database_containers)
            print(f"  stopping and restarting containers ({engine}): "
                  f"{', '.join(c.name for c in running) or 'none (none of them is running)'}")
        for path in chosen.paths:
            problem = files.path_problem(path, ctx.policy.exclude)
            if problem:
                print(f"  {'optional, skipped' if path in chosen.optional_paths else 'PARTIAL'}: {problem}")
        return EXIT_OK
    with lock.held(ctx.policy.state_dir, NAME, ctx.wait), \
            outcome.recorded(ctx, NAME, chosen.items) as record:
        record.services = list(chosen.services)
        record.databases = [db.name for db in chosen.databases]
        service_units.restart_left_over(ctx.policy.state_dir)
        prechecks.before_backup(ctx, chosen)
        with service_units.stopped(chosen.units, ctx.policy.state_dir, chosen.containers, engine,
                                   chosen.database_containers):
            done = jobs.run(_jobs(ctx, chosen), ctx.policy.concurrency)
        failures = _collect(chosen, done, record)
        if record.snapshot_ids and not args.no_verify:
            try:
                verify_run(ctx, record)
            except BaseException as exc:
                _unproven(record, exc)
                raise
        state.remember_run_size(ctx.policy.state_dir, ctx.run_id, record.bytes_total)
        copy_failures = copy_run(ctx, record)
        if failures:
            raise _one_error(failures)
        partial = {item: o["error"] for item, o in record.items.items() if o.get("status") == "partial"}
        partial.update(copy_failures)
        if partial:
            record.status = "partial"
            record.error = "; ".join(f"{item}: {why}" for item, why in partial.items())
            log.warning("backup finished, but not everything was saved: %s", record.error)
            return EXIT_PARTIAL
    return EXIT_OK


def _jobs(ctx: Context, chosen: selection.Selection) -> list[jobs.Job]:
    """The files backup and one job per database, the longest (by the previous run) first."""
    tags = (TAG, f"run:{ctx.run_id}")
    work = []
    if chosen.file_sets:
        work.append(jobs.Job("files", _unlocking(ctx, lambda: files.backup(ctx, chosen, tags))))
    for db in chosen.databases:
        work.append(jobs.Job(db.item, _unlocking(ctx, lambda db=db: databases.backup_one(ctx, db, tags))))
    previous = state.read_lenient(state.items_path(ctx.policy.state_dir))

    def last_duration(job: jobs.Job) -> float:
        names = [fs.item for fs in chosen.file_sets] if job.name == "files" else [job.name]
        return max((float(((previous.get(n) or {}).get("last") or {}).get("duration") or 0) for n in names),
                   default=0.0)

    return sorted(work, key=last_duration, reverse=True)


def _unlocking(ctx: Context, work):
    """``work``, tried once more after ``restic unlock`` when the repository was locked.

    A backup needs only a shared lock; what blocks it is an exclusive one,
    often left by a prune or check that was killed. ``restic unlock``
    removes only locks of processes that are gone; a live one stays, and
    the second attempt reports it.
    """
    def attempt():
        try:
            return work()
        except RepositoryLocked:
            ctx.restic.unlock()
            return work()
    return attempt


def _collect(chosen: selection.Selection, done: list[jobs.Done], record) -> list[BaseException]:
    """Every job's outcome into the record (items, snapshots, sizes); the failures, in job order."""
    failures: list[BaseException] = []
    for item in done:
        names = [fs.item for fs in chosen.file_sets] if item.job.name == "files" else [item.job.name]
        if item.error is not None:
            failures.append(item.error)
            record.items.update({name: {"status": "failure", "error": str(item.error)} for name in names})
        elif item.job.name == "files":
            record.items.update(item.value.items)
            if item.value.result is not None:
                _add_snapshot(record, item.value.result)
            failures += [VhError(f"{name}: nothing saved: {o['error']}") for name, o in item.value.items.items()
                         if o["status"] == "failure"]
        else:
            _add_snapshot(record, item.value)
            record.items[item.job.name] = {"status": "success", "snapshot_id": item.value.snapshot_id,
                                           "bytes": item.value.total_bytes, "duration": item.value.duration}
    return failures


def _unproven(record, exc: BaseException) -> None:
    """The run's snapshots could not be proven stored: none of its items is a good backup (status must not
    count one as the newest good backup of its item)."""
    why = f"its snapshot could not be verified: {exc}" if isinstance(exc, Exception) else \
        f"interrupted while its snapshot was verified ({type(exc).__name__})"
    for entry in record.items.values():
        if entry.get("status") in ("success", "partial"):
            entry.update(status="failure", error=why)


def _one_error(failures: list[BaseException]) -> BaseException:
    """The run's error: the only failure itself (its type and exit code), or all of them in one line
    (of their type when they share one, so the record's error_kind still names the cause).

    The same error met by several jobs (a wrong password, an unreachable repository) is said once.
    """
    failures = list({str(f): f for f in failures}.values())
    if len(failures) == 1:
        return failures[0]
    codes = {getattr(f, "exit_code", 1) for f in failures}
    kinds = {type(f) for f in failures}
    kind = kinds.pop() if len(kinds) == 1 and issubclass(next(iter(kinds)), VhError) else VhError
    error = kind("; ".join(str(f) for f in failures))
    if len(codes) == 1:
        error.exit_code = codes.pop()
    return error


def _add_snapshot(record, result) -> None:
    record.snapshot_ids.append(result.snapshot_id)
    record.bytes_added += result.data_added
    record.bytes_total += result.total_bytes


def copy_run(ctx: Context, record) -> dict[str, str]:
    """``restic copy`` of exactly this run's snapshots from the primary to each copy; {"copy <name>": why} failed.

    The dumps are made once, on the primary; a copy receives the very
    snapshots (tags kept) and is proven to hold one snapshot of this run for
    each of them. A copy that fails leaves the run partial, never failed:
    the primary holds the run.
    """
    failed: dict[str, str] = {}
    ids = list(record.snapshot_ids)
    if not ids or not ctx.policy.copies:
        return failed
    record.details["copies"] = {}
    for repo in ctx.policy.copies:
        try:
            target = ctx.restic_for(repo.name)
            target.copy_from(ctx.policy.repository, ids)
            copied = target.snapshots(tags=(f"run:{ctx.run_id}",), damaged_ok=True)
            if len(copied) < len(ids):
                raise VhError(f"the copy holds {len(copied)} of the run's {len(ids)} snapshot(s)")
            copy_ids = [s.id for s in copied]
            log.info("copied %d snapshot(s) of run %s to repository %s (%s)", len(ids), ctx.run_id, repo.name,
                     display_url(repo.url))
            record.details["copies"][repo.name] = {"status": "success", "snapshot_ids": copy_ids}
            state.record_copy(ctx.policy.state_dir, repo.name, ctx.run_id, record.started, True, None, copy_ids)
        except Interrupted:
            raise
        except VhError as exc:
            why = str(exc)
            log.warning("copy to repository %s failed: %s", repo.name, why)
            failed[f"copy {repo.name}"] = why
            record.details["copies"][repo.name] = {"status": "failure", "error": why}
            try:
                state.record_copy(ctx.policy.state_dir, repo.name, ctx.run_id, record.started, False,
                                  state.redact(why, state.secrets_of(ctx.policy)), [])
            except OSError as err:
                log.error("could not record the copy to %s: %s", repo.name, err.strerror or err)
    return failed


def verify_run(ctx: Context, record) -> None:
    """Prove the run's snapshots are stored, intact: by hashing them where the backend allows, else one restic call."""
    ids = backend.prove(ctx.policy.repository, record.snapshot_ids)
    if ids is None:
        listed = ctx.restic.snapshots(tags=(f"run:{ctx.run_id}",), damaged_ok=True)
        ids = []
        for snap_id in record.snapshot_ids:
            match = next((s for s in listed if s.id.startswith(snap_id)), None)
            if match is None:
                raise VhError(f"verification failed: snapshot {snap_id[:8]} of run {ctx.run_id} is not in the "
                              f"repository")
            ids.append(match.id)
    full = dict(zip(record.snapshot_ids, ids))
    record.snapshot_ids = ids
    for entry in record.items.values():
        if entry.get("snapshot_id") in full:
            entry["snapshot_id"] = full[entry["snapshot_id"]]
    log.info("verified: %d snapshot(s) of run %s are stored intact", len(ids), ctx.run_id)
