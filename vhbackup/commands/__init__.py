"""One module per command, each with ``NAME``, ``add_arguments(parser)`` and ``run(ctx, args) -> int``.

The one-line help of each lives here, so that ``vhbackup --help`` and the
start-up of one command import no other command module. ``cli`` registers
them in this order.
"""

COMMANDS: dict[str, str] = {
    "config": "check the policy and credentials (config check)",
    "init": "create the repository if it does not exist (safe to repeat)",
    "backup": "back up files and databases now",
    "restore": "list backup runs, or restore a run's files and databases",
    "ls": "list what a backup run holds under a path (type, mode, size, mtime)",
    "find": "find which backup runs hold files matching a pattern, newest first",
    "diff": "list what was added, removed and changed between two backup runs",
    "prune": "forget and prune snapshots that the retention policy no longer keeps",
    "verify": "check the repository for damage (or one backup's content) and write a report",
    "status": "print whether the backups are healthy (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)",
    "drill": "restore test: restore the latest run into scratch space, compare it, load its databases, clean up",
    "notify": "send alerts: for a failed systemd unit (--unit), when health is not OK (--check), or a test (--test)",
    "unlock": "remove stale restic locks (only when no vhbackup or restic run is active)",
    "key": "list the repository's keys, or rotate its password (key list, key rotate)",
    "recovery-sheet": "print what a new server needs to restore from the repository (no secrets)",
    "recover": "after a killed run: start the units it stopped, record it as interrupted, remove stale locks",
}
