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
