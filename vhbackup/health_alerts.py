"""``vhbackup notify --check``: alert when the health is not OK, once per condition.

It alerts once per health level and repeats at most every ``CHECK_REPEAT``
seconds; a failure that its own run already reported is not reported
again; when the health is OK again after an alert, a "health is OK again"
message follows if ``notify.on`` includes success. The last alert is kept
in ``state_dir/last-check-alert.json``.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime
from typing import Callable

from vhbackup import alerts, health, state
from vhbackup.errors import EXIT_FAILURE, EXIT_OK
from vhbackup.policy import Policy

log = logging.getLogger("vhbackup")

CHECK_REPEAT = 24 * 3600.0
CHECK_STATE = "last-check-alert.json"


def _state_path(policy: Policy) -> str:
    return os.path.join(policy.state_dir, CHECK_STATE)


def _newest_reported_failure(policy: Policy) -> float | None:
    """When the newest failed run that delivered its own alert ended, if it is the newest run at all."""
    records = [state.read_lenient(state.last_run_path(policy.state_dir, a)) for a in state.ALERTED_ACTIONS]
    records = [r for r in records if r.get("started")]
    if not records:
        return None
    newest = max(records, key=lambda r: r["started"])
    alert = (newest.get("details") or {}).get("alert") or {}
    if newest.get("status") == "failure" and alert.get("delivered"):
        return float(alert.get("time") or newest["started"])
    return None


def check(policy: Policy, now: float | None = None, evaluate: Callable | None = None) -> int:
    now = time.time() if now is None else now
    result = (evaluate or health.evaluate)(policy, now=now)
    path = _state_path(policy)
    previous = state.read_lenient(path)
    if result.level == health.OK:
        if previous.get("level", health.OK) != health.OK:
            state.write_json_atomic(path, {"level": health.OK, "time": now, "summary": result.summary})
            if alerts.wanted(policy, "success") and alerts.configured_names(policy):
                alerts.deliver(policy, _event(policy, result, "success", "health is OK again", now))
        log.info("%s", result.summary)
        return EXIT_OK
    if previous.get("level") == result.level and now - float(previous.get("time", 0)) < CHECK_REPEAT:
        log.info("%s (already alerted at %s)", result.summary,
                 datetime.fromtimestamp(float(previous["time"])).strftime("%Y-%m-%d %H:%M"))
        return EXIT_OK
    reported = _newest_reported_failure(policy) if result.level == health.CRITICAL else None
    if reported is not None and now - reported < CHECK_REPEAT:
        log.info("%s (the failed run already sent its alert)", result.summary)
        state.write_json_atomic(path, {"level": result.level, "time": reported, "summary": result.summary})
        return EXIT_OK
    kind = "failure" if result.level == health.CRITICAL else "warning"
    if not alerts.wanted(policy, kind) or not alerts.configured_names(policy):
        log.info("%s (no alert: notify.on or the notifiers do not ask for one)", result.summary)
        return EXIT_OK
    results = alerts.deliver(policy, _event(policy, result, kind, f"health {result.level}", now))
    if any(r.ok for r in results):
        state.write_json_atomic(path, {"level": result.level, "time": now, "summary": result.summary})
        return EXIT_OK
    return EXIT_FAILURE


def _event(policy: Policy, result: health.Health, kind: str, title: str, now: float) -> alerts.Event:
    facts = {}
    for key, value in (result.facts or {}).items():
        if isinstance(value, (str, int, float, bool)):
            facts[key] = value
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            facts[key] = "; ".join(value)
    return alerts.Event(
        kind=kind, host=policy.host, title=title, action="check", what="vhbackup health check",
        error=result.summary if kind != "success" else None, exit_code=result.code, time=now,
        facts=facts, policy=policy.source,
        next_steps=("vhbackup status", "systemctl list-timers 'vhbackup*'",
                    "journalctl -u vhbackup-backup.service -n 100") if kind != "success" else (),
    )
