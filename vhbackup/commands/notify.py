"""vhbackup notify: the systemd OnFailure= handler, the hourly health alert, and a test message.

``--unit UNIT`` is what ``vhbackup-notify@%n.service`` runs when a vhbackup
unit fails. It reads that unit's journal lines of its last invocation
(``journal.py``) and sends a failure alert with them, so that even a crash
before vhbackup's own error handling is reported. When the failed run
already delivered its own failure alert, only the notifiers that did not
deliver are tried, so no alert arrives twice.

``--check`` alerts when the health is not OK (``health_alerts.py``).
``--test`` sends a test message through every configured notifier.
"""

from __future__ import annotations

import logging
import re
from typing import Callable

from vhbackup import alerts, health_alerts, journal, monitor
from vhbackup.context import Context
from vhbackup.errors import EXIT_FAILURE, EXIT_OK, UsageError, VhError

NAME = "notify"
OPENS_REPOSITORY = False  # an alert about a missing or broken password file must still go out

log = logging.getLogger("vhbackup")

UNIT_NAME = re.compile(r"^[A-Za-z0-9_.:@\\-]{1,255}$")

#: (unit) -> invocation id or "" ; (unit, invocation id, limit) -> journal entries as plain dicts
InvocationLookup = Callable[[str], str]
JournalReader = Callable[[str, str, int], list[dict]]


def add_arguments(parser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--unit", metavar="UNIT",
                      help="alert that this systemd unit failed, with its journal lines (OnFailure= handler)")
    what.add_argument("--check", action="store_true",
                      help="alert if the health check is not OK (no recent backup, low space, ...)")
    what.add_argument("--test", action="store_true", help="send a test message through every notifier")


def run(ctx: Context, args) -> int:
    if args.test:
        return send_test(ctx)
    if args.check:
        return health_alerts.check(ctx.policy)
    return unit_failed(ctx, args.unit)


def send_test(ctx: Context) -> int:
    policy = ctx.policy
    if not alerts.configured_names(policy):
        raise VhError(f"no notifier is configured; add notify.email or notify.webhook to {policy.source}")
    event = alerts.Event(
        kind="test", host=policy.host, action="test", title="test message",
        what="a test of vhbackup's alerts (vhbackup notify --test)",
        facts={"notify.on": ", ".join(policy.notify.on) or "nothing"}, policy=policy.source,
        next_steps=("nothing: if you read this, alerts from this host reach you",),
    )
    results = alerts.deliver(policy, event)
    for result in results:
        print(f"{result.notifier}: {'sent' if result.ok else 'FAILED: ' + (result.error or '?')}")
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILURE


def unit_failed(ctx: Context, unit: str, lookup: InvocationLookup = journal.invocation_id,
                reader: JournalReader = journal.read_journal) -> int:
    policy = ctx.policy
    if not UNIT_NAME.match(unit) or unit.startswith("-"):
        raise UsageError(f"not a systemd unit name: {unit!r}")
    alerting = alerts.wanted(policy, "failure")
    configured = alerts.configured_names(policy) if alerting else []
    pinging = (_action_of(unit) or "") in {a for p in policy.monitor.pings for a in p.actions}
    if not alerting:
        log.info("%s failed; notify.on does not include 'failure', so no alert is sent", unit)
    elif not configured:
        log.warning("%s failed, but no notifier is configured (notify.email or notify.webhook in %s)",
                    unit, policy.source)
    if not configured and not pinging:
        return EXIT_OK
    invocation = lookup(unit)
    try:
        entries = reader(unit, invocation, journal.JOURNAL_LINES)
    except Exception as exc:  # noqa: BLE001 - a journal problem must not stop the alert
        log.warning("cannot read the journal of %s: %s; alerting without its lines", unit, exc)
        entries = []
    run_id = journal.last_field(entries, "VHBACKUP_RUN_ID")
    action = journal.last_field(entries, "VHBACKUP_ACTION") or _action_of(unit)
    error = journal.error_line(unit, entries)
    lines = tuple(journal.entry_line(e) for e in entries[-alerts.TAIL_LINES:])
    ok = True
    if pinging:
        ok = _ping_failure(policy, _action_of(unit) or "", unit, entries, error, lines)
    if not configured:
        return EXIT_OK if ok else EXIT_FAILURE
    delivered = journal.already_delivered(policy.state_dir, entries)
    remaining = [name for name in configured if name not in delivered]
    if not remaining:
        log.info("the failure of %s (run %s) was already reported by %s; not sending it again",
                 unit, run_id or "?", ", ".join(sorted(delivered)))
        return EXIT_OK if ok else EXIT_FAILURE
    event = alerts.Event(
        kind="failure", host=policy.host, title=f"{unit} failed", action=action or "unit",
        what=f"systemd unit {unit} failed" + (f" (vhbackup {action} run {run_id})" if run_id else ""),
        error=error, run_id=run_id, unit=unit, log_lines=lines,
        next_steps=(f"systemctl status {unit}", f"journalctl -u {unit} -n 200",
                    *alerts.next_steps(action or "", policy, journal.last_field(entries, "VHBACKUP_ERROR_KIND"))),
        facts={"invocation_id": invocation or "unknown"}, policy=policy.source,
    )
    results = alerts.deliver(policy, event, only=remaining)
    return EXIT_OK if any(r.ok for r in results) and ok else EXIT_FAILURE


def _ping_failure(policy, action: str, unit: str, entries: list[dict], error: str, lines: tuple[str, ...]) -> bool:
    """Ping ``fail`` to the monitors the run did not ping ``fail`` itself; False if none of them got it."""
    done = journal.already_pinged(policy.state_dir, action, entries)
    if done:
        log.info("the failure of %s was already pinged to %s by the run itself; not pinging those again",
                 unit, ", ".join(sorted(done)))
    sent = monitor.crashed(policy, action, unit, error, lines, skip=done)
    return sent is None or bool(sent["sent"])


def _action_of(unit: str) -> str | None:
    match = re.match(r"^vhbackup-([a-z]+)(@.*)?\.service$", unit)
    return match.group(1) if match else None
