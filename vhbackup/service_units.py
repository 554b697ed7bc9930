"""Stopping a service's systemd units and containers around its backup or restore, and always starting them again.

Containers (``containers:`` and ``compose:`` of a service) get the same
guarantees as units, after them and in policy order: only running ones are
stopped, each is noted in ``stopped-units.json`` (with the engine command and
its id) before its stop is requested, and all are started again in the
same order.

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
from contextlib import contextmanager
from typing import Iterator, Sequence

from vhbackup import containers, proc, state
from vhbackup.errors import VhError

log = logging.getLogger("vhbackup")

START_ATTEMPTS = 2


def _systemctl(*args: str) -> proc.Result:
    return proc.run(["systemctl", *args], missing_hint="apt install systemd", timeout=300)


def is_active(unit: str) -> bool:
    return _systemctl("is-active", "--quiet", "--", unit).returncode == 0


def _left_path(state_dir: str) -> str:
    return f"{state_dir}/stopped-units.json"


def _note(state_dir: str | None, units: list[str], stopped_containers: list[dict] | None = None) -> None:
    """Write (or, with nothing stopped, remove) the units and containers this process has stopped."""
    if state_dir is None:
        return
    if units or stopped_containers:
        state.write_json_atomic(_left_path(state_dir), {**state.process_identity(), "units": units,
                                                        "containers": stopped_containers or []})
        return
    try:
        os.unlink(_left_path(state_dir))
    except FileNotFoundError:
        pass


def restart_left_over(state_dir: str) -> list[str]:
    """Start the units a vhbackup process that is gone (killed, crashed) had stopped; those that stay down."""
    left = state.read_lenient(_left_path(state_dir))
    units = [u for u in left.get("units") or [] if isinstance(u, str)]
    boxes = [c for c in left.get("containers") or [] if isinstance(c, dict) and isinstance(c.get("id"), str)
             and isinstance(c.get("engine"), str) and isinstance(c.get("name"), str)]
    if not (units or boxes) or state.process_alive(left):
        return []
    names = [*units, *(f"container {c['name']}" for c in boxes)]
    log.warning("a vhbackup run (pid %s) ended while %s was stopped; starting %s again", left.get("pid"),
                ", ".join(names), "it" if len(names) == 1 else "them")
    failed = _start_again([u for u in units if not is_active(u)])
    failed += _start_containers_again([c for c in boxes if not _container_running(c)])
    _note(state_dir, [])
    return failed


def _container_running(box: dict) -> bool:
    try:
        return containers.is_running(box["engine"], box["id"])
    except VhError:
        return False


def running_containers(engine: str | None, refs: Sequence[containers.Ref],
                       keep: Sequence[containers.Ref] = ()) -> list[containers.Container]:
    """The running containers among ``refs`` (one-line error for one that does not exist).

    ``keep`` are the containers the run's databases are dumped in: stopping
    one of them would make its dump fail, so that is refused.
    """
    if not refs:
        return []
    found = containers.resolve(engine, refs)
    needed = {c.id: c for c in containers.resolve(engine, keep)} if keep else {}
    clash = [c.name for c in found if c.id in needed]
    if clash:
        raise VhError(f"container {clash[0]} is to be stopped, but a database of the run is dumped in it; remove "
                      f"it from the service's containers/compose services")
    for container in found:
        if not container.running:
            log.info("container %s is not running: left alone", container.name)
    return [c for c in found if c.running]


@contextmanager
def stopped(units: Sequence[str], state_dir: str | None = None, refs: Sequence[containers.Ref] = (),
            engine: str | None = None, keep: Sequence[containers.Ref] = ()) -> Iterator[None]:
    """Stop the running ones among ``units``, then among the containers ``refs`` name; start exactly those
    again, in the same order, whatever happens inside.

    With ``state_dir``, everything stopped is noted there first, so that
    ``restart_left_over`` brings it back even if this process is killed.
    ``engine`` is the container engine command (see ``containers.detect``).
    """
    boxes = running_containers(engine, refs, keep) if refs else []
    running = [u for u in units if is_active(u)]
    to_start: list[str] = []
    boxes_to_start: list[dict] = []
    failed_start: list[str] = []
    try:
        for unit in running:
            log.info("stopping %s", unit)
            to_start.append(unit)
            _note(state_dir, to_start)
            result = _systemctl("stop", "--", unit)
            if result.returncode != 0:
                raise VhError(f"could not stop {unit}: {result.stderr.strip() or proc.describe_exit(result.returncode)}")
        for box in boxes:
            log.info("stopping container %s", box.name)
            boxes_to_start.append({"engine": engine, "id": box.id, "name": box.name})
            _note(state_dir, to_start, boxes_to_start)
            containers.stop(engine, box)
        yield
    finally:
        if to_start or boxes_to_start:
            with proc.signals_deferred():
                failed_start = _start_again(to_start) + _start_containers_again(boxes_to_start)
                _note(state_dir, [])
    if failed_start:
        first = failed_start[0]
        check = (f"{engine} start {first.removeprefix('container ')}" if first.startswith("container ")
                 else f"systemctl status {first}")
        raise VhError(f"{', '.join(failed_start)} did not start again after the backup; check '{check}'")


def _start_containers_again(boxes: Sequence[dict]) -> list[str]:
    failed = []
    for box in boxes:
        log.info("starting container %s again", box["name"])
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                result = containers.start(box["engine"], box["id"])
                why = None if result.returncode == 0 else containers.engine_error(result)
            except VhError as exc:
                why = str(exc)
            if why is None:
                break
            if attempt == START_ATTEMPTS:
                log.error("container %s did not start again: %s; start it by hand: %s start %s",
                          box["name"], why, box["engine"], box["name"])
                failed.append(f"container {box['name']}")
    return failed


def _start_again(units: Sequence[str]) -> list[str]:
    failed = []
    for unit in units:
        log.info("starting %s again", unit)
        for attempt in range(1, START_ATTEMPTS + 1):
            result = _systemctl("start", "--", unit)
            if result.returncode == 0:
                break
            if attempt == START_ATTEMPTS:
                log.error("%s did not start again: %s; start it by hand: systemctl start %s",
                          unit, result.stderr.strip() or proc.describe_exit(result.returncode), unit)
                failed.append(unit)
    return failed
