"""vhbackup key list | rotate: the repository's restic keys, and replacing the password with a new key.

Both take the repository as the ``Restic`` they are given (``ctx.restic``
today; a ``--repository NAME`` only has to choose another one).
"""

from __future__ import annotations

import json
import logging

from vhbackup import keys, lock, outcome
from vhbackup.context import Context
from vhbackup.restic import Restic
from vhbackup.urls import display_url

NAME = "key"
ROTATE_ACTION = "key-rotate"

log = logging.getLogger("vhbackup")


def add_arguments(parser) -> list:
    sub = parser.add_subparsers(dest="key_command", metavar="list|rotate", required=True)
    listing = sub.add_parser("list", help="list the repository's keys; * marks the one the password file opens")
    listing.add_argument("--json", action="store_true", help="print the keys as JSON")
    rotate = sub.add_parser("rotate", help="add a key with a new generated password, replace the password file, "
                                           "remove the old key (a rerun finishes an interrupted rotation)")
    rotate.add_argument("--dry-run", action="store_true", help="say what would be done, change nothing")
    return [listing, rotate]


def run(ctx: Context, args) -> int:
    if args.key_command == "list":
        return list_keys(ctx.restic, args.json)
    return rotate(ctx, ctx.restic, dry_run=ctx.dry_run)


def list_keys(restic: Restic, as_json: bool) -> int:
    found = keys.list_keys(restic)
    if as_json:
        print(json.dumps([{"id": k.id, "user": k.user, "host": k.host, "created": k.created, "current": k.current}
                          for k in found], indent=2))
        return 0
    print(f"keys of repository {display_url(restic.repo.url)} (* opens with {restic.repo.password_file}):")
    for k in found:
        print(f"{'*' if k.current else ' '} {k.short_id}  {k.user}@{k.host}  created {k.created}")
    return 0


def rotate(ctx: Context, restic: Restic, dry_run: bool = False) -> int:
    password_file = restic.repo.password_file
    side = keys.side_file(password_file)
    if dry_run:
        keys.check_rotatable(password_file)
        print(f"would add a new key to {display_url(restic.repo.url)}, write its generated password to "
              f"{password_file} (the old one kept in {side} until the end) and remove the old key")
        return 0
    with lock.held(ctx.policy.state_dir, ROTATE_ACTION, ctx.wait), \
            outcome.recorded(ctx, ROTATE_ACTION) as record:
        done = keys.rotate(restic, on_step=lambda step: log.debug("key rotation: %s", step))
        record.details.update(repository=restic.repo.name, url=display_url(restic.repo.url), old_key=done.old_key,
                              new_key=done.new_key, resumed=done.resumed)
    old = done.old_key[:8] if done.old_key else "none left (removed by the interrupted rotation)"
    log.info("key rotated: new key %s, old key %s removed; %s holds the new password: copy it off-site, the "
             "old one no longer opens the repository", done.new_key[:8], old, password_file)
    print(f"new key: {done.new_key}")
    print(f"old key: {done.old_key or 'already removed'}")
    return 0
