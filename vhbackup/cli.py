"""Command line: global options, the policy, and one module per command.

Each module in ``vhbackup.commands`` exposes ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(ctx, args) -> int``; its flags live
next to the code that uses them. This module turns every ``VhError`` into
its one-line message and exit code.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from importlib import import_module

from vhbackup import __version__
from vhbackup import log as vlog
from vhbackup.commands import COMMANDS
from vhbackup.context import Context
from vhbackup.errors import EXIT_FAILURE, VhError
from vhbackup.policy import DEFAULT_POLICY, load_policy
from vhbackup.quantities import parse_duration

log = logging.getLogger("vhbackup")

EPILOG = """exit codes: 0 success, 1 failure, 2 usage error, 3 backup done but some files unreadable,
75 another vhbackup run holds the lock, 78 invalid policy or credentials.
See vhbackup(8)."""


class Interrupted(VhError):
    """SIGTERM (systemctl stop): unwinds like Ctrl-C so that stopped units are started again."""


def _wait_seconds(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = {"default": argparse.SUPPRESS} if suppress else {}
    parser.add_argument("-c", "--config", metavar="FILE",
                        help=f"policy file (default: $VHBACKUP_CONFIG or {DEFAULT_POLICY})", **default)
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="also show restic's own output", **default)
    verbosity.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors", **default)
    parser.add_argument("--wait", metavar="SECONDS", type=_wait_seconds, nargs="?", const=3600.0,
                        help="if another run holds the lock, wait for it (default 1h) instead of exiting 75",
                        **default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vhbackup", description="Server backups with restic.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"vhbackup {__version__}")
    add_global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = import_module(f"vhbackup.commands.{name}")
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP, epilog=EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        add_global_options(cmd, suppress=True)
        module.add_arguments(cmd)
        cmd.set_defaults(module=module)
    return parser


def _dry_run_from_env() -> bool:
    return os.environ.get("DRY_RUN", "").strip().lower() in ("1", "true", "yes", "on")


def _on_sigterm(signum, frame):
    raise Interrupted(f"stopped by {signal.Signals(signum).name}")


def _remove_stale_restic_locks(ctx: Context | None) -> None:
    """After an interrupted run, remove restic locks whose process is gone.

    restic 0.14 writes its lock about 200 ms before it arranges to remove it
    on SIGINT; a stop in that window leaves a stale lock that would block
    the next run. ``restic unlock`` removes only locks of dead processes.
    """
    if ctx is None or "restic" not in vars(ctx):
        return
    try:
        ctx.restic.unlock()
    except (VhError, KeyboardInterrupt) as exc:
        log.warning("could not remove stale restic locks (%s); run 'vhbackup unlock'", exc)


def _bare_wait(argv: list[str]) -> list[str]:
    """``--wait COMMAND``: argparse would take the command for --wait's optional value; give it the default."""
    out = list(argv)
    for i in range(len(out) - 1, -1, -1):
        if out[i] == "--wait" and i + 1 < len(out) and out[i + 1] in COMMANDS:
            out.insert(i + 1, "1h")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_bare_wait(sys.argv[1:] if argv is None else argv))
    vlog.setup(verbose=args.verbose, quiet=args.quiet)
    signal.signal(signal.SIGTERM, _on_sigterm)
    config = args.config or os.environ.get("VHBACKUP_CONFIG") or DEFAULT_POLICY
    ctx = None
    try:
        # a command may answer without the policy (config check --if-configured, status while unconfigured)
        before_policy = getattr(args.module, "before_policy", None)
        if before_policy is not None and (code := before_policy(config, args)) is not None:
            return code
        policy = load_policy(config, repository_credentials=getattr(args.module, "OPENS_REPOSITORY", True))
        for warning in policy.warnings:
            log.warning(warning)
        ctx = Context(policy=policy, dry_run=getattr(args, "dry_run", False) or _dry_run_from_env(),
                      verbose=args.verbose, quiet=args.quiet, wait=args.wait)
        return args.module.run(ctx, args)
    except VhError as exc:
        if not getattr(exc, "reported", False):
            log.error("%s", exc)
        if isinstance(exc, Interrupted):
            _remove_stale_restic_locks(ctx)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        _remove_stale_restic_locks(ctx)
        return EXIT_FAILURE
    except BrokenPipeError:
        sys.stderr.close()
        return EXIT_FAILURE
    except OSError as exc:
        if not getattr(exc, "reported", False):
            log.error("%s", f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else exc)
        return EXIT_FAILURE

