"""Exceptions that end a run, each carrying the exit code the CLI returns.

Every failure a user can cause or meet is one of these, raised with a
one-line message that says what is wrong and how to fix it. ``cli.main``
prints the message and returns the code; nothing else turns errors into
exit codes.

Failure kinds are types, decided once where the failure is seen (restic's
answers in ``restic.classify``, the backends' in ``backend``): callers
branch on ``isinstance``, never on message text.
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
    #: False for errors that mean "nothing was attempted" (bad arguments): such a
    #: run leaves no record in state_dir, so it cannot hide the last real one.
    recorded = True

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(VhError):
    exit_code = EXIT_USAGE
    recorded = False


class NotFound(VhError):
    """A run, snapshot or file that the command line asked for does not exist (nothing was changed)."""

    recorded = False


class PolicyError(VhError):
    """Invalid policy or credentials (exit 78, EX_CONFIG)."""

    exit_code = EXIT_CONFIG


class LockHeld(VhError):
    """Another vhbackup run holds the lock (exit 75, EX_TEMPFAIL)."""

    exit_code = EXIT_LOCKED


class Interrupted(VhError):
    """SIGTERM (systemctl stop) or SIGINT: unwinds so that stopped units are started again."""


class ResticError(VhError):
    """restic failed; the message is already translated for the user."""


class RepositoryError(ResticError):
    """The repository could not be used at all; nothing was read or written."""


class RepositoryMissing(RepositoryError):
    """No repository at the URL (create it with ``vhbackup init``)."""


class WrongPassword(RepositoryError):
    """The password does not open the repository."""

    exit_code = EXIT_CONFIG


class AccessDenied(RepositoryError):
    """The storage server refused the credentials (HTTP 401/403, S3 keys, SSH keys)."""

    exit_code = EXIT_CONFIG


class HostKeyMismatch(AccessDenied):
    """The ssh server's host key is not the one pinned in known_hosts (changed, or never pinned)."""


class DeleteRefused(AccessDenied):
    """The storage refused to delete (an append-only server): forget and prune must run elsewhere."""


class RepositoryFull(ResticError):
    """The storage has no room left (disk full, quota reached): the write failed, nothing was saved."""


class ResticStuck(ResticError):
    """restic had read everything, then did nothing for ``repository.timeout``: stopped, nothing was saved."""


class RepositoryLocked(RepositoryError):
    """A live restic process (here or on another host) holds the repository lock: busy, retry later."""

    exit_code = EXIT_LOCKED


class RepositoryUnreachable(RepositoryError):
    """The storage server did not answer (network, DNS, TLS), or not within the policy's bound."""


class RepositoryDamaged(ResticError):
    """``restic check`` (or reading data back) found damage."""


class DumpError(VhError):
    """A database dump or restore tool failed."""


class StateError(VhError):
    """vhbackup cannot record or read its state in state_dir."""
