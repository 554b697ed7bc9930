"""What every command receives: the parsed policy, the run's options, and restic bound to the repository."""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from vhbackup import systemd_notify
from vhbackup.policy import Policy
from vhbackup.quantities import format_size

if TYPE_CHECKING:
    from vhbackup.restic import Restic


def new_run_id(now: datetime | None = None) -> str:
    """Sortable, typeable and unique: local time plus four random hex digits."""
    now = now or datetime.now()
    return f"{now:%Y%m%d-%H%M%S}-{os.urandom(2).hex()}"  # what secrets.token_hex(2) does, without its imports


@dataclass
class Context:
    policy: Policy
    dry_run: bool = False
    verbose: bool = False
    quiet: bool = False
    wait: float | None = None
    run_id: str = field(default_factory=new_run_id)
    #: Bytes uploaded so far by each concurrent restic job, for one progress line.
    _progress: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    _progress_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @cached_property
    def restic(self) -> Restic:
        from vhbackup.restic import Restic  # status and notify never need it: keep their start-up small

        return Restic(self.policy.restic_binary, self.policy.repository, self.policy.host, self.policy.source,
                      verbose=self.verbose, progress=self._backup_progress)

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and sys.stderr.isatty()

    def _draws_progress(self) -> bool:
        return not self.quiet and sys.stderr.isatty() and not os.environ.get("JOURNAL_STREAM")

    def end_progress(self) -> None:
        if self._draws_progress():
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def _backup_progress(self, job: str, status: dict) -> None:
        """restic's status messages of every running job, summed into one line and one systemd status."""
        with self._progress_lock:
            self._progress[job] = (int(status.get("bytes_done", 0) or 0), int(status.get("total_bytes", 0) or 0))
            done = sum(d for d, _ in self._progress.values())
            total = sum(t for _, t in self._progress.values())
        systemd_notify.progress(f"uploading: {format_size(done)} of {format_size(total)}", done)
        if self._draws_progress():
            pct = 100.0 * done / total if total else 0.0
            sys.stderr.write(f"\r{pct:5.1f}%  {format_size(done)} of {format_size(total)}   ")
            sys.stderr.flush()
