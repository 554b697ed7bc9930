"""Key rotation: a new restic key with a generated password replaces the old one, safely at every step.

The password file ``P`` is rotated with two files beside it, both 0600 and
owned like ``P``, each written to a temporary name, fsynced and renamed:

- ``P.old``, the side file: the old password, written first and removed last;
- ``P.new``: the new password, handed to ``restic key add --new-password-file``.

Steps (each is a name ``on_step`` receives after it is done)::

    side-file        P.old = old password          P opens
    new-file         P.new = new password          P opens
    key-added        restic key add (opened by P)  P and P.new open
    new-key-proven   restic key list opened by P.new finds the new key as current
    replaced         rename P.new -> P             P (new) and P.old (old) open
    old-key-removed  restic key remove OLD (opened by the new P)
    done             P.old removed

Killed anywhere, ``P`` or ``P.old`` still opens the repository, and the next
``rotate`` sees ``P.old`` and finishes: while ``P`` still holds the old
password (the rename did not happen) it continues with ``P.new`` if that
opens the repository, else starts again from a new password; once ``P``
holds the new one it removes the key that ``P.old`` opens, then ``P.old``.
Passwords travel in files only, never on a command line, in a log or in a
record.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from typing import Callable

from vhbackup import credentials, state
from vhbackup.errors import UsageError, VhError, WrongPassword
from vhbackup.restic import Key, Restic

log = logging.getLogger("vhbackup")

STEPS = ("side-file", "new-file", "key-added", "new-key-proven", "replaced", "old-key-removed", "done")
#: ``secrets.token_urlsafe(33)``: 44 characters, 264 random bits.
PASSWORD_BYTES = 33
KEY_USER = "vhbackup"


@dataclass(frozen=True)
class Rotation:
    old_key: str | None  # None: the old key was already gone (an earlier, interrupted rotation removed it)
    new_key: str
    resumed: bool        # an interrupted rotation was finished


def side_file(password_file: str) -> str:
    return _real(password_file) + ".old"


def new_file(password_file: str) -> str:
    return _real(password_file) + ".new"


def _real(path: str) -> str:
    """The file a symlinked password file points to: that one is replaced, the link stays."""
    return os.path.realpath(path)


def list_keys(restic: Restic) -> list[Key]:
    return restic.keys()


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip("\r\n")
    except FileNotFoundError:
        return None


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_secret(path: str, text: str, like: str) -> None:
    """``text`` into ``path``: mode 0600, owned like ``like``, fsynced, renamed into place, directory fsynced."""
    st = os.stat(like)
    state.write_text_atomic(path, text + "\n", mode=0o600, owner=(st.st_uid, st.st_gid))


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    _fsync_dir(os.path.dirname(path))


def _opens(restic: Restic) -> list[Key] | None:
    """The keys, listed by a restic opened with this password; None if the password opens no key."""
    try:
        return restic.keys()
    except WrongPassword:
        return None


def _current(keys: list[Key]) -> Key:
    found = [k for k in keys if k.current]
    if len(found) != 1:
        raise VhError(f"restic key list marks {len(found)} keys as current; expected one")
    return found[0]


def check_rotatable(password_file: str, credential_source: str = credentials.SYSTEMD_CREDENTIAL_SOURCE) -> None:
    """Refuse, before anything changes, a rotation that would lock out someone who reads another file.

    Under a systemd unit the password file is systemd's read-only copy
    (``$CREDENTIALS_DIRECTORY``); the file to rotate is its source, so the
    rotation runs from a shell with the policy's password_file. And when the
    units' credential source is a separate copy of the same password, rotating
    only the policy's file would leave the units with a removed key.
    """
    if credentials.from_systemd(password_file):
        raise UsageError(f"the password file {password_file} is systemd's read-only copy of a credential; "
                         f"run 'vhbackup key rotate' from a shell (not in a unit), where it rotates the source "
                         f"file, e.g. {credential_source}")
    try:
        if not os.path.exists(credential_source) or os.path.samefile(credential_source, password_file):
            return
        old, theirs = _read(password_file), _read(credential_source)
    except OSError:  # a file this user cannot read is not the one it would rotate
        return
    if old is not None and theirs == old:
        raise UsageError(f"the systemd units load {credential_source}, a separate copy of the password in "
                         f"{password_file}; rotating only one would lock the units out: set "
                         f"repository.password_file to {credential_source} (or make one a symlink to the "
                         f"other), then rotate")


def rotate(restic: Restic, on_step: Callable[[str], None] = lambda step: None,
           credential_source: str = credentials.SYSTEMD_CREDENTIAL_SOURCE) -> Rotation:
    """Rotate the key of ``restic``'s repository and its password file; finish an interrupted rotation."""
    password_file = restic.repo.password_file
    check_rotatable(password_file, credential_source)
    real = _real(password_file)
    side, new = side_file(password_file), new_file(password_file)
    old_restic = restic.with_password_file(real)
    resumed = os.path.exists(side)
    if resumed and _read(side) != _read(real):
        log.info("finishing an interrupted key rotation: %s already holds the new password", password_file)
        return _finish(restic.with_password_file(real), restic.with_password_file(side), side, on_step)
    if resumed:
        log.info("finishing an interrupted key rotation (%s exists)", side)
    keys = _opens(old_restic)
    if keys is None:
        raise WrongPassword(f"the password in {password_file} does not open repository; nothing was changed")
    old_key = _current(keys)
    if not resumed:
        _remove(new)  # a leftover without a side file was never added as a key
        write_secret(side, _read(real) or "", like=real)
    on_step("side-file")
    new_restic = restic.with_password_file(new)
    new_keys = _opens(new_restic) if os.path.exists(new) else None
    if new_keys is None:
        write_secret(new, secrets.token_urlsafe(PASSWORD_BYTES), like=real)
        on_step("new-file")
        old_restic.key_add(new, KEY_USER)
        on_step("key-added")
        new_keys = _opens(new_restic)
        if new_keys is None:
            raise VhError(f"the new key does not open repository; {password_file} is unchanged and still "
                          f"opens it; run 'vhbackup key rotate' again")
    else:
        on_step("new-file")
        on_step("key-added")
    new_key = _current(new_keys)
    if new_key.id == old_key.id:
        raise VhError("restic reports the same key for the old and the new password; nothing was replaced")
    on_step("new-key-proven")
    os.rename(new, real)
    _fsync_dir(os.path.dirname(real))
    on_step("replaced")
    result = _finish(restic.with_password_file(real), restic.with_password_file(side), side, on_step,
                     old_key=old_key, new_key=new_key)
    return Rotation(old_key=result.old_key, new_key=result.new_key, resumed=resumed)


def _finish(new_restic: Restic, old_restic: Restic, side: str, on_step: Callable[[str], None],
            old_key: Key | None = None, new_key: Key | None = None) -> Rotation:
    """The password file holds the new password: remove the old key (opened by the side file), then the side file."""
    resumed = old_key is None
    if new_key is None:
        keys = _opens(new_restic)
        if keys is None:
            raise WrongPassword(f"the password in {new_restic.repo.password_file} does not open the repository, "
                                f"{side} holds the previous password: put it back with 'cp -p {side} "
                                f"{new_restic.repo.password_file}' and run 'vhbackup key rotate' again")
        new_key = _current(keys)
    if old_key is None:
        old_keys = _opens(old_restic)
        old_key = _current(old_keys) if old_keys is not None else None
    removed = None
    if old_key is not None and old_key.id != new_key.id:
        new_restic.key_remove(old_key.id)
        removed = old_key.id
    on_step("old-key-removed")
    _remove(side)
    on_step("done")
    return Rotation(old_key=removed, new_key=new_key.id, resumed=resumed)
