"""Credential files: where the restic password comes from, and who may read it.

A credential file must be owned by root or by the user running vhbackup and
be neither readable nor writable by group or other. Nothing here logs or
returns a secret except ``read_env_file`` and ``read_secret``, whose callers
hand the values to child processes only through their environment.
"""

from __future__ import annotations

import os
import re
import stat

from vhbackup.errors import PolicyError

SYSTEMD_CREDENTIAL = "restic-password"
#: The file the shipped units hand to vhbackup with ``LoadCredential=restic-password:...``.
SYSTEMD_CREDENTIAL_SOURCE = "/etc/vhbackup/credentials/restic-password"
MIN_PASSWORD_LENGTH = 32
_ENV_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def restic_password_file(configured: str | None) -> str | None:
    """The password file to use: systemd's credential when present, else the policy's."""
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        candidate = os.path.join(cred_dir, SYSTEMD_CREDENTIAL)
        if os.path.exists(candidate):
            return candidate
    return configured


def from_systemd(path: str) -> bool:
    """``path`` is systemd's read-only copy of a credential (below ``$CREDENTIALS_DIRECTORY``)."""
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    return bool(cred_dir) and os.path.dirname(os.path.abspath(path)) == os.path.abspath(cred_dir)


def check_secret_file(path: str, min_length: int = 1, one_line: bool = True) -> list[str]:
    """Refuse a missing, empty, multi-line or too-open credential file; return warnings.

    ``one_line``: the secret is the file's only line. A second line would be
    read differently by different tools (restic takes the whole file, the
    database clients the first line) and could not be reliably redacted.
    ``min_length=0, one_line=False`` checks ownership and mode only (env files).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise PolicyError(f"credential file {path} does not exist; create it with mode 600, "
                          f"e.g. (umask 077; openssl rand -base64 33 > {path})") from None
    except PermissionError:
        raise PolicyError(f"credential file {path} is not readable by this user (uid {os.geteuid()})") from None
    if not stat.S_ISREG(st.st_mode):
        raise PolicyError(f"credential file {path} is not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise PolicyError(f"credential file {path} has mode {mode:04o}, readable or writable by others; "
                          f"fix: chmod 600 {path}")
    if st.st_uid not in (0, os.geteuid()):
        raise PolicyError(f"credential file {path} is owned by uid {st.st_uid}, not root; "
                          f"fix: chown root: {path}")
    if not (min_length or one_line):
        return []
    try:
        with open(path, "rb") as fh:
            content = fh.read(65537).strip(b"\r\n")
    except OSError as exc:
        raise PolicyError(f"credential file {path} cannot be read: {exc.strerror}") from None
    if not content.strip():
        raise PolicyError(f"credential file {path} is empty; put the secret in it, on one line")
    if one_line and (b"\n" in content or b"\r" in content):
        raise PolicyError(f"credential file {path} has more than one line; put only the secret in it, "
                          f"on one line")
    if len(content) < min_length:
        return [f"password in {path} is shorter than {min_length} characters; "
                f"a longer one (e.g. from 'openssl rand -base64 33') is safer"]
    return []


def check_password_file(path: str) -> list[str]:
    return check_secret_file(path, min_length=MIN_PASSWORD_LENGTH)


def read_secret(path: str) -> str:
    """The first line of a credential file (already checked by the policy loader)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"credential file {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None


def read_env_file(path: str) -> dict[str, str]:
    """KEY=value lines (blank lines and '#' comments allowed, optional quotes)."""
    check_secret_file(path, min_length=0, one_line=False)
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"env file {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    env: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ENV_LINE.match(stripped)
        if not match:
            raise PolicyError(f"env file {path}:{number}: expected KEY=value, got a malformed line")
        value = match.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[match.group(1)] = value
    return env
