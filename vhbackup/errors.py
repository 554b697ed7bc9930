"""Exceptions that end a run, each carrying the exit code the CLI returns.

Every failure a user can cause or meet is one of these, raised with a
one-line message that says what is wrong and how to fix it. ``cli.main``
prints the message and returns the code; nothing else turns errors into
exit codes.
"""

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_LOCKED = 75
EXIT_CONFIG = 78


class VhError(Exception):
    """A failure with a user-facing one-line message and an exit code."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(VhError):
    exit_code = EXIT_USAGE


class PolicyError(VhError):
    """Invalid policy or credentials (exit 78, EX_CONFIG)."""

    exit_code = EXIT_CONFIG


class LockHeld(VhError):
    """Another vhbackup run holds the lock (exit 75, EX_TEMPFAIL)."""

    exit_code = EXIT_LOCKED


class ResticError(VhError):
    """restic failed; the message is already translated for the user."""


class DumpError(VhError):
    """A database dump or restore tool failed."""
