"""Recording how a run ended: journal messages and the state file.

Every command that acts (backup, restore, prune, verify, drill) runs inside
``recorded(ctx, action)``. It logs the start and the end with their
MESSAGE_IDs, times the run, and writes ``state_dir/last-<action>.json``
atomically, whatever the outcome (``last-success-<action>.json`` too when it
succeeded), then rebuilds the Prometheus metrics file.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Iterator

from vhbackup import alerts, metrics, prechecks, state
from vhbackup import log as vlog
from vhbackup.context import Context
from vhbackup.errors import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL, VhError
from vhbackup.policy import Policy

log = logging.getLogger("vhbackup")


@dataclass
class Record:
    action: str
    run_id: str
    host: str
    started: float
    status: str = "running"  # success | partial | failure
    exit_code: int = EXIT_OK
    duration: float = 0.0
    error: str | None = None
    snapshot_ids: list[str] = field(default_factory=list)
    bytes_added: int = 0
    bytes_total: int = 0
    services: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        data = asdict(self)
        data["started_iso"] = datetime.fromtimestamp(self.started, timezone.utc).astimezone().isoformat(timespec="seconds")
        data["finished"] = self.started + self.duration
        return data


@contextmanager
def recorded(ctx: Context, action: str) -> Iterator[Record]:
    record = Record(action=action, run_id=ctx.run_id, host=ctx.policy.host, started=time.time())
    vlog.bind(run_id=ctx.run_id, action=action)
    log.info("%s run %s started", action, ctx.run_id, extra=vlog.fields(vlog.RUN_STARTED))
    clock = time.monotonic()
    try:
        yield record
    except BaseException as exc:
        record.status = "failure"
        record.exit_code = exc.exit_code if isinstance(exc, VhError) else EXIT_FAILURE
        record.error = _describe_failure(exc)
        if isinstance(exc, (VhError, OSError)):
            exc.reported = True  # the failure line below says it; cli.main need not repeat it
        raise
    else:
        if record.status == "running":
            record.status = "success"
        if record.status == "partial":
            record.exit_code = EXIT_PARTIAL
    finally:
        record.duration = time.monotonic() - clock
        _finish(ctx, record)


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, VhError):
        return str(exc)
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return f"interrupted ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


def _finish(ctx: Context, record: Record) -> None:
    if ctx.dry_run:
        return
    if record.action == "backup" and "free_space" not in record.details:
        record.details["free_space"] = prechecks.measure_free_space(ctx.policy)
    save(ctx.policy, record)
    if record.status == "failure":
        log.error("%s run %s failed after %.0f s: %s", record.action, record.run_id, record.duration,
                  record.error, extra=vlog.fields(vlog.RUN_FAILED, error=record.error))
    else:
        log.info("%s run %s finished: %s in %.0f s", record.action, record.run_id, record.status,
                 record.duration, extra=vlog.fields(vlog.RUN_FINISHED, status=record.status,
                                                    snapshot_id=record.snapshot_ids or None))
    alerts.after_run(ctx, record)


def save(policy: Policy, record: Record) -> None:
    """Write the run's state record (and, if it succeeded, the last-success one), then the metrics.

    Secrets are scrubbed from every string first: an error message may quote a
    URL or a tool's output. Failing to write is logged, never raised: the run's
    own outcome matters more than its bookkeeping.
    """
    data = state.redact(record.as_json(), state.secrets_of(policy))
    try:
        state.write_json_atomic(state.last_run_path(policy.state_dir, record.action), data)
        if record.status in ("success", "partial"):
            state.write_json_atomic(state.last_success_path(policy.state_dir, record.action), data)
    except OSError as exc:
        log.error("could not write the state file in %s: %s", policy.state_dir, exc.strerror)
    try:
        metrics.write(policy)
    except OSError as exc:
        log.error("could not write the metrics file %s: %s", policy.metrics_path, exc.strerror)
