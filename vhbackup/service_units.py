"""Stopping a service's systemd units around its backup or restore, and always starting them again.

"Always" includes ``systemctl stop`` of the backup unit itself: systemd then
sends SIGINT (the units' ``KillSignal=``) to every process of the unit,
which unwinds vhbackup like Ctrl-C and runs the restart below. A unit is
marked for restart before its stop is even requested, so an interruption
during the stop still brings it back; while the units are started again,
SIGINT and SIGTERM are held back and re-raised afterwards; and a
``systemctl start`` that the signal itself killed is simply repeated.

Even SIGKILL: before a unit is stopped it is written to
``state_dir/stopped-units.json`` (with this process's identity), and taken
off once it runs again. ``restart_left_over`` (``vhbackup recover``, which
the units run as ``ExecStopPost=``, and every run before it starts) starts
the units a dead process left stopped.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from vhbackup import proc, state
from vhbackup.errors import VhError

log = logging.getLogger("vhbackup")

START_ATTEMPTS = 2


def _systemctl(*args: str) -> proc.Result:
    return proc.run(["systemctl", *args], missing_hint="apt install systemd", timeout=300)


def is_active(unit: str) -> bool:
    return _systemctl("is-active", "--quiet", unit).returncode == 0


def _left_path(state_dir: str) -> str:
    return f"{state_dir}/stopped-units.json"


def _note(state_dir: str | None, units: list[str]) -> None:
    """Write (or, with no units, remove) the list of units this process has stopped."""
    if state_dir is None:
        return
    if units:
        state.write_json_atomic(_left_path(state_dir), {**state.process_identity(), "units": units})
        return
    try:
        os.unlink(_left_path(state_dir))
    except FileNotFoundError:
        pass


def restart_left_over(state_dir: str) -> list[str]:
    """Start the units a vhbackup process that is gone (killed, crashed) had stopped; those that stay down."""
    left = state.read_lenient(_left_path(state_dir))
    units = [u for u in left.get("units") or [] if isinstance(u, str)]
    if not units or state.process_alive(left):
        return []
    log.warning("a vhbackup run (pid %s) ended while %s was stopped; starting %s again", left.get("pid"),
                ", ".join(units), "it" if len(units) == 1 else "them")
    failed = _start_again([u for u in units if not is_active(u)])
    _note(state_dir, [])
    return failed


@contextmanager
def stopped(units: Sequence[str], state_dir: str | None = None) -> Iterator[None]:
    """Stop the running ones among ``units``; start exactly those again, whatever happens inside.

    With ``state_dir``, the stopped units are noted there first, so that
    ``restart_left_over`` brings them back even if this process is killed.
    """
    running = [u for u in units if is_active(u)]
    to_start: list[str] = []
    failed_start: list[str] = []
    try:
        for unit in running:
            log.info("stopping %s", unit)
            to_start.append(unit)
            _note(state_dir, to_start)
            result = _systemctl("stop", unit)
            if result.returncode != 0:
                raise VhError(f"could not stop {unit}: {result.stderr.strip() or proc.describe_exit(result.returncode)}")
        yield
    finally:
        if to_start:
            with _signals_deferred():
                failed_start = _start_again(to_start)
                _note(state_dir, [])
    if failed_start:
        raise VhError(f"{', '.join(failed_start)} did not start again after the backup; "
                      f"check 'systemctl status {failed_start[0]}'")


def _start_again(units: Sequence[str]) -> list[str]:
    failed = []
    for unit in units:
        log.info("starting %s again", unit)
        for attempt in range(1, START_ATTEMPTS + 1):
            result = _systemctl("start", unit)
            if result.returncode == 0:
                break
            if attempt == START_ATTEMPTS:
                log.error("%s did not start again: %s; start it by hand: systemctl start %s",
                          unit, result.stderr.strip() or proc.describe_exit(result.returncode), unit)
                failed.append(unit)
    return failed


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back inside the block; deliver them (to the old handlers) after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous: dict[int, Callable | int | None] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda n, _frame: pending.append(n))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(pending):
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)
