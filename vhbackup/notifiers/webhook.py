"""Alerts as a JSON POST to a URL (urllib).

The body is the event's facts as a generic JSON object with a ``text``
line, which Slack-, Mattermost- and Rocket.Chat-style receivers show as is.
The URL may carry placeholders for healthchecks-style ping URLs:
``{status}`` becomes ``success``, ``warning``, ``fail`` or ``test``, and
``{exit_status}`` the run's exit status (0 on success), so that
``https://hc-ping.com/UUID/{exit_status}`` marks the check up or down.
The URL (which often holds a token) and the headers are never logged.
"""

from __future__ import annotations

import json
import urllib.request
from urllib.parse import urlsplit

from vhbackup import __version__
from vhbackup.events import render
from vhbackup.policy import Webhook

NAME = "webhook"


def describe(settings: Webhook) -> str:
    """Scheme and host only: paths and queries of webhook URLs often are the secret."""
    parts = urlsplit(settings.url.replace("{status}", "x").replace("{exit_status}", "0"))
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"webhook to {parts.scheme}://{host}{port}"


def url_for(settings: Webhook, event) -> str:
    return (settings.url.replace("{status}", event.status)
            .replace("{exit_status}", str(event.exit_status)))


def body(event) -> bytes:
    subject, _ = render(event)
    return json.dumps({**event.as_dict(), "text": subject}, sort_keys=True).encode()


def send(settings: Webhook, event) -> None:
    headers = {"Content-Type": "application/json", "User-Agent": f"vhbackup/{__version__}"}
    headers.update(dict(settings.headers))
    request = urllib.request.Request(url_for(settings, event), data=body(event), headers=headers,
                                     method="POST")
    with urllib.request.urlopen(request, timeout=settings.timeout) as response:
        response.read(65536)
