"""What every command receives: the parsed policy and the run's options."""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from vhbackup import systemd_notify
from vhbackup.policy import Policy
from vhbackup.quantities import format_size
from vhbackup.restic import Restic


def new_run_id(now: datetime | None = None) -> str:
    """Sortable, typeable and unique: local time plus four random hex digits."""
    now = now or datetime.now()
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


@dataclass
class Context:
    policy: Policy
    dry_run: bool = False
    verbose: bool = False
    quiet: bool = False
    wait: float | None = None
    run_id: str = field(default_factory=new_run_id)

    @cached_property
    def restic(self) -> Restic:
        return Restic(self.policy, verbose=self.verbose, progress=self._backup_progress)

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and sys.stderr.isatty()

    def _draws_progress(self) -> bool:
        return not self.quiet and sys.stderr.isatty() and not os.environ.get("JOURNAL_STREAM")

    def end_progress(self) -> None:
        if self._draws_progress():
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def _backup_progress(self, status: dict) -> None:
        done = status.get("bytes_done", 0)
        total = status.get("total_bytes", 0)
        systemd_notify.progress(f"uploading: {format_size(done)} of {format_size(total)}", done)
        if self._draws_progress():
            pct = status.get("percent_done", 0) * 100
            sys.stderr.write(f"\r{pct:5.1f}%  {format_size(done)} of {format_size(total)}   ")
            sys.stderr.flush()
