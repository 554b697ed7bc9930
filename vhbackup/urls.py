"""Repository URLs as they may be shown: a password in them is masked, and can be found for redaction."""

from __future__ import annotations

import re

_URL_PASSWORD = re.compile(r"(://[^/:@]+):([^/@]*)@")


def display_url(url: str) -> str:
    """The URL with any password in it masked."""
    return _URL_PASSWORD.sub(r"\1:***@", url)


def url_password(url: str) -> str | None:
    """The password in a URL such as ``rest:https://user:secret@host/``, or None."""
    match = _URL_PASSWORD.search(url)
    return match.group(2) or None if match else None


def secret_parts(url: str, min_length: int = 6) -> list[str]:
    """The parts of a monitoring URL that must be kept secret: the whole URL, and every path segment and
    query value of at least ``min_length`` characters (a healthchecks UUID, an ntfy topic, an Uptime Kuma
    push token). Placeholders (``{action}``) split a segment; the literal parts around them count alone.
    """
    from urllib.parse import parse_qsl, unquote, urlsplit

    found = [url]
    parts = urlsplit(url)
    pieces = [unquote(p) for p in parts.path.split("/")]
    pieces += [v for _, v in parse_qsl(parts.query, keep_blank_values=True)]
    if parts.password:
        pieces.append(parts.password)
    for piece in pieces:
        for literal in re.split(r"\{[^{}]*\}", piece):
            if len(literal) >= min_length:
                found.append(literal)
    return found
