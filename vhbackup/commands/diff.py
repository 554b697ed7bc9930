"""vhbackup diff: what changed between two backup runs: entries added, removed, and changed (in what).

Compares the two runs' files listings (one ``restic find --json *`` over
both: type, mode, size, mtime, link target) and takes content changes from ``restic diff
--json``; databases are items ``db:NAME`` (added, removed, content
changed). A directory whose only change is its mtime is not listed: that
follows from the entries added or removed inside it.
"""

from __future__ import annotations

import json

from vhbackup import browse, runs
from vhbackup.context import Context
from vhbackup.errors import EXIT_OK

NAME = "diff"

SIGN = {"added": "+", "removed": "-", "changed": "M"}


def add_arguments(parser) -> None:
    parser.add_argument("first", metavar="RUN_A", help="the older run (a run id from 'restore --list')")
    parser.add_argument("second", metavar="RUN_B", help="the newer run (or 'latest')")
    parser.add_argument("--service", metavar="NAME", help="only this service's paths and databases")
    parser.add_argument("--json", action="store_true", help="print a JSON object")


def run(ctx: Context, args) -> int:
    for ref in (args.first, args.second):
        if ref != "latest":
            runs.validate_ref(ref)
    roots: tuple[str, ...] = ()
    dbs = None
    if args.service:
        roots = browse.service_roots(ctx.policy, args.service)
        dbs = () if args.service == "system" else ctx.policy.service(args.service).databases
    all_runs = runs.group(ctx.restic.snapshots(damaged_ok=True))
    first, second = runs.pick(all_runs, args.first), runs.pick(all_runs, args.second)
    changes = browse.diff(ctx.restic, first, second, roots, dbs)
    if args.json:
        print(json.dumps({"from": first.id, "to": second.id, "changes": [c.as_json() for c in changes]},
                         indent=2, ensure_ascii=False))
        return EXIT_OK
    print(f"from run {first.id} ({browse.human_time(first.time)}) to run {second.id} "
          f"({browse.human_time(second.time)})")
    for c in changes:
        what = f"  ({', '.join(c.what)})" if c.what else ""
        print(f"{SIGN[c.kind]} {c.path}{what}")
    counts = {k: sum(1 for c in changes if c.kind == k) for k in SIGN}
    print(f"{counts['added']} added, {counts['removed']} removed, {counts['changed']} changed")
    return EXIT_OK
