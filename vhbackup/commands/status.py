"""vhbackup status (arrives with its issue; this module only reserves the name)."""

from vhbackup.errors import VhError

NAME = "status"
HELP = "status (not available in this build yet)"


def add_arguments(parser) -> None:
    parser.add_argument("rest", nargs="*")


def run(ctx, args) -> int:
    raise VhError("vhbackup status is not available in this build yet")
