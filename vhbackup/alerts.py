"""What is alerted, when, and through which notifiers.

Events come from four places: ``after_run`` (the end of every backup,
prune, verify and drill, called by ``outcome.recorded`` before it saves the
run's record, which then carries the alert's outcome), ``vhbackup notify
--unit`` (systemd's OnFailure= handler), ``vhbackup notify --check`` (health
not OK: no recent backup, low space; see ``health_alerts``) and
``vhbackup notify --test``.
``notify.on`` filters them by kind (failure, warning, success).

Delivery goes to every configured notifier at once, each in its own thread
and bounded by its timeout; a notifier that fails costs one error line and
never an exception, so an alert can never change a run's exit code.
Which notifiers delivered is written into the run's state record
(``details.alert``) so that the OnFailure handler does not send the same
failure twice.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from vhbackup import log as vlog
from vhbackup import notifiers, state
from vhbackup.events import Event, render  # noqa: F401 - render is part of this module's interface
from vhbackup.policy import Policy

log = logging.getLogger("vhbackup")

KINDS = ("failure", "warning", "success", "test")
ALERTED_ACTIONS = state.ALERTED_ACTIONS
TAIL_LINES = 30
#: Extra seconds a notifier thread gets beyond its own socket timeout before it is abandoned.
GRACE = 2.0
TIMED_OUT = "timed out"

_NEXT_STEPS = {
    "backup": ("vhbackup status", "journalctl -u vhbackup-backup.service -n 100",
               "vhbackup backup -v   (to retry by hand and watch restic's output)"),
    "prune": ("vhbackup prune --dry-run", "journalctl -u vhbackup-prune.service -n 100"),
    "verify": ("ls -t {state_dir}/reports/ | head   (the verify report)", "vhbackup verify --full",
               "journalctl -u vhbackup-verify.service -n 100"),
    "drill": ("vhbackup drill --keep   (keeps the scratch copy to inspect)", "vhbackup restore --list",
              "journalctl -u vhbackup-drill.service -n 100"),
}


@dataclass(frozen=True)
class Delivery:
    notifier: str
    ok: bool
    error: str | None = None


# --- the tail of this process's log ----------------------------------------------

class _Tail(logging.Filter):
    """Keeps the last lines vhbackup logged, for the alert body.

    A filter on the logger rather than a handler, because ``log.setup``
    replaces the handlers; filters stay. It never rejects a record.
    """

    def __init__(self, size: int = TAIL_LINES):
        super().__init__()
        self.lines: deque[str] = deque(maxlen=size)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
            self.lines.append(f"{stamp} {record.levelname.lower()}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - a bad log call must not break logging
            pass
        return True


_tail = _Tail()
logging.getLogger("vhbackup").addFilter(_tail)


def log_tail() -> tuple[str, ...]:
    return tuple(_tail.lines)


# --- delivery ----------------------------------------------------------------------

def wanted(policy: Policy, kind: str) -> bool:
    return kind == "test" or kind in policy.notify.on


def configured_names(policy: Policy) -> list[str]:
    return [module.NAME for module, _ in notifiers.configured(policy.notify)]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, TimeoutError) or "timed out" in text:
        return TIMED_OUT
    reason = getattr(exc, "reason", None)
    if reason is not None and not isinstance(reason, str):
        return _one_line(reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return text or type(exc).__name__


def redacted(event: Event, secrets: list[str]) -> Event:
    """``event`` with every secret replaced by ``***`` (errors may quote URLs or tool output)."""
    return dataclasses.replace(
        event, title=state.redact(event.title, secrets), what=state.redact(event.what, secrets),
        error=state.redact(event.error, secrets), log_lines=tuple(state.redact(list(event.log_lines), secrets)),
        next_steps=tuple(state.redact(list(event.next_steps), secrets)), facts=state.redact(event.facts, secrets),
    )


def deliver(policy: Policy, event: Event, only: Iterable[str] | None = None) -> list[Delivery]:
    """Send ``event`` through the configured notifiers (or ``only`` those), all at once.

    Returns one Delivery per notifier tried. Logs ALERT_SENT per success and
    one error line per failure; never raises for a delivery problem.
    """
    names = set(only) if only is not None else None
    targets = [(m, s) for m, s in notifiers.configured(policy.notify) if names is None or m.NAME in names]
    secrets = state.secrets_of(policy)
    event = redacted(event, secrets)
    results: dict[str, Delivery] = {}

    def attempt(module, settings) -> None:
        try:
            module.send(settings, event)
            results[module.NAME] = Delivery(module.NAME, True)
        except Exception as exc:  # noqa: BLE001 - any failure is reported as one line
            error = state.redact(_one_line(exc), secrets)
            if error == TIMED_OUT:
                error = f"no answer within {settings.timeout:g} s"
            results[module.NAME] = Delivery(module.NAME, False, error)

    threads = []
    for module, settings in targets:
        thread = threading.Thread(target=attempt, args=(module, settings), daemon=True,
                                  name=f"vhbackup-notify-{module.NAME}")
        thread.start()
        threads.append((module, settings, thread, time.monotonic() + settings.timeout + GRACE))
    out = []
    for module, settings, thread, deadline in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        result = results.get(module.NAME) or Delivery(module.NAME, False,
                                                       f"no answer within {settings.timeout:g} s")
        where = module.describe(settings)
        if result.ok:
            log.info("%s alert sent by %s", event.kind, where,
                     extra=vlog.fields(vlog.ALERT_SENT, notifier=module.NAME, event=event.kind))
        else:
            log.error("could not send the %s alert by %s: %s; check notify.%s in %s or run "
                      "'vhbackup notify --test'", event.kind, where, result.error, module.NAME, policy.source,
                      extra=vlog.fields(notifier=module.NAME, event=event.kind))
        out.append(result)
    return out


# --- after a run -------------------------------------------------------------------

def _kind_of(record) -> str:
    if record.status == "failure":
        return "failure"
    if record.status == "partial":
        return "warning"
    return "success"


#: What to run first for a failure of a given kind (the exception's type name).
_FIRST_STEP = {
    "RepositoryLocked": "vhbackup unlock   (removes only locks of processes that are gone)",
    "LockHeld": "systemctl list-units 'vhbackup*'   (which vhbackup run holds the lock)",
    "RepositoryMissing": "vhbackup init   (or fix repository.url in {source})",
    "WrongPassword": "vhbackup config check   (which password file is used)",
    "AccessDenied": "vhbackup config check   (then the credentials in repository.url or the env file)",
    "RepositoryUnreachable": "check that the storage server answers (network, DNS, TLS) and repository.url in {source}",
    "StateError": "df -h {state_dir}   (vhbackup could not record its runs)",
}


def next_steps(action: str, policy: Policy, kind: str | None = None) -> tuple[str, ...]:
    steps = [s.format(state_dir=policy.state_dir) for s in _NEXT_STEPS.get(action, ("vhbackup status",))]
    if kind in _FIRST_STEP:
        steps.insert(0, _FIRST_STEP[kind].format(source=policy.source, state_dir=policy.state_dir))
    return tuple(steps)


def event_from_record(policy: Policy, record, lines: tuple[str, ...] = ()) -> Event:
    kind = _kind_of(record)
    title = {"failure": f"{record.action} failed",
             "warning": f"{record.action} partly failed",
             "success": f"{record.action} succeeded"}[kind]
    if record.action == "backup" and kind == "warning":
        title = "backup done, but some files could not be read"
    facts = {"duration_seconds": round(record.duration, 1)}
    if record.snapshot_ids:
        facts["snapshots"] = ", ".join(s[:8] for s in record.snapshot_ids)
    if record.services:
        facts["services"] = ", ".join(record.services)
    if record.databases:
        facts["databases"] = ", ".join(record.databases)
    if record.bytes_added:
        facts["bytes_added"] = record.bytes_added
    for key, value in record.details.items():
        if key not in ("alert", "error_kind") and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            facts[key] = value
    return Event(
        kind=kind, host=record.host, title=title, action=record.action, run_id=record.run_id,
        what=f"vhbackup {record.action} run {record.run_id}", error=record.error,
        exit_code=record.exit_code, time=record.started + record.duration, log_lines=lines,
        next_steps=next_steps(record.action, policy, record.details.get("error_kind")) if kind != "success" else (),
        facts=facts, policy=policy.source,
    )


def alert_summary(event: Event, results: list[Delivery]) -> dict:
    return {"event": event.kind, "time": time.time(),
            "delivered": [r.notifier for r in results if r.ok],
            "failed": [r.notifier for r in results if not r.ok]}


def after_run(policy: Policy, record) -> dict | None:
    """Alert for a finished run if ``notify.on`` asks for its kind; what was delivered, or None.

    Never raises: an alert must never change a run's outcome.
    """
    try:
        if record.action not in ALERTED_ACTIONS or not wanted(policy, _kind_of(record)):
            return None
        if not notifiers.configured(policy.notify):
            return None
        event = event_from_record(policy, record, log_tail())
        return alert_summary(event, deliver(policy, event))
    except Exception as exc:  # noqa: BLE001
        log.error("could not send the alert for %s run %s: %s", record.action, record.run_id, _one_line(exc))
        return None
