"""vhbackup ls: what a backup run holds under a path (type, mode, size, mtime, path).

RUN is a run id as ``restore --list`` shows it (or a unique prefix of one of
its snapshot ids, or ``latest``, the default). PATH is a literal absolute
path (never a pattern); without it, the paths the run saved and its
databases. ``db:NAME`` shows one database item.
"""

from __future__ import annotations

import json

from vhbackup import browse, runs
from vhbackup.context import Context
from vhbackup.errors import EXIT_OK

NAME = "ls"


def add_arguments(parser) -> None:
    parser.add_argument("run", nargs="?", metavar="RUN",
                        help="a run id from 'restore --list' (default: latest)")
    parser.add_argument("path", nargs="?", metavar="PATH",
                        help="a literal absolute path in the run, or db:NAME (default: what the run saved)")
    parser.add_argument("-R", "--recursive", action="store_true", help="everything below PATH, not only its children")
    parser.add_argument("--json", action="store_true", help="print a JSON object")


def run(ctx: Context, args) -> int:
    ref, path = args.run, args.path
    if path is None and ref is not None and (ref.startswith("/") or ref.startswith("db:")):
        ref, path = None, ref
    if ref is not None and ref != "latest":
        runs.validate_ref(ref)
    if path is not None and not path.startswith("db:"):
        path = browse.normalize(path)
    run_ = runs.pick(runs.group(ctx.restic.snapshots(damaged_ok=True)), ref)
    items = browse.ls(ctx.restic, run_, path, recursive=args.recursive)
    if args.json:
        print(json.dumps({"run": run_.id, "time": run_.time.isoformat(), "host": run_.host, "path": path,
                          "items": [i.as_json() for i in items]}, indent=2, ensure_ascii=False))
        return EXIT_OK
    print(f"run {run_.id} ({browse.human_time(run_.time)}, host {run_.host})")
    print(f"{'TYPE':<8} {'MODE':<10} {'SIZE':>12}  {'MTIME':<19}  PATH")
    for i in items:
        print(browse.line(i))
    return EXIT_OK
