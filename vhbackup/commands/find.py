"""vhbackup find: which backup runs hold files matching PATTERN, newest first, each version's size and mtime.

PATTERN is a glob on the file name as ``restic find`` takes it (``*``,
``?``, ``[...]``): the one place where vhbackup takes a pattern from the
command line on purpose. Everything else (``ls``, ``restore --path``)
takes literal paths. Paths are printed as they are.
"""

from __future__ import annotations

import json

from vhbackup import browse, runs
from vhbackup.context import Context
from vhbackup.errors import EXIT_OK, NotFound

NAME = "find"


def add_arguments(parser) -> None:
    parser.add_argument("pattern", metavar="PATTERN", help="a glob on the file name, as restic find takes it")
    parser.add_argument("--service", metavar="NAME", help="only this service's paths and the runs that hold them")
    parser.add_argument("--json", action="store_true", help="print a JSON array")


def run(ctx: Context, args) -> int:
    roots = browse.service_roots(ctx.policy, args.service) if args.service else ()
    all_runs = runs.group(ctx.restic.snapshots())
    if args.service:
        all_runs = [r for r in all_runs if args.service in r.services]
    found = browse.find(ctx.restic, all_runs, args.pattern, roots)
    if args.json:
        print(json.dumps([{"run": f.run.id, "time": f.run.time.isoformat(), "host": f.run.host,
                           "items": [i.as_json() for i in f.items]} for f in found], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not found:
        raise NotFound(f"no backup run holds a file matching {args.pattern!r}")
    for f in found:
        print(f"run {f.run.id} ({browse.human_time(f.run.time)}, host {f.run.host})")
        for i in f.items:
            print("  " + browse.line(i))
    return EXIT_OK
