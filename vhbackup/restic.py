"""Every restic call vhbackup makes, and what restic's answers mean.

``Restic`` is bound to one repository. It builds the argv and environment
(the password travels as ``RESTIC_PASSWORD_FILE``, backend secrets from the
env file, ``TMPDIR`` on disk beside the cache), detects the version once
(cached beside restic's cache while the binary is unchanged) and picks flags
it supports, parses ``--json`` output, and turns failures into typed errors
(``classify``): callers branch on the type, never on restic's wording.
No other module runs restic.

Paths handed to restic are literal: ``--include`` patterns are escaped
(``literal_pattern``), so ``/srv/app[1]`` never matches ``/srv/app1``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Callable, Iterator, Sequence

from vhbackup import diskspace, proc, state
from vhbackup.errors import (AccessDenied, DeleteRefused, HostKeyMismatch, Interrupted, RepositoryDamaged,
                             RepositoryError, RepositoryFull, RepositoryLocked, RepositoryMissing,
                             RepositoryUnreachable, ResticError, ResticStuck, VhError, WrongPassword)
from vhbackup.policy import Repository
from vhbackup.urls import display_url

log = logging.getLogger("vhbackup")

INSTALL_HINT = "apt install restic (or set restic_binary: in the policy)"
#: A streak of retry messages ends when none came for this long.
_RETRY_STREAK_GAP = 120.0


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    def at_least(self, major: int, minor: int) -> bool:
        return (self.major, self.minor) >= (major, minor)

    @property
    def safe_restore(self) -> bool:
        """restic 0.17 restores without following symlinks it finds in the target."""
        return self.at_least(0, 17)


@dataclass(frozen=True)
class Snapshot:
    id: str
    time: datetime
    host: str
    tags: tuple[str, ...]
    paths: tuple[str, ...]
    summary: dict = field(default_factory=dict, compare=False)

    @property
    def short_id(self) -> str:
        return self.id[:8]

    def tag_values(self, prefix: str) -> tuple[str, ...]:
        return tuple(t[len(prefix) + 1:] for t in self.tags if t.startswith(prefix + ":"))

    def tag_value(self, prefix: str) -> str | None:
        values = self.tag_values(prefix)
        return values[0] if values else None


@dataclass(frozen=True)
class Key:
    """One restic key (a password) of the repository; ``current``: the one this Restic's password opened."""
    id: str
    user: str
    host: str
    created: str
    current: bool

    @property
    def short_id(self) -> str:
        return self.id[:8]


@dataclass(frozen=True)
class BackupResult:
    snapshot_id: str
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    data_added: int = 0
    total_bytes: int = 0
    total_files: int = 0
    duration: float = 0.0
    partial: bool = False
    unreadable: tuple[str, ...] = ()

    @classmethod
    def from_summary(cls, summary: dict, partial: bool, unreadable: Sequence[str]) -> BackupResult:
        return cls(
            snapshot_id=summary["snapshot_id"],
            files_new=summary.get("files_new", 0), files_changed=summary.get("files_changed", 0),
            files_unmodified=summary.get("files_unmodified", 0), data_added=summary.get("data_added", 0),
            total_bytes=summary.get("total_bytes_processed", 0),
            total_files=summary.get("total_files_processed", 0),
            duration=summary.get("total_duration", 0.0), partial=partial, unreadable=tuple(unreadable),
        )


def parse_time(text: str) -> datetime:
    """restic's RFC 3339 times carry nanoseconds, which fromisoformat refuses before 3.11's limits."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if not match:
        return datetime.fromisoformat(text)
    frac = (match.group(2) or ".0")[:7]
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    return datetime.fromisoformat(match.group(1) + frac + zone)


#: restic 0.14 "could not load snapshot 1a2b3c4d: ...", 0.18 'Ignoring "<id>": failed to load snapshot 1a2b3c4d: ...'
_UNLOADABLE_SNAPSHOT = re.compile(r"(?:could not|failed to) load snapshot ([0-9a-f]{8,64})")


def unloadable_snapshots(stderr: str) -> list[str]:
    """Ids of the snapshots restic said it could not load (it skips them and still exits 0)."""
    return list(dict.fromkeys(_UNLOADABLE_SNAPSHOT.findall(stderr)))


def parse_snapshots(text: str) -> list[Snapshot]:
    """``restic snapshots --json`` output as snapshots, oldest first.

    The array is decoded one snapshot at a time and only what vhbackup reads
    is kept (tags and host names shared, the summary's size only), so that
    planning the retention of years of runs stays small (``make bench``).
    """
    snaps = [
        Snapshot(id=s["id"], time=parse_time(s["time"]), host=sys.intern(s.get("hostname", "")),
                 tags=tuple(sys.intern(t) for t in s.get("tags") or ()),
                 paths=tuple(sys.intern(p) for p in s.get("paths") or ()),
                 summary={k: v for k, v in (s.get("summary") or {}).items() if k in _SUMMARY_KEPT})
        for s in _json_array(text)
    ]
    return sorted(snaps, key=lambda s: s.time)


#: The one figure of a snapshot's summary that vhbackup reads (runs.Run.size).
_SUMMARY_KEPT = ("total_bytes_processed",)


def _json_array(text: str) -> Iterator[dict]:
    """The items of a JSON array (or nothing for empty output or null), decoded one by one."""
    decoder = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")
    i = ws.match(text or "").end()
    if not text or i == len(text) or text[i] != "[":
        yield from json.loads(text or "[]") or []
        return
    i = ws.match(text, i + 1).end()
    if text.startswith("]", i):
        return
    while True:
        item, i = decoder.raw_decode(text, i)
        yield item
        i = ws.match(text, i).end()
        if text.startswith("]", i):
            return
        if not text.startswith(",", i):
            raise ValueError(f"expected ',' or ']' at offset {i} of restic's snapshot list")
        i = ws.match(text, i + 1).end()


def literal_pattern(path: str) -> str:
    """``path`` as a restic pattern that matches exactly that path (``*?[\\`` escaped)."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", path)


# --- sftp: the ssh command restic runs -------------------------------------------------

_SSH_TARGET = re.compile(r"^(?:([A-Za-z0-9_.-]+)@)?([A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])$")
#: Less free space than this where an sftp write failed: the disk is full (restic writes packs of up to 128 MiB).
_SFTP_FULL_BELOW = 256 * 1024 ** 2
#: Seconds between ssh keepalives; ``repository.timeout`` / this many unanswered ones end the connection.
_SSH_ALIVE_INTERVAL = 10


def sftp_target(url: str) -> tuple[str | None, str, int | None]:
    """(user, host, port) of an ``sftp:user@host:/path`` or ``sftp://user@host:port/path`` URL."""
    rest = url[len("sftp:"):]
    port = None
    if rest.startswith("//"):
        netloc = rest[2:].split("/", 1)[0]
        match = re.match(r"^(.*?)(?::(\d+))?$", netloc)
        netloc, port = match.group(1), int(match.group(2)) if match.group(2) else None
    else:
        netloc = rest.split(":", 1)[0] if ":" in rest and not rest.startswith("[") else rest.split("]:", 1)[0] + "]"
    target = _SSH_TARGET.match(netloc)
    if target is None:
        raise VhError(f"repository.url {display_url(url)}: cannot read user@host from it (letters, digits, "
                      f"'.', '_' and '-' only)")
    return target.group(1), target.group(2).strip("[]"), port


def sftp_path(url: str) -> str:
    """The path of an ``sftp:`` URL on the server."""
    rest = url[len("sftp:"):]
    if rest.startswith("//"):
        path = "/" + rest[2:].split("/", 1)[1] if "/" in rest[2:] else "/"
        return path[1:] if path.startswith("//") else path
    return rest.split("]:", 1)[1] if rest.startswith("[") else rest.split(":", 1)[1]


def sftp_command(repo: Repository) -> list[str]:
    """The ssh command restic runs for an ``sftp:`` repository, as an argv (restic splits it at white space).

    Host keys are always checked (``StrictHostKeyChecking=yes``, also over a
    ``no`` in ssh_config: a new or changed host key fails); ``BatchMode`` never
    asks for a password; ``repository.timeout`` bounds connecting and a
    server that stops answering. Only paths and names: no secret is in it.
    """
    user, host, url_port = sftp_target(repo.url)
    opts = repo.sftp
    timeout = max(1, int(repo.timeout))
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={timeout}",
            "-o", f"ServerAliveInterval={_SSH_ALIVE_INTERVAL}",
            "-o", f"ServerAliveCountMax={max(1, -(-timeout // _SSH_ALIVE_INTERVAL))}"]
    port = (opts.port if opts and opts.port else None) or url_port
    if port:
        argv += ["-p", str(port)]
    if opts and opts.identity_file:
        argv += ["-i", opts.identity_file, "-o", "IdentitiesOnly=yes"]
    if opts and opts.known_hosts:
        argv += ["-o", f"UserKnownHostsFile={opts.known_hosts}"]
    if user:
        argv += ["-l", user]
    return argv + [host, "-s", "sftp"]


def classify_ssh(returncode: int, stderr: str, repo: Repository, source: str) -> RepositoryError | None:
    """The typed error for ssh's failure to open an sftp session (ssh exits 255), or None."""
    if returncode != 255:
        return None
    shown = display_url(repo.url)
    text = stderr.lower()
    known_hosts = repo.sftp.known_hosts if repo.sftp and repo.sftp.known_hosts else "ssh's known_hosts"
    user, host, url_port = sftp_target(repo.url)
    port = (repo.sftp.port if repo.sftp and repo.sftp.port else None) or url_port or 22
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("@")]
    if "remote host identification has changed" in text or "has changed and you have requested strict" in text:
        return HostKeyMismatch(f"repository {shown}: the ssh host key of {host}:{port} is not the one pinned in "
                               f"{known_hosts} (changed: a reinstalled server or someone in between); verify the "
                               f"new fingerprint with the server's admin, then replace the line in {known_hosts}")
    if "host key verification failed" in text or "no " in text and "host key is known" in text:
        return HostKeyMismatch(f"repository {shown}: the ssh host key of {host}:{port} is not pinned in "
                               f"{known_hosts}; add it (ssh-keyscan -p {port} {host}) after checking its "
                               f"fingerprint, or set repository.sftp.known_hosts in {source}")
    if "permission denied" in text:
        return AccessDenied(f"repository {shown} refused the ssh login: {lines[-1] if lines else 'permission denied'}"
                            f"; check repository.sftp.identity_file in {source} and the server's authorized_keys")
    if any(marker in text for marker in _UNREACHABLE) or "operation timed out" in text:
        return RepositoryUnreachable(f"cannot reach repository {shown}: {lines[-1] if lines else 'ssh failed'}; "
                                     f"check the network, repository.url and repository.sftp.port in {source}")
    return None


# --- what restic's failures mean ------------------------------------------------------

_ACCESS_DENIED = ("unexpected http response (401)", "unexpected http response (403)", "401 unauthorized",
                  "403 forbidden", "accessdenied", "access denied", "invalidaccesskeyid", "signaturedoesnotmatch",
                  "permission denied (publickey", "host key verification failed", "authentication failed",
                  "signature we calculated does not match", "access key id you provided does not exist",
                  "invalid access key id", "security token included in the request is invalid")
_UNREACHABLE = ("connection refused", "no such host", "i/o timeout", "network is unreachable", "no route to host",
                "tls: ", "x509: ", "connection reset by peer", "context deadline exceeded",
                "connection timed out", "temporary failure in name resolution", "ssh: connect to host")
_MISSING = ("unable to open config file", "repository does not exist", "config file does not exist",
            "specified bucket does not exist", "nosuchbucket")
_FULL = ("no space left on device", "disk quota exceeded", "quotaexceeded", "quota exceeded", "insufficient storage",
         "unexpected http response (507)", "entitytoolarge")
#: An sftp repository whose ssh could not be started: ssh's own words (sometimes lost by restic) tell why.
_SSH_FAILED = "unable to start the sftp session"
_LOCKED = ("repository is already locked", "unable to create lock")
_RETRYING = re.compile(r"returned error, retrying after")
_GAVE_UP = re.compile(r"^(?:Save|Load|Remove|List|Stat)\(.*\) failed: ")


def classify(returncode: int, stderr: str, url: str, password_file: str, source: str) -> RepositoryError | None:
    """The typed error when the repository could not be used at all, else None.

    restic >= 0.17 says it with exit codes (10 no repository, 11 locked,
    12 wrong password); before that everything is exit 1 and only the
    message tells, so this is the one place that reads restic's wording.
    """
    shown = display_url(url)
    text = stderr.lower()
    if returncode == 12 or "wrong password or no key found" in text:
        return WrongPassword(f"wrong password for repository {shown}: the password in {password_file} "
                             f"does not open it")
    if any(marker in text for marker in _ACCESS_DENIED):
        return AccessDenied(f"repository {shown} refused access: {display_url(last_error(stderr))}; check the "
                            f"credentials (user and password in repository.url, or the env file) in {source}")
    if returncode == 11 or any(marker in text for marker in _LOCKED):
        holder = next((ln.strip() for ln in message_lines(stderr) if "locked" in ln and " by " in ln), "")
        return RepositoryLocked(f"repository {shown} is locked by another restic process"
                                f"{' (' + holder + ')' if holder else ''}, which is still running; retry later, "
                                f"or wait for it with 'vhbackup --wait 2h ...'")
    if returncode != 10 and any(marker in text for marker in _UNREACHABLE):
        return RepositoryUnreachable(f"cannot reach repository {shown}: {display_url(last_error(stderr))}; "
                                     f"check the network and repository.url in {source}")
    if any(marker in text for marker in _FULL):
        return RepositoryFull(f"repository {shown} is full: {display_url(last_error(stderr))}; free space or raise "
                              f"the quota there (the failed write left no snapshot)")
    if _SSH_FAILED in text:
        return RepositoryUnreachable(f"cannot reach repository {shown} over ssh: {display_url(last_error(stderr))}; "
                                     f"check the server, repository.url and repository.sftp in {source}")
    if returncode == 10 or any(marker in text for marker in _MISSING):
        return RepositoryMissing(f"no restic repository at {shown}; create it with 'vhbackup init' "
                                 f"or fix repository.url in {source}")
    return None


def message_lines(stderr: str) -> list[str]:
    """stderr's lines, a JSON error message (restic >= 0.15 with --json) replaced by the lines of its text."""
    lines = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            try:
                msg = json.loads(line)
            except ValueError:
                msg = None
            if isinstance(msg, dict) and isinstance(msg.get("message"), str):
                lines += msg["message"].splitlines()
                continue
        lines.append(line)
    return lines


def last_error(stderr: str) -> str:
    """restic's own error line: a panic, else the last JSON or 'Fatal:' error, else the last plain line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    panic = next((ln for ln in lines if ln.startswith("panic:") or ln.startswith("fatal error:")), None)
    if panic:
        return f"restic crashed: {panic}"
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("message_type") in ("exit_error", "error"):
                return msg.get("message") or error_text(msg)
        elif line.startswith("Fatal:"):
            fatal = line[len("Fatal:"):].strip()
            first = next((ln for ln in lines if ln.startswith("ignoring error for ")), None)
            if first and fatal.startswith("There were"):
                return f"{fatal}, the first: {first[len('ignoring error for '):]}"
            return fatal
    plain = [ln for ln in lines if not ln.startswith("{") and not _RETRYING.search(ln)]
    return plain[-1] if plain else (lines[-1] if lines else "no error message")


def error_text(msg: dict) -> str:
    """The text of a JSON error message; restic 0.14 sends some errors as ``{}``: then look at the file itself."""
    err = msg.get("error") or {}
    if isinstance(err, dict) and err.get("message"):
        return err["message"]
    if isinstance(err, dict) and isinstance(err.get("Err"), int):
        return os.strerror(err["Err"])
    if isinstance(err, str) and err:
        return err
    return _why_unreadable(msg.get("item") or "")


def _why_unreadable(path: str) -> str:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            os.listdir(path)
        else:
            with open(path, "rb") as fh:
                fh.read(1)
    except OSError as exc:
        return exc.strerror or str(exc)
    return "restic reported an error without a reason (the file is readable now)"


class _RetryWatch:
    """Stops a restic that keeps retrying a backend, or that gave up on it but does not end, after the timeout.

    restic 0.18 retries an unreachable backend for many minutes. And after a
    write to the backend failed for good (a full disk), restic sometimes
    never ends (seen with 0.14 and 0.18: its archiver waits for a worker that
    is gone). Both are bounded by ``repository.timeout``.
    """

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.first = self.last = 0.0
        self.fired = False
        self.line = ""
        self.gave_up = ""
        #: A retried error that no retry can cure (refused credentials, no bucket, full): restic is stopped at once.
        self.permanent = ""

    def __call__(self, line: str) -> bool | float:
        if _GAVE_UP.search(line) and not self.gave_up:
            self.gave_up = line.strip()
            return self.timeout
        if not _RETRYING.search(line):
            return False
        text = line.lower()
        if any(m in text for m in _ACCESS_DENIED + _FULL + ("specified bucket does not exist", "nosuchbucket")):
            self.permanent = line.strip()
            return True
        now = time.monotonic()
        if not self.first or now - self.last > _RETRY_STREAK_GAP:
            self.first = now
        self.last = now
        self.line = line
        if now - self.first >= self.timeout:
            self.fired = True
        return self.fired


class _StuckWatch:
    """Stops a restic backup that reads and writes nothing, and uses no CPU, for ``repository.timeout``.

    restic waits like this, printing nothing but its progress line, for a
    storage server that stopped answering (restic 0.14 for ever), and restic
    0.14 after a pack write that failed (seen when the repository's disk
    filled up: its final flush waits for the lost writer for ever). A backup
    that works reads files (or its input), computes, or sends: a slow server
    that still answers takes data from its sockets' send queues. A backup of
    a dump may wait for the dump tool, whose silence vhbackup's pump bounds
    itself: there restic counts as stuck only while its input waits unread in
    the pipe, or after the input ended (``whole_run=False``). restic and its
    children (ssh, rclone, a wrapper) are watched together. Polled once a
    second with restic's pid (``proc.stream``, ``proc.Step.poll``).
    """

    #: Bytes of I/O beyond restic's own output that count as progress.
    SLACK_BYTES = 64 << 10
    #: CPU that counts as progress: this much, plus this share of a core over the quiet time (a hung
    #: restic still runs its progress ticker and Go's garbage collector: about 0.03% of a core; a
    #: working one on a machine that is busy elsewhere may get only a few % of one).
    SLACK_CPU = 0.05
    CPU_SHARE = 0.01

    def __init__(self, timeout: float, whole_run: bool):
        self.timeout = timeout
        self.armed = whole_run
        self.output = 0
        self.mark: tuple[int, float] | None = None
        self.since = 0.0
        self.sockets: tuple = ()
        self.current = ""
        self.counted: tuple = ()
        self.counted_more = False
        self.fired = False
        self.blind = False

    def line(self, line: str, msg: dict | None) -> None:
        """Each line restic printed (its own output is not progress); status messages say what it reads."""
        self.output += len(line.encode("utf-8", "replace")) + 1
        if msg is None or msg.get("message_type") != "status":
            return
        if msg.get("current_files"):
            self.current = str(msg["current_files"][0])
        counted = (msg.get("files_done"), msg.get("bytes_done"), msg.get("total_files"), msg.get("current_files"))
        if counted != self.counted:  # a scan of unchanged files on a slow mount shows only here
            self.counted, self.counted_more = counted, True
        if (msg.get("total_files") or 0) > 0 and (msg.get("files_done") or 0) >= msg["total_files"]:
            self.armed = True

    def input_ended(self) -> None:
        """A dump backup's input was closed (restic saw end-of-file): from now on only restic can be slow."""
        self.armed = True

    def __call__(self, pid: int) -> bool:
        seen = proc.activity(pid)
        if seen is None:
            if not self.blind:
                self.blind = True
                log.warning("cannot watch restic (pid %d) for a hang: /proc does not show its counters to "
                            "vhbackup's user", pid)
            return False
        io, cpu = seen[0] - self.output, seen[1]
        now = time.monotonic()
        counted, self.counted_more = self.counted_more, False
        if (self.mark is None or not (self.armed or proc.unread_input(pid)) or counted
                or not 0 <= io - self.mark[0] <= self.SLACK_BYTES  # less: a child ended; start again
                or not 0 <= cpu - self.mark[1] <= self.SLACK_CPU + self.CPU_SHARE * (now - self.since)
                or (now - self.since >= self.timeout / 2 and self._sending(pid))):
            self.mark, self.since = (io, cpu), now
            return False
        self.fired = now - self.since >= self.timeout
        return self.fired

    def _sending(self, pid: int) -> bool:
        """restic's sockets' queues changed since the last look: the kernel still moves its data.

        Looked at only in the second half of a quiet spell: reading the host's TCP table costs
        about 0.1 s with tens of thousands of sockets.
        """
        queues = proc.socket_queues(pid)
        moved = queues != self.sockets and any(tx or rx for _, tx, rx in queues + self.sockets)
        self.sockets = queues
        return moved


# --- the runner ----------------------------------------------------------------------


class Restic:
    def __init__(self, binary: str, repository: Repository, host: str, source: str, *, verbose: bool = False,
                 progress: Callable[[str, dict], None] | None = None):
        self.binary = binary
        self.repo = repository
        self.host = host
        self.source = source
        self.verbose = verbose
        self.progress = progress
        self._unlock_lock = threading.Lock()

    # --- plumbing -------------------------------------------------------------

    @cached_property
    def version(self) -> Version:
        cached = self._cached_version()
        if cached is not None:
            return cached
        result = proc.run([self.binary, "version"], missing_hint=INSTALL_HINT, timeout=30)
        match = re.search(r"restic (\d+)\.(\d+)\.(\d+)", result.stdout)
        if result.returncode != 0 or not match:
            raise VhError(f"{self.binary} does not look like restic ('{result.stdout.strip()[:80]}'); "
                          f"check restic_binary in {self.source}")
        version = Version(*map(int, match.groups()))
        if not version.at_least(0, 14):
            raise VhError(f"restic {version} is too old; vhbackup needs restic 0.14 or newer")
        self._cache_version(version)
        return version

    def _version_key(self) -> str | None:
        exe = shutil.which(self.binary)
        if exe is None:
            return None
        st = os.stat(exe)
        return f"{os.path.realpath(exe)}:{st.st_size}:{st.st_mtime_ns}"

    def _cached_version(self) -> Version | None:
        """The version detected earlier for this very binary (same path, size and mtime): saves a process."""
        try:
            key = self._version_key()
            data = state.read_lenient(os.path.join(self.repo.cache_dir, "restic-version.json"))
            if key and data.get("key") == key:
                return Version(*data["version"])
        except (OSError, ValueError, TypeError, KeyError):
            pass
        return None

    def _cache_version(self, version: Version) -> None:
        try:
            state.write_json_atomic(os.path.join(self.repo.cache_dir, "restic-version.json"),
                                    {"key": self._version_key(),
                                     "version": [version.major, version.minor, version.patch]})
        except OSError:
            pass  # a cache: the next run detects the version again

    @property
    def env(self) -> dict[str, str]:
        env = dict(self.repo.env)
        env.update({
            "RESTIC_REPOSITORY": self.repo.url,
            "RESTIC_PASSWORD_FILE": self.repo.password_file,
            "RESTIC_CACHE_DIR": self.repo.cache_dir,
            "RESTIC_PROGRESS_FPS": "1",
        })
        try:  # restic's temporary packs on disk (Repository.temp_dir), not in a /tmp that may be a tmpfs
            os.makedirs(self.repo.temp_dir, mode=0o700, exist_ok=True)
            env["TMPDIR"] = self.repo.temp_dir
        except OSError:  # a cache restic cannot use either (it warns and goes on): its default temp dir
            pass
        return env

    def argv(self, *args: str) -> list[str]:
        argv = [self.binary]
        if self.repo.url.startswith("sftp:"):
            argv += ["-o", "sftp.command=" + " ".join(sftp_command(self.repo))]
        if self.repo.compression and args and args[0] in ("backup", "prune", "forget", "init", "copy"):
            argv += ["--compression", self.repo.compression]
        return argv + list(args)

    def _echo(self, line: str) -> None:
        if self.verbose and line.strip():
            log.info("restic: %s", line)

    def error(self, command: str, returncode: int, stderr: str, watch: _RetryWatch | None = None) -> ResticError:
        """The one error for a failed restic call: typed when the repository could not be used."""
        ended_itself = "Fatal:" in stderr or '"exit_error"' in stderr
        seen = stderr + (watch.line + watch.gave_up if watch is not None else "")
        if self.repo.url.startswith("sftp:") and "ssh_fx_failure" in seen.lower() and "Save(" in seen:
            free = self.sftp_free_bytes()
            if free is not None and free < _SFTP_FULL_BELOW:
                return RepositoryFull(f"repository {display_url(self.repo.url)} is full: writing failed and the "
                                      f"server's disk has {free // 1024 ** 2} MiB free; free space or grow it there "
                                      f"(the failed write left no snapshot)")
        if watch is not None and watch.permanent:
            stderr = watch.permanent  # restic, stopped, then says only "context canceled"
        elif watch is not None and watch.gave_up and not ended_itself:
            return ResticError(f"restic {command} did not end within {self.repo.timeout:.0f} s after it failed: "
                               f"{display_url(watch.gave_up)}")
        if watch is not None and watch.fired:
            return RepositoryUnreachable(
                f"cannot reach repository {display_url(self.repo.url)}: it did not answer for "
                f"{self.repo.timeout:.0f} s (repository.timeout): {display_url(watch.line.strip())}; check the network "
                f"and the server")
        known = classify(returncode, stderr, self.repo.url, self.repo.password_file, self.source)
        if known is not None and _SSH_FAILED in stderr.lower():
            known = self.diagnose_ssh() or known
        if isinstance(known, AccessDenied) and command in ("forget", "prune"):
            return DeleteRefused(f"repository {display_url(self.repo.url)} refused to delete ({command}): "
                                 f"{display_url(last_error(stderr))}; an append-only server keeps everything: "
                                 f"forget and prune must run where deleting is allowed")
        if known is not None:
            return known
        if returncode in (-signal.SIGINT, 130) and proc.cancelled():
            return Interrupted(f"restic {command} was interrupted")
        if returncode < 0:
            return ResticError(f"restic {command} was {proc.describe_exit(returncode)}")
        return ResticError(f"restic {command} failed ({proc.describe_exit(returncode)}): "
                           f"{display_url(last_error(stderr))}")

    def stuck_error(self, command: str, watch: _RetryWatch, stuck: _StuckWatch) -> ResticError:
        """The error for a restic that ``_StuckWatch`` stopped; the retry watch's when restic was retrying."""
        if watch.permanent or (watch.line and time.monotonic() - watch.last <= _RETRY_STREAK_GAP):
            watch.fired = not watch.permanent
            return self.error(command, -signal.SIGINT, "", watch)
        where = ""
        if (path := diskspace.local_repository_path(self.repo.url)) is not None:
            try:
                where = f"; {diskspace.existing_parent(path)} has {diskspace.free_bytes(path) >> 20} MiB free now"
            except OSError:
                pass
        last = f" (its last file: {stuck.current})" if stuck.current else ""
        return ResticStuck(f"restic {command} stopped making progress: it read and wrote nothing for "
                           f"{self.repo.timeout:.0f} s (repository.timeout){last}, so it was stopped and nothing "
                           f"was saved; restic waits like this for a repository that stopped answering "
                           f"({display_url(self.repo.url)}), for a source that cannot be read (a hung network "
                           f"mount), and restic 0.14 after a write to the repository failed (a full disk{where}): "
                           f"check them, then back up again")

    def sftp_free_bytes(self) -> int | None:
        """Free bytes where the sftp repository lies (sftp's ``df``, the statvfs@openssh.com extension), or None.

        sftp reports a full disk only as the generic SSH_FX_FAILURE.
        """
        ssh = sftp_command(self.repo)
        user, host, _ = sftp_target(self.repo.url)
        argv = ["sftp", "-b", "-"]
        options = ssh[1:-3]
        for i, arg in enumerate(options):
            if arg == "-p":
                argv.append("-P")
            elif arg == "-l" or (i and options[i - 1] == "-l"):
                continue
            else:
                argv.append(arg)
        path = sftp_path(self.repo.url)
        argv.append(f"{user}@{host}" if user else host)
        try:
            result = proc.run(argv, input=f'df "{path}"\n', timeout=self.repo.timeout + 5)
        except VhError:
            return None
        numbers = [ln.split() for ln in result.stdout.splitlines() if ln.split() and ln.split()[0].isdigit()]
        if result.returncode != 0 or not numbers or len(numbers[0]) < 3:
            return None
        return int(numbers[0][2]) * 1024  # Size Used Avail ... in KiB

    def diagnose_ssh(self) -> RepositoryError | None:
        """Why ssh to an sftp repository fails, from ssh's own stderr (restic often loses it), or None."""
        try:
            result = proc.run(sftp_command(self.repo), timeout=self.repo.timeout + 5)
        except VhError:
            return None
        return classify_ssh(result.returncode, result.stderr, self.repo, self.source)

    def run(self, *args: str, ok: Sequence[int] = (0,)) -> proc.Result:
        """Run one restic command to its end; its stdout, or the typed error.

        A command blocked by a lock is tried once more after ``restic unlock``,
        which removes only locks of processes that are gone (a restic killed
        while it held one); a lock of a live process stays and is reported.
        """
        try:
            return self._run_once(args, ok)
        except RepositoryLocked:
            if args[0] == "unlock":
                raise
            self.unlock()
            return self._run_once(args, ok)

    def _run_once(self, args: Sequence[str], ok: Sequence[int], env: dict[str, str] | None = None) -> proc.Result:
        watch = _RetryWatch(self.repo.timeout)

        def on_stderr(line: str) -> bool | float:
            self._echo(line)
            return watch(line)

        result = self._stream(args, None, on_stderr, env)
        if result.returncode not in ok:
            raise self.error(args[0], result.returncode, result.stderr, watch)
        return result

    def _stream(self, args: Sequence[str], on_line: Callable[[str], None] | None,
                on_stderr: Callable[[str], bool], env: dict[str, str] | None = None,
                poll: Callable[[int], bool] | None = None) -> proc.Result:
        """Run restic with stdout collected (or given line by line to ``on_line``) and stderr watched.

        A restic that keeps retrying an unreachable backend for longer than
        ``repository.timeout`` is stopped (SIGINT, so it removes its lock).
        """
        self.version  # noqa: B018 - detect once, before the first real call
        out: list[str] = []
        result = proc.stream(self.argv(*args), on_line or out.append, env=env or self.env, missing_hint=INSTALL_HINT,
                             on_stderr=on_stderr, stop_signal=signal.SIGINT, poll=poll)
        return proc.Result(result.argv, result.returncode, "\n".join(out), result.stderr)

    def unlock(self) -> None:
        """``restic unlock``: removes only locks of processes that are gone (or older than 30 min)."""
        with self._unlock_lock:
            self._run_once(("unlock",), (0,))

    # --- repository -----------------------------------------------------------

    def exists(self) -> bool:
        """True if the repository opens; False if there is none. Other failures raise."""
        try:
            self.run("cat", "config")
        except RepositoryMissing:
            return False
        return True

    def init(self, chunker_from: Repository | None = None) -> None:
        """``restic init``; with ``chunker_from``, with that repository's chunker parameters (for copies)."""
        if chunker_from is None:
            self.run("init")
        else:
            self._run_once(("init", "--copy-chunker-params"), (0,), self._from_env(chunker_from))

    def _from_env(self, source: Repository) -> dict[str, str]:
        """This repository's environment plus ``source`` as restic's ``--from-repo`` (0.14 and 0.18 alike).

        Both versions read ``RESTIC_FROM_REPOSITORY``/``RESTIC_FROM_PASSWORD_FILE`` (0.14 introduced
        them, with ``--repo2`` kept as a deprecated alias): nothing secret goes on the command line.
        Backend variables (e.g. AWS keys) are shared by both repositories in one restic process: the
        source's env file is applied first, this repository's over it.
        """
        env = {**source.env, **self.env}
        env.update({"RESTIC_FROM_REPOSITORY": source.url, "RESTIC_FROM_PASSWORD_FILE": source.password_file})
        return env

    def copy_from(self, source: Repository, ids: Sequence[str]) -> None:
        """``restic copy`` of exactly the snapshots ``ids`` from ``source`` into this repository (tags kept)."""
        if not ids:
            return
        args = ("copy", *ids)
        try:
            self._run_once(args, (0,), self._from_env(source))
        except RepositoryLocked:
            self.unlock()
            self._run_once(args, (0,), self._from_env(source))

    def config(self) -> dict:
        """The repository's config: its ``id``, ``version`` and ``chunker_polynomial`` (no secret)."""
        return json.loads(self.run("cat", "config").stdout or "{}")

    # --- keys -----------------------------------------------------------------

    def with_password_file(self, password_file: str) -> Restic:
        """The same repository opened with another password file (key rotation)."""
        return Restic(self.binary, replace(self.repo, password_file=password_file), self.host, self.source,
                      verbose=self.verbose, progress=self.progress)

    def keys(self) -> list[Key]:
        """``restic key list --json``; the key this password opens is ``current``.

        restic 0.14 gives 8-digit key ids, 0.18 whole ones; both are prefixes
        that ``key remove`` accepts.
        """
        result = self.run("key", "list", "--json")
        return [Key(id=k["id"], user=k.get("userName", ""), host=k.get("hostName", ""),
                    created=k.get("created", ""), current=bool(k.get("current")))
                for k in json.loads(result.stdout or "[]") or []]

    def key_add(self, new_password_file: str, user: str) -> None:
        """Add a key whose password is read from ``new_password_file`` (never on the command line).

        restic 0.14 does not print the new key's id (0.18 does): callers learn
        it by opening the repository with the new password (``keys``).
        """
        self.run("key", "add", f"--new-password-file={new_password_file}", f"--user={user}",
                 f"--host={self.host}")

    def key_remove(self, key_id: str) -> None:
        """Remove another key than the current one (restic refuses to remove the current key)."""
        self.run("key", "remove", key_id)

    def snapshots(self, tags: Sequence[str] = ("vhbackup",), ids: Sequence[str] = (),
                  damaged_ok: bool = False, fresh: bool = False) -> list[Snapshot]:
        """The snapshots with all ``tags``. A snapshot file restic cannot load (truncated, corrupted) is left
        out of restic's list with only a line on stderr and exit 0: then "the latest" could silently be an
        older dump, so this raises RepositoryDamaged, or with ``damaged_ok`` (listings a person reads) warns.
        ``fresh``: read every snapshot file from the repository, not restic's cache (a drill proves what a new
        machine, which has no cache, would get)."""
        args = ["snapshots", "--json", *(["--no-cache"] if fresh else [])]
        for tag in tags:
            args.append(f"--tag={tag}")
        result = self.run(*args, *ids)
        unloadable = unloadable_snapshots(result.stderr)
        if unloadable:
            text = (f"restic cannot load snapshot {', '.join(unloadable)} of {display_url(self.repo.url)} (damaged): "
                    f"it is left out of every list, so runs may look older or emptier than they are; run "
                    f"'vhbackup verify --full', then remove it with 'restic forget {unloadable[0]}' or "
                    f"'restic repair snapshots'")
            if not damaged_ok:
                raise RepositoryDamaged(text)
            log.warning("%s", text)
        return parse_snapshots(result.stdout)

    # --- backup ---------------------------------------------------------------

    def _tag_args(self, tags: Sequence[str]) -> list[str]:
        return [f"--host={self.host}", *(f"--tag={tag}" for tag in tags)]

    def backup(self, paths: Sequence[str], tags: Sequence[str], excludes: Sequence[str] = (),
               job: str = "files") -> BackupResult:
        """Back up ``paths`` (literal) into one snapshot; partial (exit 3) when some files could not be read."""
        args = ["backup", "--json", *self._tag_args(tags), *(f"--exclude={p}" for p in excludes), "--", *paths]
        stuck = _StuckWatch(self.repo.timeout, whole_run=True)
        collector = _BackupMessages(self, job, stuck=stuck)
        watch = _RetryWatch(self.repo.timeout)

        def on_stderr(line: str) -> bool:
            collector.line(line)
            return watch(line)

        result = self._stream(args, collector.line, on_stderr, poll=stuck)
        summary = collector.summary
        if stuck.fired and not (result.returncode in (0, 3) and summary.get("snapshot_id")):
            raise self.stuck_error("backup", watch, stuck)
        if result.returncode == 3 and summary.get("snapshot_id"):
            return BackupResult.from_summary(summary, partial=True, unreadable=collector.unreadable)
        if result.returncode != 0:
            raise self.error("backup", result.returncode, result.stderr, watch)
        if not summary.get("snapshot_id"):
            raise ResticError("restic backup reported success but no snapshot id; run with -v to see its output")
        return BackupResult.from_summary(summary, partial=False, unreadable=collector.unreadable)

    def stdin_backup(self, filename: str, tags: Sequence[str], producer: proc.Step,
                     commit: Callable[[proc.Ended, proc.Stream], str | None],
                     job: str, idle_timeout: float | None = None) -> tuple[BackupResult | None, proc.Pumped]:
        """``producer | restic backup --stdin``; restic sees end-of-file (and saves) only if ``commit`` says so.

        Returns (result, pumped): result is None when the snapshot was not made
        because ``commit`` refused (``pumped.aborted`` says why). Raises the
        typed restic error when restic itself failed, also when it stopped
        reading first (then the producer was stopped and is not to blame).
        """
        self.version  # noqa: B018
        stuck = _StuckWatch(self.repo.timeout, whole_run=False)
        collector = _BackupMessages(self, job, quiet_errors=True, stuck=stuck)
        watch = _RetryWatch(self.repo.timeout)

        def on_stderr(line: str) -> bool:
            collector.line(line)
            return watch(line)

        consumer = proc.Step(tuple(self.argv("backup", "--json", "--stdin", f"--stdin-filename={filename}",
                                             *self._tag_args(tags))),
                             env=self.env, stop_signal=signal.SIGINT, missing_hint=INSTALL_HINT,
                             death_signal=signal.SIGKILL, poll=stuck)
        def committed(ended: proc.Ended, stream: proc.Stream) -> str | None:
            why = commit(ended, stream)
            if why is None:
                stuck.input_ended()
            return why

        pumped = proc.pump(producer, consumer, commit=committed, on_consumer_line=collector.line,
                           on_consumer_stderr=on_stderr, idle_timeout=idle_timeout)
        restic_ = pumped.consumer
        if pumped.aborted == "interrupted":
            raise Interrupted("interrupted")
        if stuck.fired and not (restic_.ok and collector.summary.get("snapshot_id")):
            raise self.stuck_error("backup", watch, stuck)
        if pumped.consumer_first or (pumped.aborted is None and not restic_.ok):
            raise self.error("backup", restic_.returncode, "\n".join(restic_.stderr), watch)
        if pumped.aborted is not None:
            return None, pumped
        if not collector.summary.get("snapshot_id"):
            raise ResticError("restic backup reported success but no snapshot id; run with -v to see its output")
        return BackupResult.from_summary(collector.summary, partial=False, unreadable=()), pumped

    # --- reading back ---------------------------------------------------------

    def ls(self, snapshot_id: str, paths: Sequence[str] = (), recursive: bool = False) -> Iterator[dict]:
        """The nodes of a snapshot, as restic's ``ls --json`` gives them.

        With ``paths`` (literal absolute paths: restic's ``ls`` takes them as
        paths, not patterns), only those and their direct children, or all
        below them with ``recursive``.
        """
        args = ["ls", "--json", *(["--recursive"] if recursive and paths else []), snapshot_id, *paths]
        result = self.run(*args)
        for line in result.stdout.splitlines():
            if line.startswith("{"):
                node = json.loads(line)
                if node.get("struct_type") == "node":
                    yield node

    def find(self, pattern: str, tags: Sequence[str] = ("vhbackup",), snapshot_ids: Sequence[str] = ()) -> list[dict]:
        """``restic find --json PATTERN`` over the snapshots with ``tags`` (or exactly ``snapshot_ids``, when
        given): one entry per snapshot with hits.

        The one place where vhbackup hands restic a pattern from the command
        line on purpose: ``vhbackup find`` is a search (and ``*`` lists
        several snapshots in one repository open, for ``diff``).
        """
        select = [f"--snapshot={sid}" for sid in snapshot_ids] if snapshot_ids else [f"--tag={t}" for t in tags]
        result = self.run("find", "--json", *select, "--", pattern)
        found: list[dict] = []
        for line in result.stdout.splitlines():
            line = line.strip()
            if line.startswith("["):
                found.extend(json.loads(line) or [])
            elif line.startswith("{"):
                found.append(json.loads(line))
        return found

    def diff(self, first_id: str, second_id: str) -> Iterator[dict]:
        """``restic diff --json``: the ``change`` messages (path and modifier: + - M T U)."""
        result = self.run("diff", "--json", first_id, second_id)
        for line in result.stdout.splitlines():
            if line.startswith("{"):
                msg = json.loads(line)
                if msg.get("message_type") == "change":
                    yield msg

    def restore(self, snapshot_id: str, target: str, includes: Sequence[str] = (), verify: bool = False) -> None:
        """Restore the snapshot (only the literal paths ``includes``, if given) under ``target``.

        ``verify``: restic reads the restored files back and checks their content.
        """
        args = ["restore", snapshot_id, f"--target={target}", *(["--verify"] if verify else [])]
        args += [f"--include={literal_pattern(path)}" for path in includes]
        if not self.version.safe_restore:
            self._clear_the_way(snapshot_id, target, includes)
        self.run(*args)

    def _clear_the_way(self, snapshot_id: str, target: str, includes: Sequence[str]) -> None:
        """restic < 0.17 follows symlinks it finds in the target: make the restore unable to leave it.

        Where the snapshot has a file or a symlink and the disk has a symlink,
        the symlink is removed (the restore puts back what the backup holds;
        restic < 0.17 would write through it, or fail with "file exists").
        Where the snapshot has a directory and the disk has a symlink, the
        restore is refused: the layout changed since the backup and which
        data belongs there is the admin's decision. When nothing exists yet
        where the restore writes, nothing can be in the way and the listing
        (a restic call) is skipped.
        """
        roots = [os.path.join(target, inc.lstrip("/")) for inc in includes] or [target]
        if not any(_occupied(root) for root in roots):
            return
        for node in self.ls(snapshot_id):
            path = node.get("path", "")
            if not path.startswith("/") or (includes and not _within(path, includes)):
                continue
            dest = os.path.join(target, path.lstrip("/"))
            if not os.path.islink(dest):
                continue
            if node.get("type") == "dir":
                raise VhError(f"{dest} is a symbolic link where the backup has a directory; restic "
                              f"{self.version} would follow it out of the restore; remove the link, or restore "
                              f"into a new --target and move the files")
            os.unlink(dest)

    def dump(self, snapshot_id: str, path: str, consumer: proc.Step | None = None, *,
             on_chunk: Callable[[bytes], None] | None = None,
             commit: Callable[[proc.Ended, proc.Stream], str | None] | None = None) -> proc.Pumped:
        """``restic dump`` of one file into ``consumer`` (or ``on_chunk``); raises if restic failed.

        The consumer sees end-of-file only when restic delivered the whole
        file (and ``commit`` agrees); otherwise it is stopped without it.
        """
        self.version  # noqa: B018
        producer = proc.Step(tuple(self.argv("dump", snapshot_id, path)), env=self.env,
                             stop_signal=signal.SIGINT, missing_hint=INSTALL_HINT)

        def judge(ended: proc.Ended, stream: proc.Stream) -> str | None:
            if not ended.ok:
                return f"restic dump {ended.how}"
            return commit(ended, stream) if commit else None

        pumped = proc.pump(producer, consumer, commit=judge, on_chunk=on_chunk)
        if pumped.aborted == "interrupted":
            raise Interrupted("interrupted")
        if not pumped.producer.ok and not pumped.consumer_first:
            raise self.error("dump", pumped.producer.returncode, "\n".join(pumped.producer.stderr))
        return pumped

    # --- maintenance ----------------------------------------------------------

    def forget(self, ids: Sequence[str], prune: bool = False) -> None:
        """Forget exactly ``ids``; with ``prune``, free their data (and unreferenced packs) in the same call."""
        if ids:
            self.run("forget", *(["--prune"] if prune else []), *ids)

    def prune(self) -> proc.Result:
        """``restic prune``: also removes packs that nothing references (left by an interrupted backup)."""
        return self.run("prune")

    def check(self, *extra: str) -> proc.Result:
        """``restic check``; returns the result whatever the exit code, for the caller's report.

        Raises the typed error when the repository could not be used at all
        (not damage, although restic before 0.17 exits 1 for it too). Only
        its ``Fatal:`` lines are judged, so that a damage report quoting,
        say, a canceled context is still a damage report.
        """
        def attempt() -> proc.Result:
            result = self.run("check", *extra, ok=(0, 1))
            fatal = "\n".join(ln for ln in result.stderr.splitlines()
                              if ln.startswith(("Fatal:", "unable to create lock")))
            error = classify(1, fatal, self.repo.url, self.repo.password_file, self.source) if fatal else None
            if result.returncode == 1 and error is not None:
                raise error
            return result

        try:
            return attempt()
        except RepositoryLocked:
            self.unlock()
            return attempt()

    def stats(self, mode: str = "raw-data") -> dict:
        return json.loads(self.run("stats", "--json", "--mode", mode).stdout or "{}")


class _BackupMessages:
    """Reads ``restic backup --json`` messages (stdout and stderr): summary, unreadable files, progress."""

    def __init__(self, restic: Restic, job: str, quiet_errors: bool = False, stuck: _StuckWatch | None = None):
        self.restic = restic
        self.job = job
        self.quiet_errors = quiet_errors
        self.stuck = stuck
        self.summary: dict = {}
        self.unreadable: list[str] = []

    def line(self, line: str) -> None:
        msg = None
        if line.startswith("{"):
            try:
                msg = json.loads(line)
            except ValueError:
                pass
        if self.stuck is not None:
            self.stuck.line(line, msg if isinstance(msg, dict) else None)
        if not isinstance(msg, dict):
            self.restic._echo(line)
            return
        kind = msg.get("message_type")
        if kind == "summary":
            self.summary.update(msg)
        elif kind == "error" and self.quiet_errors:
            log.debug("restic: %s", error_text(msg))
        elif kind == "error":
            item = msg.get("item") or ""
            self.unreadable.append(item)
            log.warning("could not read %s: %s", item, error_text(msg))
        elif kind == "status" and self.restic.progress:
            self.restic.progress(self.job, msg)


def _within(path: str, includes: Sequence[str]) -> bool:
    """``path`` is an included path, lies below one, or is a parent of one."""
    return any(path == inc or path.startswith(inc.rstrip("/") + "/") or inc.startswith(path.rstrip("/") + "/")
               for inc in includes)


def _occupied(path: str) -> bool:
    """Something exists at ``path`` that a restore could collide with: anything but an empty directory."""
    if not os.path.lexists(path):
        return False
    if os.path.islink(path) or not os.path.isdir(path):
        return True
    with os.scandir(path) as entries:
        return next(entries, None) is not None

