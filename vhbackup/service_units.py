"""Stopping a service's systemd units around its backup or restore, and always starting them again."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator, Sequence

from vhbackup import proc
from vhbackup.context import Context
from vhbackup.errors import VhError

log = logging.getLogger("vhbackup")


def _systemctl(*args: str) -> proc.Result:
    return proc.run(["systemctl", *args], missing_hint="apt install systemd", timeout=300)


def is_active(unit: str) -> bool:
    return _systemctl("is-active", "--quiet", unit).returncode == 0


@contextmanager
def stopped(ctx: Context, units: Sequence[str]) -> Iterator[None]:
    """Stop the running ones among ``units``; start exactly those again, whatever happens inside."""
    running = [u for u in units if is_active(u)]
    stopped_units: list[str] = []
    failed_start: list[str] = []
    try:
        for unit in running:
            log.info("stopping %s", unit)
            result = _systemctl("stop", unit)
            if result.returncode != 0:
                raise VhError(f"could not stop {unit}: {result.stderr.strip() or proc.describe_exit(result.returncode)}")
            stopped_units.append(unit)
        yield
    finally:
        for unit in stopped_units:
            log.info("starting %s again", unit)
            result = _systemctl("start", unit)
            if result.returncode != 0:
                log.error("%s did not start again: %s; start it by hand: systemctl start %s",
                          unit, result.stderr.strip() or proc.describe_exit(result.returncode), unit)
                failed_start.append(unit)
    if failed_start:
        raise VhError(f"{', '.join(failed_start)} did not start again after the backup; "
                      f"check 'systemctl status {failed_start[0]}'")
