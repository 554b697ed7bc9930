"""Running a run's jobs (the files backup, each database dump) side by side, a bounded number at a time.

Each job runs in a worker thread; its exception is its outcome, never
another job's. An interrupt (Ctrl-C, SIGTERM from ``systemctl stop``)
arrives in the main thread, which then stops every child process
(``proc.stop_all``: pumps refuse to let restic save anything after it),
waits for the workers to notice, and re-raises. ``concurrency=1`` runs the
jobs one after the other, in the order given.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from vhbackup import proc


@dataclass(frozen=True)
class Job:
    name: str
    work: Callable[[], Any]


@dataclass(frozen=True)
class Done:
    job: Job
    value: Any = None
    error: BaseException | None = None


def run(jobs: Sequence[Job], concurrency: int) -> list[Done]:
    """Run ``jobs`` at most ``concurrency`` at a time; their outcomes in the order given."""
    if not jobs:
        return []
    if concurrency <= 1 or len(jobs) == 1:
        return [_attempt(job) for job in jobs]
    pool = ThreadPoolExecutor(max_workers=min(concurrency, len(jobs)), thread_name_prefix="vhbackup-job")
    futures: list[Future] = []
    try:
        futures = [pool.submit(_attempt, job) for job in jobs]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
        return [f.result() for f in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        proc.stop_all()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


def _attempt(job: Job) -> Done:
    try:
        return Done(job, value=job.work())
    except Exception as exc:  # noqa: BLE001 - a job's failure is its outcome
        return Done(job, error=exc)
