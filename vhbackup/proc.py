"""The one place where vhbackup starts child processes.

Every child gets an argv list (never a shell string) and an explicit
environment; secrets travel in that environment or in files, never in argv.
A program that is not installed becomes a one-line error naming the Debian
package to install. Exit statuses are described here (``describe_exit``);
what a given status means for restic or a dump tool is decided by the
module that owns that tool.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from typing import IO, Callable, Iterable, Mapping, Sequence

from vhbackup.errors import VhError

log = logging.getLogger("vhbackup")

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL

#: Variables a child must never inherit from vhbackup's own environment: they
#: would silently override the policy (which repository, which password).
_SCRUBBED = (
    "RESTIC_REPOSITORY", "RESTIC_REPOSITORY_FILE", "RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE",
    "RESTIC_PASSWORD_COMMAND", "RESTIC_CACHE_DIR", "RESTIC_COMPRESSION",
    "PGPASSWORD", "PGPASSFILE", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "MYSQL_PWD", "MYSQL_HOST",
    "MYSQL_TCP_PORT",
)


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.setdefault("LC_ALL", "C.UTF-8")
    if extra:
        env.update(extra)
    return env


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit {returncode}"


def _missing(argv: Sequence[str], hint: str | None) -> VhError:
    fix = f"; install it: {hint}" if hint else ""
    return VhError(f"{argv[0]}: command not found{fix}")


def spawn(argv: Sequence[str], *, env: Mapping[str, str] | None = None, missing_hint: str | None = None,
          stdin: int | IO | None = None, stdout: int | IO | None = None, stderr: int | IO | None = PIPE,
          pass_fds: Iterable[int] = (), text: bool = False) -> subprocess.Popen:
    """Start ``argv`` and return the Popen; the caller waits for it."""
    argv = [str(a) for a in argv]
    log.debug("running %s", " ".join(argv))
    try:
        return subprocess.Popen(argv, env=child_env(env), stdin=stdin, stdout=stdout, stderr=stderr,
                                pass_fds=tuple(pass_fds), text=text, close_fds=True)
    except FileNotFoundError:
        raise _missing(argv, missing_hint) from None
    except PermissionError:
        raise VhError(f"{argv[0]}: not executable (permission denied)") from None


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, missing_hint: str | None = None,
        input: str | None = None, timeout: float | None = None, stdout: int | IO | None = PIPE) -> Result:
    """Run to completion and return its exit code and (text) output."""
    proc = spawn(argv, env=env, missing_hint=missing_hint, stdin=PIPE if input is not None else DEVNULL,
                 stdout=stdout, stderr=PIPE, text=True)
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise VhError(f"{argv[0]}: no answer within {timeout:.0f} s") from None
    except BaseException:
        terminate(proc)
        raise
    return Result(tuple(str(a) for a in argv), proc.returncode, out or "", err or "")


def stream(argv: Sequence[str], on_line: Callable[[str], None], *, env: Mapping[str, str] | None = None,
           missing_hint: str | None = None, stdin: int | IO | None = DEVNULL,
           on_stderr: Callable[[str], None] | None = None, keep_stderr: int = 200) -> Result:
    """Run ``argv``, calling ``on_line`` for each stdout line as it arrives.

    stderr is drained by a thread (so neither pipe can fill and block the
    child); its last ``keep_stderr`` lines are returned in the Result.
    """
    proc = spawn(argv, env=env, missing_hint=missing_hint, stdin=stdin, stdout=PIPE, stderr=PIPE, text=True)
    tail: deque[str] = deque(maxlen=keep_stderr)
    drain = threading.Thread(target=_drain, args=(proc.stderr, tail, on_stderr), daemon=True)
    drain.start()
    try:
        for line in proc.stdout:
            on_line(line.rstrip("\n"))
        proc.wait()
    except BaseException:
        terminate(proc)
        raise
    finally:
        drain.join(timeout=5)
    return Result(tuple(str(a) for a in argv), proc.returncode, "", "\n".join(tail))


def _drain(pipe: IO[str], tail: deque, on_line: Callable[[str], None] | None) -> None:
    for line in pipe:
        line = line.rstrip("\n")
        tail.append(line)
        if on_line:
            on_line(line)


def drain_in_thread(pipe: IO[bytes], keep: int = 50) -> tuple[threading.Thread, deque]:
    """Collect a binary stderr pipe's last lines in the background."""
    tail: deque[str] = deque(maxlen=keep)

    def work() -> None:
        for raw in pipe:
            tail.append(raw.decode("utf-8", "replace").rstrip("\n"))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, tail


def terminate(proc: subprocess.Popen) -> None:
    """Stop a child we are abandoning, if it still runs: SIGINT (restic removes its lock), SIGKILL after 15 s."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ProcessLookupError:
        pass
