"""vhbackup notify (arrives with its issue; this module only reserves the name)."""

from vhbackup.errors import VhError

NAME = "notify"
HELP = "notify (not available in this build yet)"


def add_arguments(parser) -> None:
    parser.add_argument("rest", nargs="*")


def run(ctx, args) -> int:
    raise VhError("vhbackup notify is not available in this build yet")
