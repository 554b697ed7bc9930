"""What vhbackup learns from a repository's storage without its key (no restic, no key derivation).

Opening a repository costs restic a key derivation (scrypt, ~0.5 s by
design). Two questions do not need the key:

- ``probe``: is there a repository at the URL, and does the server answer
  within ``repository.timeout``? (Before services are stopped for a
  backup; bounded even where restic would retry for minutes.)
- ``prove``: are these snapshots stored, intact? restic names every file
  it stores by the SHA-256 of its bytes, so a snapshot file whose content
  hashes to its name is exactly the snapshot restic wrote.

Both work for local and REST repositories (the REST protocol restic's
rest-server and ``rclone serve restic`` speak). For other backends they
return None and the caller asks restic instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

from vhbackup.diskspace import local_repository_path
from vhbackup.errors import AccessDenied, RepositoryMissing, RepositoryUnreachable, VhError
from vhbackup.policy import Repository
from vhbackup.urls import display_url

#: restic's REST protocol v2 lists files with their sizes.
_REST_V2 = "application/vnd.x.restic.rest.v2"
#: Longest wait for one HTTP request, even with a longer repository.timeout.
_REQUEST_TIMEOUT = 30.0


class _Rest:
    """A REST repository: base URL without credentials, the Authorization header, a TLS context."""

    def __init__(self, repo: Repository):
        parts = urlsplit(repo.url[len("rest:"):])
        user = parts.username or repo.env.get("RESTIC_REST_USERNAME")
        password = parts.password or repo.env.get("RESTIC_REST_PASSWORD") or ""
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
        self.base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/", "", ""))
        self.headers = {}
        if user:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self.context = None
        if parts.scheme == "https":
            import ssl  # here, not at the top: most runs never speak HTTP, and every run pays its imports
            cafile = repo.env.get("RESTIC_CACERT")
            self.context = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
        self.timeout = min(repo.timeout, _REQUEST_TIMEOUT)
        self.shown = display_url(repo.url)

    def request(self, path: str, method: str = "GET", accept: str | None = None) -> bytes:
        import socket
        import urllib.error
        import urllib.request
        headers = dict(self.headers)
        if accept:
            headers["Accept"] = accept
        request = urllib.request.Request(self.base + path, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise AccessDenied(f"repository {self.shown} refused access (HTTP {exc.code}); check the user and "
                                   f"password in repository.url or the env file") from None
            if exc.code == 404:
                raise RepositoryMissing(f"no restic repository at {self.shown}; create it with 'vhbackup init' "
                                        f"or fix repository.url") from None
            raise RepositoryUnreachable(f"repository {self.shown} answered HTTP {exc.code} ({exc.reason})") from None
        except (urllib.error.URLError, OSError, socket.timeout) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, (socket.timeout, TimeoutError)) or "timed out" in str(reason):
                reason = f"no answer within {self.timeout:.0f} s"
            raise RepositoryUnreachable(f"cannot reach repository {self.shown}: {reason}; check the network "
                                        f"and repository.url") from None


def _rest(repo: Repository) -> _Rest | None:
    if not repo.url.startswith(("rest:http://", "rest:https://")):
        return None
    if repo.env.get("RESTIC_TLS_CLIENT_CERT"):
        return None  # client certificates: left to restic
    return _Rest(repo)


def probe(repo: Repository) -> bool:
    """Raise the typed error if the repository is missing, refuses us or does not answer in time.

    True when checked this way; False when the backend cannot be checked
    without restic (then restic's first call of the run tells).
    """
    path = local_repository_path(repo.url)
    if path is not None:
        if not os.path.exists(os.path.join(path, "config")):
            if os.path.isdir(path) and not os.access(path, os.R_OK | os.X_OK):
                raise VhError(f"cannot read the repository directory {path} (permission denied)")
            raise RepositoryMissing(f"no restic repository at {path}; create it with 'vhbackup init' or fix "
                                    f"repository.url")
        return True
    rest = _rest(repo)
    if rest is None:
        return False
    rest.request("config", method="HEAD")
    return True


def _stored_snapshots(repo: Repository) -> tuple[list[str], Callable[[str], bytes]] | None:
    """The names of the stored snapshot files and a reader for one, or None for other backends."""
    path = local_repository_path(repo.url)
    if path is not None:
        directory = os.path.join(path, "snapshots")

        def read_local(name: str) -> bytes:
            with open(os.path.join(directory, name), "rb") as fh:
                return fh.read()

        try:
            return os.listdir(directory), read_local
        except OSError as exc:
            raise VhError(f"cannot list {directory}: {exc.strerror}") from None
    rest = _rest(repo)
    if rest is None:
        return None
    listing = json.loads(rest.request("snapshots/", accept=_REST_V2) or b"[]")
    names = [item["name"] if isinstance(item, dict) else item for item in listing]
    return names, lambda name: rest.request(f"snapshots/{name}")


def prove(repo: Repository, ids: list[str]) -> list[str] | None:
    """The full ids of ``ids`` (full or 8-digit prefixes), each proven stored and intact; None: ask restic.

    Raises VhError naming the snapshot when one is missing or its stored
    bytes do not hash to its name.
    """
    stored = _stored_snapshots(repo)
    if stored is None:
        return None
    names, read = stored
    full = []
    for wanted in ids:
        matches = [n for n in names if n.startswith(wanted)]
        if len(matches) != 1:
            raise VhError(f"verification failed: snapshot {wanted[:8]} is not in the repository "
                          f"{display_url(repo.url)}")
        name = matches[0]
        if hashlib.sha256(read(name)).hexdigest() != name:
            raise VhError(f"verification failed: the stored snapshot {name[:8]} does not match its id "
                          f"(damaged in storage)")
        full.append(name)
    return full
