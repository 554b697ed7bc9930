"""vhbackup find: which backup runs hold files matching PATTERN, newest first, each version's size and mtime.

PATTERN is a glob on the file name as ``restic find`` takes it (``*``,
``?``, ``[...]``): the one place where vhbackup takes a pattern from the
command line on purpose. Everything else (``ls``, ``restore --path``)
takes literal paths. Paths are printed as they are.

``restic find`` walks every snapshot it is given, one after the other, so
its time grows with the history (about 20 s to 2 min for 365 runs of
20,000 files, docs/benchmarks.md). find therefore searches a window: the
newest ``--newest N`` runs (default 30), between ``--after`` and
``--before`` if given, or every run with ``--all``; only those runs'
files snapshots are handed to ``restic find`` (``--snapshot ID``). When
the window left older runs out, the output says so.
"""

from __future__ import annotations

import json
import logging

from vhbackup import browse, runs
from vhbackup.context import Context
from vhbackup.errors import EXIT_OK, NotFound, UsageError

NAME = "find"
DEFAULT_NEWEST = 30

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("pattern", metavar="PATTERN", help="a glob on the file name, as restic find takes it")
    parser.add_argument("--service", metavar="NAME", help="only this service's paths and the runs that hold them")
    parser.add_argument("--newest", metavar="N",
                        help=f"search only the newest N runs (default {DEFAULT_NEWEST}; with --after/--before: "
                             "the newest N in that time range)")
    parser.add_argument("--all", action="store_true", help="search every run (restic find over the whole history)")
    parser.add_argument("--after", metavar="TIME", help="only runs that started at or after TIME (YYYY-MM-DD[ HH:MM])")
    parser.add_argument("--before", metavar="TIME", help="only runs that started before TIME (YYYY-MM-DD[ HH:MM])")
    parser.add_argument("--json", action="store_true", help="print a JSON array")


def window(args) -> tuple[int | None, object, object]:
    """(newest N or None for every run, after, before) from the arguments; a UsageError for bad ones."""
    if args.all and args.newest is not None:
        raise UsageError("--all searches every run: it does not go with --newest")
    newest: int | None = None if args.all else DEFAULT_NEWEST
    if args.newest is not None:
        if not args.newest.isdigit() or int(args.newest) < 1:
            raise UsageError(f"--newest {args.newest!r}: expected a number of runs, 1 or more")
        newest = int(args.newest)
    after = _parse("--after", args.after) if args.after else None
    before = _parse("--before", args.before) if args.before else None
    if after is not None and before is not None and after >= before:
        raise UsageError(f"--after {args.after!r} is not earlier than --before {args.before!r}")
    return newest, after, before


def _parse(option: str, text: str):
    try:
        return runs.parse_before(text)
    except UsageError as e:
        raise UsageError(str(e).replace("--before", option, 1)) from None


def run(ctx: Context, args) -> int:
    if not args.pattern or "\0" in args.pattern:
        raise UsageError("PATTERN must be a non-empty glob without NUL characters")
    newest, after, before = window(args)
    roots = browse.service_roots(ctx.policy, args.service) if args.service else ()
    candidates = [r for r in runs.group(ctx.restic.snapshots(damaged_ok=True)) if r.files is not None]
    if args.service:
        candidates = [r for r in candidates if args.service in r.services]
    if after is not None:
        candidates = [r for r in candidates if r.time >= after]
    if before is not None:
        candidates = runs.before(candidates, before)
    searched = candidates if newest is None else candidates[:newest]
    note = None
    if len(searched) < len(candidates):
        note = (f"searched the newest {len(searched)} of {len(candidates)} runs"
                f"{' in that time range' if after or before else ''}; --all for every run")
    found = browse.find(ctx.restic, searched, args.pattern, roots,
                       by_id=newest is not None or after is not None or before is not None) if searched else []
    if args.json:
        if note:
            log.warning("%s", note)
        print(json.dumps([{"run": f.run.id, "time": f.run.time.isoformat(), "host": f.run.host,
                           "items": [i.as_json() for i in f.items]} for f in found], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not found:
        raise NotFound(f"no backup run holds a file matching {args.pattern!r}" + (f" ({note})" if note else ""))
    for f in found:
        print(f"run {f.run.id} ({browse.human_time(f.run.time)}, host {f.run.host})")
        for i in f.items:
            print("  " + browse.line(i))
    if note:
        print(note)
    return EXIT_OK
