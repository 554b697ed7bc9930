"""vhbackup verify: check the repository, or one backup's content, and write a report.

Default: ``restic check`` of the structure plus a slice of the data,
``--read-data-subset n/t`` with t = round(100 / verify.read_data_subset) and
n rotating by calendar day, so every pack is read once every t days.
``--quick`` checks the structure only, ``--full`` reads all data.
``--spot`` runs only the spot check (``spotcheck``: live files against the
latest backup); ``verify.spot: true`` adds it to every other mode but
``--snapshot``. A sampled file whose content differs is CRITICAL (the run
fails), a count, size or change share beyond the tolerance a WARNING (the
run is partial, exit 3); the verdict stays in ``last-spot.json`` for
``status`` until the next spot check.
``--snapshot ID`` checks content instead: a files snapshot is restored to a
scratch directory and compared with the snapshot's own listing (type, size,
mode, mtime); a database snapshot is streamed with ``restic dump`` and its
size compared. The report (Jinja2 template ``verify-report.txt.j2``) goes to
the log and to ``state_dir/reports/verify-<run>.txt``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from vhbackup import databases, lock, outcome, runs, scratch, spotcheck, state
from vhbackup.context import Context
from vhbackup.errors import EXIT_OK, EXIT_PARTIAL, Interrupted, RepositoryError, VhError
from vhbackup.quantities import format_duration, format_size
from vhbackup.restic import Snapshot
from vhbackup.urls import display_url

NAME = "verify"

log = logging.getLogger("vhbackup")

KEEP_REPORTS = 100

_CHECK_NOISE = ("using temporary cache", "create exclusive lock", "create shared lock", "load indexes",
                "check all packs", "check snapshots, trees and blobs", "read all data", "read group #",
                "no errors were found", "check successful", "[")


def add_arguments(parser) -> None:
    parser.add_argument("--repository", metavar="NAME",
                        help="read from this repository of the policy (default: the primary)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="check the structure only (no data is read)")
    mode.add_argument("--full", action="store_true", help="read and check all data (slow, downloads everything)")
    mode.add_argument("--snapshot", metavar="ID",
                      help="check this run's (or snapshot's) content by restoring it to scratch and comparing")
    mode.add_argument("--spot", action="store_true",
                      help="only the spot check: each service's live files against its latest backup "
                           "(count, size, and the content of a random sample of unchanged files)")


@dataclass
class SnapshotCheck:
    id: str
    kind: str  # files | database
    what: str
    entries: int = 0
    bytes: int = 0
    differences: list[str] = field(default_factory=list)


def subset(percent: float, today: date | None = None) -> str:
    """The day's slice ``n/t``: over t consecutive days every pack is read once."""
    total = max(1, round(100 / percent))
    day = (today or date.today()).toordinal()
    return f"{day % total + 1}/{total}"


def check_args(ctx: Context, args) -> tuple[list[str], str]:
    if args.quick:
        return [], "structure only (--quick)"
    if args.full:
        return ["--read-data"], "structure and all data (--full)"
    percent = ctx.policy.verify.read_data_subset
    if percent >= 100:
        return ["--read-data"], "structure and all data (verify.read_data_subset is 100%)"
    part = subset(percent)
    return ["--read-data-subset", part], (f"structure and data slice {part} "
                                          f"(verify.read_data_subset {percent:g}%, rotating daily)")


def findings(output: str) -> list[str]:
    """The lines of ``restic check`` output that report something, without progress and chatter."""
    out = []
    for line in output.splitlines():
        text = line.strip()
        if text and not text.lower().startswith(_CHECK_NOISE):
            out.append(text)
    return out


def _damage(lines: list[str]) -> str:
    for line in lines:
        if not line.startswith("Fatal:"):
            return line
    return lines[0] if lines else "restic check reported errors without details"


# --- content checks ----------------------------------------------------------------

def check_files(ctx: Context, snap: Snapshot) -> SnapshotCheck:
    for problem in scratch.clean_leftovers(ctx.policy, databases.drop_database):
        log.warning("%s", problem)
    target = scratch.directory(ctx.policy, NAME, ctx.run_id)
    try:
        result = scratch.restore_and_compare(ctx, snap.id, target)
    finally:
        if (error := scratch.remove(target)) is not None:
            log.warning("%s", error)
    return SnapshotCheck(snap.id, "files", ", ".join(snap.paths), result.entries, result.bytes, result.differences)


def check_database(ctx: Context, snap: Snapshot) -> SnapshotCheck:
    """Stream each dump file of the snapshot: its length against the listing, and whether it looks whole."""
    name = snap.tag_value("db") or "?"
    result = SnapshotCheck(snap.id, "database", name)
    try:
        eng = databases.engine(ctx.policy.database(name))
    except KeyError:
        eng = None  # no longer in the policy: the engine is unknown, the size still says something
    for node in ctx.restic.ls(snap.id):
        if node.get("type") != "file":
            continue
        pumped = ctx.restic.dump(snap.id, node["path"], None, on_chunk=lambda chunk: None)
        count = pumped.stream.bytes
        result.entries += 1
        result.bytes += count
        why = eng.incomplete(os.path.basename(node["path"]), pumped.stream.head, pumped.stream.tail) \
            if eng is not None and count else None
        if count != node.get("size", 0):
            result.differences.append(f"size differs for {node['path']!r}: listed {node.get('size', 0)}, "
                                      f"dump gave {count} bytes")
        elif count == 0:
            result.differences.append(f"{node['path']!r} is empty: the dump holds no data")
        elif why:
            result.differences.append(f"{node['path']!r} does not look whole: {why}")
    if result.entries == 0:
        result.differences.append("the snapshot holds no dump file")
    return result


def _check_snapshot(ctx: Context, snap: Snapshot) -> SnapshotCheck:
    """A failure to read the snapshot back is a finding for the report, not a crash.

    Not when the repository could not be used at all (locked, unreachable,
    wrong password): that says nothing about the snapshot and ends the run.
    """
    try:
        return check_database(ctx, snap) if snap.tag_value("db") else check_files(ctx, snap)
    except (RepositoryError, Interrupted):
        raise
    except VhError as exc:
        kind = "database" if snap.tag_value("db") else "files"
        what = snap.tag_value("db") or ", ".join(snap.paths)
        return SnapshotCheck(snap.id, kind, what, differences=[f"cannot read it back: {exc}"])


def _chosen_snapshots(ctx: Context, ref: str) -> tuple[runs.Run, list[Snapshot]]:
    run = runs.find(runs.group(ctx.restic.snapshots()), ref)
    if ref == run.id:
        return run, list(run.snapshots)
    return run, [s for s in run.snapshots if s.id.startswith(ref.lower())]


# --- the report ----------------------------------------------------------------------

def render(values: dict) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).resolve().parent.parent / "templates")),
        autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        trim_blocks=True, lstrip_blocks=True)
    env.filters["size"] = format_size
    env.filters["duration"] = format_duration
    return env.get_template("verify-report.txt.j2").render(values)


def write_report(ctx: Context, text: str) -> str:
    directory = os.path.join(ctx.policy.state_dir, "reports")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, f"verify-{ctx.run_id}.txt")
    state.write_text_atomic(path, text)
    old = sorted(f for f in os.listdir(directory) if f.startswith("verify-") and f.endswith(".txt"))
    for name in old[:-KEEP_REPORTS]:
        os.unlink(os.path.join(directory, name))
    return path


def run(ctx: Context, args) -> int:
    ctx.choose_repository(args.repository, fall_back=False)
    with lock.held(ctx.policy.state_dir, NAME, ctx.wait), outcome.recorded(ctx, NAME) as record:
        clock = time.monotonic()
        values = {"host": ctx.policy.host, "run_id": ctx.run_id,
                  "started": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
                  "repository": display_url(ctx.policy.repository.url),
                  "restic_version": str(ctx.restic.version), "checks": [], "findings": [], "notes": []}
        if args.snapshot:
            run_, snaps = _chosen_snapshots(ctx, runs.validate_ref(args.snapshot))
            values["mode"] = f"content of run {run_.id} ({run_.time.astimezone():%Y-%m-%d %H:%M:%S})"
            checks = [_check_snapshot(ctx, s) for s in snaps]
            values["checks"] = checks
            problems = [f"snapshot {c.id[:8]} ({c.what}): {d}" for c in checks for d in c.differences]
            record.snapshot_ids = [s.id for s in snaps]
            record.details["run"] = run_.id
        elif not args.spot:
            extra, values["mode"] = check_args(ctx, args)
            result = ctx.restic.check(*extra)
            output = "\n".join(part for part in (result.stdout, result.stderr) if part)
            values["notes"] = [ln.strip() for ln in output.splitlines() if ln.strip().startswith("read group")]
            problems = findings(output) if result.returncode != 0 else []
            if result.returncode != 0 and not problems:
                problems = ["restic check failed without naming the damage; run it with -v"]
        else:
            values["mode"], problems = "spot check (--spot)", []
        spots = None
        if args.spot or (ctx.policy.verify.spot and not args.snapshot and not problems):
            if not args.spot:
                values["mode"] += " and spot check (verify.spot)"
            spots = spot_check(ctx, record)
            values["notes"] += spotcheck.summary_lines(spots)
            problems += [f"spot check of {s.service}: {p}" for s in spots for p in s.critical]
        values["findings"] = problems
        values["spot_only"] = spots is not None and all(p.startswith("spot check of ") for p in problems)
        values["ok"] = not problems
        values["duration"] = time.monotonic() - clock
        text = state.redact(render(values), state.secrets_of(ctx.policy))
        path = write_report(ctx, text)
        record.details.update(mode=values["mode"], report=path, errors_found=len(problems))
        log.info("%s", text.rstrip("\n"))
        if problems:
            what = "the spot check found files that differ from the backup" if spots is not None \
                else "verify found damage"
            raise VhError(f"{what}: {_damage(problems)}; full report: {path}")
        warnings = [f"spot check of {s.service}: {p}" for s in spots or () for p in s.warnings]
        if warnings:
            record.status = "partial"
            record.error = "; ".join(warnings)
            log.warning("verify passed, but %s; report: %s", record.error, path)
            return EXIT_PARTIAL
        log.info("verify passed: %s; report: %s", values["mode"], path)
    return EXIT_OK


def spot_check(ctx: Context, record) -> list[spotcheck.ServiceSpot]:
    """Run the spot check, keep its verdict in ``last-spot.json`` (until the next one) and in the record."""
    spots = spotcheck.check(ctx)
    level = (spotcheck.CRITICAL if any(s.level == spotcheck.CRITICAL for s in spots) else
             spotcheck.WARNING if any(s.level == spotcheck.WARNING for s in spots) else spotcheck.OK)
    verdict = {"run_id": ctx.run_id, "started": record.started, "level": level,
               "problems": [f"{s.service}: {p}" for s in spots for p in s.critical + s.warnings],
               "services": [s.as_json() for s in spots]}
    verdict = state.redact(verdict, state.secrets_of(ctx.policy))
    record.details["spot"] = {"level": level, "services": verdict["services"]}
    try:
        state.write_json_atomic(state.spot_path(ctx.policy.state_dir), verdict)
    except OSError as exc:
        log.error("could not write %s: %s", state.spot_path(ctx.policy.state_dir), exc.strerror or exc)
    for s in spots:
        (log.error if s.level == spotcheck.CRITICAL else log.warning if s.level == spotcheck.WARNING
         else log.info)("spot check of %s: %s", s.service, "; ".join(s.critical + s.warnings) or "as backed up")
    return spots
