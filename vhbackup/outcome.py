"""Recording how a run ended: journal messages, the alert, the state files, the metrics.

Every command that acts (backup, restore, prune, verify, drill) runs inside
``recorded(ctx, action, items)``:

1. a marker (``running-<action>.json``) is written before anything else;
   if state_dir cannot take it, the run stops before doing anything;
   a marker left by a dead earlier run is first recorded as that run's
   failure ("interrupted");
2. the run's work fills in the ``Record``;
3. at the end, whatever happened: the end is logged with its MESSAGE_ID,
   ``alerts.after_run`` decides and sends the alert, and the record (with
   the alert's outcome) is saved once: items.json, ``last-<action>.json``,
   ``last-success-<action>.json``, the metrics; only then is the marker
   removed. A record that could not be saved leaves the marker, which
   ``status`` reports.

Errors that mean "nothing was attempted" (``VhError.recorded`` is False:
bad arguments, a run id that does not exist) leave no record.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterator, Sequence

from vhbackup import alerts, diskspace, metrics, monitor, state
from vhbackup import log as vlog
from vhbackup.errors import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL, VhError
from vhbackup.policy import Policy

if TYPE_CHECKING:
    from vhbackup.context import Context

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
    #: Per file set / database of a backup: {"status", "error", "snapshot_id", "bytes", "duration", ...}.
    items: dict[str, dict] = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        data = asdict(self)
        data["started_iso"] = datetime.fromtimestamp(self.started, timezone.utc).astimezone().isoformat(timespec="seconds")
        data["finished"] = self.started + self.duration
        return data


def settle_interrupted(policy: Policy, action: str) -> bool:
    """A marker whose process is gone: record that run as failed ("interrupted"), drop the marker; True if so."""
    try:
        marker = state.read_object(state.running_path(policy.state_dir, action))
    except (OSError, ValueError):
        marker = {"action": action}
    if marker is None or state.marker_alive(marker):
        return False
    record = state.interrupted_record(marker, policy.host)
    log.warning("%s run %s ended without recording its outcome (killed or crashed); recording it as failed",
                action, record.get("run_id") or "?")
    save(policy, record)
    state.remove_marker(policy.state_dir, action)
    return True


@contextmanager
def recorded(ctx: Context, action: str, items: Sequence[str] = ()) -> Iterator[Record]:
    policy = ctx.policy
    settle_interrupted(policy, action)
    record = Record(action=action, run_id=ctx.run_id, host=policy.host, started=time.time())
    if len(policy.repositories) > 1:
        record.details["repository"] = policy.repository.name
    state.write_marker(policy.state_dir, action, ctx.run_id, record.started, list(items))
    vlog.bind(run_id=ctx.run_id, action=action)
    log.info("%s run %s started", action, ctx.run_id, extra=vlog.fields(vlog.RUN_STARTED))
    pings = monitor.Pings.started(policy, action, ctx.run_id)
    clock = time.monotonic()
    try:
        yield record
    except BaseException as exc:
        if isinstance(exc, VhError) and not exc.recorded:
            state.remove_marker(policy.state_dir, action)
            raise
        record.status = "failure"
        record.exit_code = exc.exit_code if isinstance(exc, VhError) else EXIT_FAILURE
        record.error = _describe_failure(exc)
        record.details.setdefault("error_kind", type(exc).__name__)
        for item in items:
            record.items.setdefault(item, {"status": "failure", "error": record.error})
        if isinstance(exc, (VhError, OSError)):
            exc.reported = True  # the failure line below says it; cli.main need not repeat it
        record.duration = time.monotonic() - clock
        _finish(ctx, record, pings)
        raise
    if record.status == "running":
        record.status = "success"
    if record.status == "partial":
        record.exit_code = EXIT_PARTIAL
    record.duration = time.monotonic() - clock
    _finish(ctx, record, pings)


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, VhError):
        return str(exc)
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return f"interrupted ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


def _finish(ctx: Context, record: Record, pings: monitor.Pings | None = None) -> None:
    if record.action == "backup" and "free_space" not in record.details:
        record.details["free_space"] = diskspace.measure(ctx.policy)
    if record.status == "failure":
        log.error("%s run %s failed after %.0f s: %s", record.action, record.run_id, record.duration,
                  record.error, extra=vlog.fields(vlog.RUN_FAILED, error=record.error,
                                                  error_kind=record.details.get("error_kind")))
    else:
        log.info("%s run %s finished: %s in %.0f s", record.action, record.run_id, record.status,
                 record.duration, extra=vlog.fields(vlog.RUN_FINISHED, status=record.status,
                                                    snapshot_id=record.snapshot_ids or None))
    ping_status = monitor.end_status(record.status)
    sending = pings.finish_begin(ping_status, _ping_message(record), alerts.log_tail()) if pings else []
    alert = alerts.after_run(ctx.policy, record)  # beside the pings: the run waits for the slower of the two
    if alert is not None:
        record.details["alert"] = alert
    if pings is not None and (sent := pings.finish_wait(ping_status, sending)) is not None:
        record.details["monitor"] = sent
    if save(ctx.policy, record):
        state.remove_marker(ctx.policy.state_dir, record.action)


def _ping_message(record: Record) -> str:
    if record.status == "success":
        return f"vhbackup {record.action} run {record.run_id} on {record.host} succeeded in {record.duration:.0f} s"
    word = "partly failed" if record.status == "partial" else "failed"
    return f"vhbackup {record.action} run {record.run_id} on {record.host} {word}: {record.error or '?'}"


def save(policy: Policy, record: Record | dict) -> bool:
    """Save a run's record (secrets scrubbed): items, last run, last success, metrics; False if it failed.

    Failing to write is logged, never raised: the run's own outcome matters
    more than its bookkeeping, and the marker left behind tells ``status``.
    """
    data = state.redact(record.as_json() if isinstance(record, Record) else record, state.secrets_of(policy))
    state_dir = policy.state_dir
    action = data.get("action")
    try:
        if action == "backup" and data.get("items"):
            state.write_json_atomic(state.items_path(state_dir),
                                    state.merge_items(state.read_lenient(state.items_path(state_dir)), data))
        # A verify, drill or prune of a copy has records of its own: the primary's never hide its failure.
        repo = (data.get("details") or {}).get("repository")
        names = {r.name for r in policy.repositories}
        repo = repo if repo in names and repo != policy.repositories[0].name and action != "backup" else None
        state.write_json_atomic(state.last_run_path(state_dir, action, repo), data)
        if data.get("status") in ("success", "partial"):
            state.write_json_atomic(state.last_success_path(state_dir, action, repo), data)
    except OSError as exc:
        log.error("could not write the state file in %s: %s; 'vhbackup status' will report this run as "
                  "unrecorded", state_dir, exc.strerror or exc)
        return False
    try:
        metrics.write(policy)
    except OSError as exc:
        log.error("could not write the metrics file %s: %s", policy.metrics_path, exc.strerror)
    return True
