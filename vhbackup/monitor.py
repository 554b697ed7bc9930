"""Start, success and fail pings to outside monitoring services, for every backup, prune, verify and drill.

``outcome.recorded`` calls ``Pings.started`` right after the run's marker
is written, and ``finish_begin`` / ``finish_wait`` at its end (the alert is
sent in between, so both wait at once); ``vhbackup notify --unit`` calls
``crashed`` when systemd reports that a run's unit failed, for the monitors
the run did not ping ``fail`` itself (killed, crashed).

Bounds: the start ping goes out in a thread while the run works, so it
delays nothing. At the end, each monitor gets ``timeout`` seconds in all:
first for its start ping, if that is still under way (so the start arrives
before the end), then for the end ping and its retries. The run waits for
the end pings at most the largest ``timeout`` (+ ``GRACE``), then abandons
them; a ping that fails costs one warning line, never the run's result.

A partial run (exit 3, status WARNING) pings ``fail``: an outside monitor
must show that something needs a look. The end pings carry the last lines
of vhbackup's log, secrets masked (``state.redact`` with
``state.secrets_of``, which holds every monitor URL's secret parts), at
most 10 kB. Nothing is pinged for restore, status, notify or a dry run.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Sequence

from vhbackup import alerts, state
from vhbackup.notifiers import ping as sender
from vhbackup.policy import Ping, Policy

log = logging.getLogger("vhbackup")

#: Extra seconds a ping thread gets beyond its own timeout before it is abandoned.
GRACE = 1.0


def _wanted(policy: Policy, action: str, status: str) -> list[Ping]:
    return [p for p in policy.monitor.pings if action in p.actions and sender.sends(p, status)]


def _error_line(exc: BaseException, ping: Ping, secrets: list[str]) -> str:
    text = alerts._one_line(exc)  # noqa: SLF001 - the same one-line wording as the alerts
    if text == alerts.TIMED_OUT:
        text = f"no answer within {ping.timeout:g} s"
    return state.redact(text, secrets)


class _Attempt:
    """One ping in its own thread; ``thread.join`` with a bound, never more."""

    def __init__(self, ping: Ping, req, deadline: float, after: threading.Thread | None = None):
        self.ping, self.req, self.deadline, self.after = ping, req, deadline, after
        self.error: BaseException | None = None
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"vhbackup-ping-{ping.name}")
        self.thread.start()

    def _run(self) -> None:
        try:
            if self.after is not None:
                self.after.join(max(0.0, self.deadline - time.monotonic()))
            sender.send(self.ping, self.req, self.deadline)
            self.done = True
        except BaseException as exc:  # noqa: BLE001 - reported by the waiting side
            self.error = exc

    def wait(self) -> None:
        self.thread.join(max(0.0, self.deadline + GRACE - time.monotonic()))


class Pings:
    """The pings of one run: ``Pings.started(...)`` at its start, ``finish_begin``/``finish_wait`` at its end."""

    def __init__(self, policy: Policy, action: str, run_id: str, skip: set[str] = frozenset()):
        self.policy, self.action, self.run_id, self.skip = policy, action, run_id, skip
        self.secrets = state.secrets_of(policy) if policy.monitor.pings else []
        self.starts: list[_Attempt] = []

    @classmethod
    def started(cls, policy: Policy, action: str, run_id: str) -> Pings:
        pings = cls(policy, action, run_id)
        try:
            for ping in _wanted(policy, action, "start"):
                req = sender.request(ping, action, "start", policy.host,
                                     f"vhbackup {action} run {run_id} started on {policy.host}", "")
                pings.starts.append(_Attempt(ping, req, time.monotonic() + ping.timeout))
        except Exception as exc:  # noqa: BLE001 - a ping must never stop a run
            log.warning("could not send the start ping: %s", state.redact(str(exc), pings.secrets))
        return pings

    def finish_begin(self, status: str, message: str, lines: Sequence[str]) -> list[_Attempt]:
        """Start the end pings (``success`` or ``fail``) in threads; ``finish_wait`` collects them."""
        attempts: list[_Attempt] = []
        try:
            body = "\n".join(state.redact(list(lines), self.secrets)) + "\n" if lines else ""
            message = state.redact(message, self.secrets)
            wanted = set(_wanted(self.policy, self.action, status))
            for ping in self.policy.monitor.pings:
                if ping not in wanted or ping.name in self.skip:
                    continue
                start = self._start_of(ping)
                req = sender.request(ping, self.action, status, self.policy.host, message, body)
                attempts.append(_Attempt(ping, req, time.monotonic() + ping.timeout,
                                         after=start.thread if start is not None else None))
        except Exception as exc:  # noqa: BLE001
            log.warning("could not send the %s ping: %s", status, state.redact(str(exc), self.secrets))
        return attempts

    def _start_of(self, ping: Ping) -> _Attempt | None:
        return next((a for a in self.starts if a.ping is ping), None)

    def finish_wait(self, status: str, attempts: list[_Attempt]) -> dict | None:
        """Wait (bounded) for the end pings; what was sent, for the run's record, or None if none was due."""
        if not attempts:
            return None
        for attempt in attempts:
            attempt.wait()
        for start in self.starts:
            if start.error is not None:
                log.warning("could not send the start ping to %s: %s", sender.describe(start.ping),
                            _error_line(start.error, start.ping, self.secrets))
        return report(status, attempts, self.secrets)


def report(status: str, attempts: list[_Attempt], secrets: list[str]) -> dict:
    sent, failed = [], []
    for attempt in attempts:
        where = sender.describe(attempt.ping)
        if attempt.done:
            sent.append(attempt.ping.name)
            log.info("%s ping sent to %s", status, where)
        else:
            failed.append(attempt.ping.name)
            error = attempt.error if attempt.error is not None else TimeoutError("timed out")
            log.warning("could not send the %s ping to %s: %s; the run's result is not changed by this",
                        status, where, _error_line(error, attempt.ping, secrets))
    return {"event": status, "time": time.time(), "sent": sent, "failed": failed}


def end_status(record_status: str) -> str:
    return "success" if record_status == "success" else "fail"


def crashed(policy: Policy, action: str, unit: str, error: str, lines: Sequence[str],
            skip: set[str] = frozenset()) -> dict | None:
    """The OnFailure= path: ping ``fail`` for a run whose unit failed (not to the kinds in ``skip``, which the
    run pinged ``fail`` itself); what was sent, or None when no monitor was due."""
    if action not in {a for p in policy.monitor.pings if p.name not in skip for a in p.actions}:
        return None
    pings = Pings(policy, action, "", skip=skip)
    attempts = pings.finish_begin("fail", f"{unit} failed on {policy.host}: {error}"[:500], lines)
    return pings.finish_wait("fail", attempts)
