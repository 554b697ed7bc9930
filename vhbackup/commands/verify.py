"""vhbackup verify (arrives with its issue; this module only reserves the name)."""

from vhbackup.errors import VhError

NAME = "verify"
HELP = "verify (not available in this build yet)"


def add_arguments(parser) -> None:
    parser.add_argument("rest", nargs="*")


def run(ctx, args) -> int:
    raise VhError("vhbackup verify is not available in this build yet")
