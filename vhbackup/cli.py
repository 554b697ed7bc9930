"""Command line: global options, the policy, and one module per command.

Each module in ``vhbackup.commands`` exposes ``NAME``, ``add_arguments(parser)``
(which may return nested parsers that take the global options too) and
``run(ctx, args) -> int``; its flags live next to the code that uses them,
its help line in ``commands.COMMANDS``. Only the module of the command
being run is imported. This module turns every ``VhError`` into its
one-line message and exit code; a command module may answer errors itself
with ``on_error(exc) -> int`` (``status`` answers in Nagios terms).
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
from vhbackup.errors import EXIT_FAILURE, Interrupted, VhError
from vhbackup.policy import DEFAULT_POLICY, load_policy
from vhbackup.quantities import parse_duration

log = logging.getLogger("vhbackup")

EPILOG = """exit codes: 0 success, 1 failure, 2 usage error, 3 backup done but some files or paths missing,
75 busy (another vhbackup run or a live restic lock), 78 invalid policy or credentials.
See vhbackup(8)."""


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


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, the other commands get a help line but no arguments (nothing imported)."""
    parser = argparse.ArgumentParser(prog="vhbackup", description="Server backups with restic.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"vhbackup {__version__}")
    add_global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, text in COMMANDS.items():
        cmd = sub.add_parser(name, help=text, description=text, epilog=EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        if only is not None and name != only:
            cmd.set_defaults(module=None)
            continue
        module = import_module(f"vhbackup.commands.{name.replace('-', '_')}")
        add_global_options(cmd, suppress=True)
        for nested in module.add_arguments(cmd) or ():
            add_global_options(nested, suppress=True)
        cmd.set_defaults(module=module)
    return parser


def _command_in(argv: list[str]) -> str | None:
    """The command name in ``argv`` (the first word that is one and is not the value of -c/--config)."""
    for i, word in enumerate(argv):
        if word in COMMANDS and (i == 0 or argv[i - 1] not in ("-c", "--config")):
            return word
    return None


def parse(argv: list[str]) -> argparse.Namespace:
    argv = _bare_wait(argv)
    args = build_parser(only=_command_in(argv)).parse_args(argv)
    if args.module is None:  # the guess was wrong (an odd argv): build everything
        args = build_parser().parse_args(argv)
    return args


def _dry_run_from_env() -> bool:
    return os.environ.get("DRY_RUN", "").strip().lower() in ("1", "true", "yes", "on")


def _on_sigterm(signum, frame):
    raise Interrupted(f"stopped by {signal.Signals(signum).name}")


def _remove_stale_restic_locks(ctx) -> None:
    """After an interrupted run, remove restic locks whose process is gone.

    restic 0.14 writes its lock about 200 ms before it arranges to remove it
    on SIGINT; a stop in that window leaves a stale lock that would block
    the next run. ``restic unlock`` removes only locks of dead processes.
    """
    if ctx is None:
        return
    for restic in list(getattr(ctx, "_restics", {}).values()):  # every repository this run opened (copies too)
        try:
            restic.unlock()
        except (VhError, KeyboardInterrupt) as exc:
            log.warning("could not remove stale restic locks in repository %s (%s); run 'vhbackup unlock'",
                        restic.repo.name, exc)


def _bare_wait(argv: list[str]) -> list[str]:
    """``--wait COMMAND``: argparse would take the command for --wait's optional value; give it the default."""
    out = list(argv)
    for i in range(len(out) - 1, -1, -1):
        if out[i] == "--wait" and i + 1 < len(out) and out[i + 1] in COMMANDS:
            out.insert(i + 1, "1h")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    vlog.setup(verbose=args.verbose, quiet=args.quiet)
    signal.signal(signal.SIGTERM, _on_sigterm)
    config = args.config or os.environ.get("VHBACKUP_CONFIG") or DEFAULT_POLICY
    module = args.module
    ctx = None
    try:
        from vhbackup.context import Context

        # a command may answer without the policy (config check --if-configured, status while unconfigured)
        before_policy = getattr(module, "before_policy", None)
        if before_policy is not None and (code := before_policy(config, args)) is not None:
            return code
        policy = load_policy(config, repository_credentials=getattr(module, "OPENS_REPOSITORY", True))
        for warning in policy.warnings:
            log.warning(warning)
        ctx = Context(policy=policy, dry_run=getattr(args, "dry_run", False) or _dry_run_from_env(),
                      verbose=args.verbose, quiet=args.quiet, wait=args.wait)
        return module.run(ctx, args)
    except VhError as exc:
        if hasattr(module, "on_error"):
            return module.on_error(exc)
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
        if hasattr(module, "on_error"):
            return module.on_error(exc)
        if not getattr(exc, "reported", False):
            log.error("%s", f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else exc)
        return EXIT_FAILURE
