"""An alert's content: the ``Event`` and its rendering by the packaged Jinja2 templates.

Shared by ``alerts`` (which decides what to send) and the notifiers (which
send it), so that neither imports the other.
"""

from __future__ import annotations

import time as clock
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from vhbackup import __version__


@dataclass(frozen=True)
class Event:
    kind: str  # failure | warning | success | test
    host: str
    title: str
    what: str
    action: str
    error: str | None = None
    run_id: str | None = None
    unit: str | None = None
    exit_code: int | None = None
    time: float = field(default_factory=clock.time)
    log_lines: tuple[str, ...] = ()
    next_steps: tuple[str, ...] = ()
    facts: dict = field(default_factory=dict)
    policy: str = ""

    @property
    def status(self) -> str:
        """The word for ``{status}`` in webhook URLs."""
        return "fail" if self.kind == "failure" else self.kind

    @property
    def exit_status(self) -> int:
        """The number for ``{exit_status}`` in webhook URLs: 0 only when all is well."""
        if self.kind in ("success", "test"):
            return 0
        return self.exit_code or 1

    @property
    def time_iso(self) -> str:
        return datetime.fromtimestamp(self.time).astimezone().isoformat(timespec="seconds")

    def as_dict(self) -> dict:
        return {
            "source": "vhbackup", "version": __version__, "kind": self.kind, "status": self.status,
            "host": self.host, "title": self.title, "what": self.what, "action": self.action,
            "error": self.error, "run_id": self.run_id, "unit": self.unit, "exit_code": self.exit_code,
            "time": self.time, "time_iso": self.time_iso, "log_lines": list(self.log_lines),
            "next_steps": list(self.next_steps), "facts": dict(self.facts),
        }



# --- rendering ---------------------------------------------------------------------

@lru_cache(maxsize=1)
def _templates():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).with_name("templates"))),
        autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
    )


def render(event: Event) -> tuple[str, str]:
    """(subject, body) from the packaged Jinja2 templates."""
    values = {**event.as_dict(), "version": __version__, "policy": event.policy}
    subject = _templates().get_template("alert-subject.txt.j2").render(values)
    body = _templates().get_template("alert-body.txt.j2").render(values)
    return " ".join(subject.split()), body
