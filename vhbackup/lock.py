"""One vhbackup run per repository at a time: an flock on ``state_dir/lock``.

The lock lives in the state directory, not in a runtime directory, because
systemd removes a unit's RuntimeDirectory when the unit stops, which would
let a second unit take a lock the first still holds.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from typing import Iterator

from vhbackup.errors import LockHeld, VhError


@contextmanager
def held(state_dir: str, action: str, wait: float | None = None) -> Iterator[None]:
    path = os.path.join(state_dir, "lock")
    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise VhError(f"cannot create the lock file {path}: {exc.strerror}; check state_dir") from None
    try:
        deadline = time.monotonic() + (wait or 0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if wait is None or time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").split()
                    who = f"pid {holder[0]}, {holder[1]}" if len(holder) >= 2 else "unknown pid"
                    waited = f" after waiting {wait:.0f} s" if wait else ""
                    raise LockHeld(f"another vhbackup run ({who}) holds {path}{waited}; "
                                   f"let it finish, or pass --wait SECONDS") from None
                time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
        holder = f"{os.getpid()} {action}\n".encode()
        os.pwrite(fd, holder, 0)
        os.ftruncate(fd, len(holder))
        yield
    finally:
        os.close(fd)
