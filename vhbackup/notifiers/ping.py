"""Pings to outside monitoring services (``monitor:``): healthchecks.io, ntfy, Uptime Kuma, any URL.

One ping is one HTTP request, tried at most ``1 + retries`` times, all of
them within ``deadline`` (a monotonic time): each attempt's socket timeout
is what is left of it, so retries never stretch the bound. ``monitor``
decides when pings are sent and runs each in a thread it can abandon.

What each kind sends (``status`` is ``start``, ``success`` or ``fail``):

- ``healthchecks``: POST ``URL/start``, ``URL`` and ``URL/fail`` (the
  healthchecks.io protocol; a query such as ``?create=1`` is kept), the end
  pings with the log tail as a text/plain body;
- ``ntfy``: POST to the topic URL with the message as body, ``Title``,
  ``Tags`` and ``Priority`` headers (start: priority 1, success 2, fail 4);
- ``uptime_kuma``: GET the push URL with ``status=up|down``, ``msg=`` and
  an empty ``ping=`` (other query values kept); no start ping, since a
  push monitor knows only up and down;
- ``url``: the URL with ``{action}``, ``{status}`` and ``{host}`` filled
  in (percent-encoded); POST with the log tail as body (empty at start), or
  GET (``method: GET``) with no body.

The URL (which holds the monitor's secret) is never logged: ``describe``
gives the scheme and host only.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from vhbackup import __version__
from vhbackup.policy import Ping

STATUSES = ("start", "success", "fail")
#: Most a ping's body carries (healthchecks.io keeps 100 kB; ntfy turns longer bodies into attachments).
MAX_BODY = 10_000
#: Seconds between attempts (less when the deadline is nearer).
PAUSE = 1.0


def describe(ping: Ping) -> str:
    """Kind, scheme and host: paths and queries of monitoring URLs are the secret."""
    parts = urlsplit(ping.url.replace("{", "").replace("}", ""))
    port = f":{parts.port}" if parts.port else ""
    return f"{ping.name or ping.kind} at {parts.scheme}://{parts.hostname or '?'}{port}"


def sends(ping: Ping, status: str) -> bool:
    """Whether this kind has anything to say for ``status`` (Uptime Kuma has no "started")."""
    return not (ping.kind == "uptime_kuma" and status == "start")


def fill(url: str, action: str, status: str, host: str) -> str:
    for name, value in (("action", action), ("status", status), ("host", host)):
        url = url.replace("{" + name + "}", quote(value, safe=""))
    return url


def _with_path(url: str, suffix: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix))


def clip(text: str, limit: int = MAX_BODY) -> bytes:
    """``text`` in at most ``limit`` bytes: its first line, and as much of the end (the log's last lines) as fits."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data
    first, _, rest = data.partition(b"\n")
    first = first[:limit // 4] + b"\n[...]\n"
    tail = rest[-(limit - len(first)):]
    cut = tail.find(b"\n")
    return first + (tail[cut + 1:] if 0 <= cut < 200 else tail)


def request(ping: Ping, action: str, status: str, host: str, message: str, body: str) -> urllib.request.Request:
    """The HTTP request for one ping. ``message``: one line; ``body``: the log tail (already redacted)."""
    if status not in STATUSES:
        raise ValueError(f"unknown ping status {status!r}")
    url = fill(ping.url, action, status, host)
    headers = {"User-Agent": f"vhbackup/{__version__}"}
    data: bytes | None = None
    method = "POST"
    text = f"{message}\n\n{body}".strip() + "\n"  # the summary line first: the end of the body may be clipped
    if ping.kind == "healthchecks":
        url = _with_path(url, {"start": "/start", "success": "", "fail": "/fail"}[status])
        data = clip(text) if status != "start" else b""
        headers["Content-Type"] = "text/plain; charset=utf-8"
    elif ping.kind == "ntfy":
        data = clip(text)
        headers.update({
            "Title": _latin1(message),
            "Tags": {"start": "hourglass_flowing_sand", "success": "white_check_mark", "fail": "x"}[status],
            "Priority": {"start": "1", "success": "2", "fail": "4"}[status],
            "Content-Type": "text/plain; charset=utf-8",
        })
    elif ping.kind == "uptime_kuma":
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                 if k not in ("status", "msg", "ping")]
        query += [("status", "up" if status == "success" else "down"), ("msg", message[:250]), ("ping", "")]
        url = urlunsplit(parts._replace(query=urlencode(query)))
        method = "GET"
    else:
        method = ping.method
        if method == "POST":
            data = clip(text) if status != "start" else b""
            headers["Content-Type"] = "text/plain; charset=utf-8"
    return urllib.request.Request(url, data=data, headers=headers, method=method)


def _latin1(text: str) -> str:
    """HTTP header values are Latin-1; anything else becomes '?'."""
    return text.encode("latin-1", "replace").decode("latin-1")[:200]


def send(ping: Ping, req: urllib.request.Request, deadline: float) -> int:
    """Send ``req``, retrying up to ``ping.retries`` times while ``deadline`` allows; the attempts made.

    Raises the last error when no attempt succeeded. An HTTP answer of 4xx
    other than 408 and 429 is not retried: asking again will not help.
    """
    attempts = 0
    while True:
        attempts += 1
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        try:
            with urllib.request.urlopen(req, timeout=left) as response:
                response.read(65536)
            return attempts
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                raise
            error: Exception = exc
        except (OSError, ValueError) as exc:
            error = exc
        left = deadline - time.monotonic()
        if attempts > ping.retries or left <= 0.05:
            raise error
        time.sleep(min(PAUSE, left / 2))
