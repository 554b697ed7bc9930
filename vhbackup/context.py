"""What every command receives: the parsed policy, the run's options, and restic bound to the repository."""

from __future__ import annotations

import dataclasses
import logging
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

log = logging.getLogger("vhbackup")


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

    _restics: dict[str, Restic] = field(default_factory=dict, repr=False)

    @cached_property
    def restic(self) -> Restic:
        """restic bound to the primary repository."""
        return self.restic_for(self.policy.repository.name)

    def restic_for(self, name: str) -> Restic:
        """restic bound to the repository called ``name`` (PolicyError if the policy has none)."""
        from vhbackup.restic import Restic  # status and notify never need it: keep their start-up small

        repo = self.policy.repo(name)
        if name not in self._restics:
            self._restics[name] = Restic(self.policy.restic_binary, repo, self.policy.host, self.policy.source,
                                         verbose=self.verbose, progress=self._backup_progress)
        return self._restics[name]

    # --- several repositories (issue 10) ---------------------------------------------

    def use_repository(self, name: str) -> None:
        """Make the repository ``name`` the one this command works on (``ctx.restic``, ``policy.repository``)."""
        from vhbackup.errors import PolicyError, UsageError

        try:
            repo = self.policy.repo(name)
        except PolicyError as exc:
            raise UsageError(f"--repository: {exc}") from None
        self.policy = dataclasses.replace(self.policy, repository=repo)
        self.__dict__.pop("restic", None)

    def choose_repository(self, name: str | None, fall_back: bool = False) -> None:
        """``--repository NAME``, else the primary; with ``fall_back``, the first copy that opens if it cannot.

        The primary "cannot be used" when it is unreachable or gone (RepositoryUnreachable, RepositoryMissing);
        a wrong password or a refused access is an error to fix, not a reason to read elsewhere.
        """
        from vhbackup.errors import RepositoryError, RepositoryMissing, RepositoryUnreachable

        if name is not None:
            self.use_repository(name)
            return
        if not fall_back or not self.policy.copies:
            return
        primary = self.policy.repository
        try:
            self.restic.run("cat", "config")
            return
        except (RepositoryUnreachable, RepositoryMissing) as exc:
            problem = exc
        for copy in self.policy.copies:
            try:
                self.restic_for(copy.name).run("cat", "config")
            except RepositoryError:
                continue
            log.warning("the primary repository %s cannot be used (%s); using copy %s instead",
                        primary.name, problem, copy.name)
            self.use_repository(copy.name)
            return
        raise problem

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
