"""vhbackup status: the health check for admins and monitoring (Nagios/Icinga plugin conventions).

It reads only the state records in ``state_dir`` (see ``vhbackup.health``),
so it needs no repository access, no password and no restic, and answers at
once. Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
"""

from __future__ import annotations

import json

from vhbackup import health
from vhbackup.context import Context
from vhbackup.policy import is_template

NAME = "status"
OPENS_REPOSITORY = False  # status reads only state_dir


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the facts as a JSON object")


def before_policy(path: str, args) -> int | None:
    """UNKNOWN "not configured yet" while the policy is the commented-out template, not a policy error."""
    if not is_template(path):
        return None
    result = health.Health(health.UNKNOWN, health.CODES[health.UNKNOWN],
                           f"UNKNOWN: not configured yet: {path} sets nothing (see its comments)",
                           {"configured": False, "policy": path, "problems": ["not configured yet"]})
    print(json.dumps(result.as_json(), indent=2, sort_keys=True) if args.json else result.summary)
    return result.code


def run(ctx: Context, args) -> int:
    try:
        result = health.evaluate(ctx.policy)
    except Exception as exc:  # a monitoring plugin must answer UNKNOWN, not crash
        result = health.unknown(f"cannot evaluate the backup state: {type(exc).__name__}: {exc}")
    if args.json:
        print(json.dumps(result.as_json(), indent=2, sort_keys=True, default=str))
    else:
        print(result.summary)
    return result.code


def on_error(exc: BaseException) -> int:
    """A broken policy (or anything else that stops status) is UNKNOWN to monitoring, never exit 78."""
    result = health.unknown(str(exc))
    print(result.summary)
    return result.code
