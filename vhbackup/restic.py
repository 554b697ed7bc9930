"""Every restic call vhbackup makes, and what restic's answers mean.

``Restic`` builds the argv and environment (the password travels as
``RESTIC_PASSWORD_FILE``, backend secrets from the env file), detects the
version once and picks flags it supports, parses ``--json`` output, and
turns exit codes and stderr into one-line errors (``_raise_for``). No other
module runs restic.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import IO, Callable, Iterator, Sequence

from vhbackup import proc
from vhbackup.errors import PolicyError, ResticError, VhError
from vhbackup.policy import Policy

log = logging.getLogger("vhbackup")

INSTALL_HINT = "apt install restic (or set restic_binary: in the policy)"


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
    def stdin_from_command(self) -> bool:
        """restic 0.17 added --stdin-from-command, which records no snapshot if the command fails."""
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
class BackupResult:
    snapshot_id: str | None
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
            snapshot_id=summary.get("snapshot_id"),
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


_URL_PASSWORD = re.compile(r"(://[^/:@]+):([^/@]*)@")


def display_url(url: str) -> str:
    """The repository URL with any password in it masked."""
    return _URL_PASSWORD.sub(r"\1:***@", url)


def url_password(url: str) -> str | None:
    """The password in a repository URL such as ``rest:https://user:secret@host/``, or None."""
    match = _URL_PASSWORD.search(url)
    return match.group(2) or None if match else None


def temp_dir(cache_dir: str) -> str:
    """Where restic writes its temporary pack files: ``<cache_dir>/tmp``, on disk.

    Not /tmp, which Debian 13 mounts as a tmpfs of half the RAM (and which
    the units make private): on a small host restic's temporary packs would
    fill memory, and the free-space pre-check would measure the wrong file
    system. The cache directory is writable under the units
    (``CacheDirectory=vhbackup``) and when run by hand.
    """
    return os.path.join(cache_dir, "tmp")


class Restic:
    def __init__(self, policy: Policy, *, verbose: bool = False,
                 progress: Callable[[dict], None] | None = None):
        self.policy = policy
        self.binary = policy.restic_binary
        self.repo = policy.repository
        self.verbose = verbose
        self.progress = progress

    # --- plumbing -------------------------------------------------------------

    @cached_property
    def version(self) -> Version:
        result = proc.run([self.binary, "version"], missing_hint=INSTALL_HINT, timeout=30)
        match = re.search(r"restic (\d+)\.(\d+)\.(\d+)", result.stdout)
        if result.returncode != 0 or not match:
            raise VhError(f"{self.binary} does not look like restic ('{result.stdout.strip()[:80]}'); "
                          f"check restic_binary in {self.policy.source}")
        version = Version(*map(int, match.groups()))
        if not version.at_least(0, 14):
            raise VhError(f"restic {version} is too old; vhbackup needs restic 0.14 or newer")
        return version

    @property
    def env(self) -> dict[str, str]:
        env = dict(self.repo.env)
        env.update({
            "RESTIC_REPOSITORY": self.repo.url,
            "RESTIC_PASSWORD_FILE": self.repo.password_file,
            "RESTIC_CACHE_DIR": self.repo.cache_dir,
            "RESTIC_PROGRESS_FPS": "1",
        })
        tmpdir = temp_dir(self.repo.cache_dir)
        try:
            os.makedirs(tmpdir, mode=0o700, exist_ok=True)
            env["TMPDIR"] = tmpdir
        except OSError:  # a cache restic cannot use either (it warns and goes on): its default temp dir
            pass
        return env

    def argv(self, *args: str) -> list[str]:
        argv = [self.binary]
        if self.repo.compression and args and args[0] in ("backup", "prune", "forget", "init"):
            argv += ["--compression", self.repo.compression]
        return argv + list(args)

    def _echo(self, line: str) -> None:
        if self.verbose and line.strip():
            log.info("restic: %s", line)

    def run(self, *args: str, ok: Sequence[int] = (0,), input: str | None = None,
            timeout: float | None = None) -> proc.Result:
        self.version  # noqa: B018 - detect once, before the first real call
        result = proc.run(self.argv(*args), env=self.env, missing_hint=INSTALL_HINT, input=input,
                          timeout=timeout)
        if self.verbose:
            for line in result.stderr.splitlines():
                self._echo(line)
        if result.returncode not in ok:
            self._raise_for(args[0], result.returncode, result.stderr)
        return result

    def _raise_for(self, command: str, returncode: int, stderr: str) -> None:
        """Translate a failed restic call into one clear line."""
        known = self._access_error(returncode, stderr)
        if known is not None:
            raise known
        if returncode < 0:
            raise ResticError(f"restic {command} was {proc.describe_exit(returncode)}")
        raise ResticError(f"restic {command} failed ({proc.describe_exit(returncode)}): "
                          f"{display_url(_last_error(stderr))}")

    def _access_error(self, returncode: int, stderr: str) -> VhError | None:
        """The error when the repository could not be used at all: wrong password, unreachable, absent, locked.

        restic 0.14-0.16 exit 1 for all of these, so the message decides.
        """
        url = display_url(self.repo.url)
        text = stderr.lower()
        if returncode == 12 or "wrong password" in text:
            return PolicyError(f"wrong password for repository {url}: the password in "
                               f"{self.repo.password_file} does not open it")
        unreachable = ("connection refused", "no such host", "i/o timeout", "network is unreachable",
                       "tls: ", "context canceled", "context deadline exceeded")
        if returncode != 10 and any(marker in text for marker in unreachable):
            return ResticError(f"cannot reach repository {url}: {display_url(_last_error(stderr))}; "
                               f"check the network and repository.url in {self.policy.source}")
        if returncode == 10 or "unable to open config file" in text or "repository does not exist" in text:
            return ResticError(f"no restic repository at {url}; create it with 'vhbackup init' "
                               f"or fix repository.url in {self.policy.source}")
        if returncode == 11 or "repository is already locked" in text:
            holder = next((ln.strip() for ln in stderr.splitlines() if "locked" in ln and "by" in ln), "")
            return ResticError(f"repository {url} is locked by another restic process"
                               f"{': ' + holder if holder else ''}; if none is running, remove the stale lock "
                               f"with 'vhbackup unlock'")
        return None

    def _json_lines(self, args: Sequence[str], on_message: Callable[[dict], None],
                    stdin=proc.DEVNULL, env: dict[str, str] | None = None,
                    on_stderr: Callable[[str], None] | None = None) -> proc.Result:
        """Run a --json command, feeding each JSON message (stdout and stderr) to ``on_message``.

        ``on_stderr`` also sees every raw stderr line; ``env`` is added to the restic environment.
        """
        self.version  # noqa: B018

        def parse_stderr(line: str) -> None:
            if on_stderr:
                on_stderr(line)
            parse(line)

        def parse(line: str) -> None:
            if line.startswith("{"):
                try:
                    on_message(json.loads(line))
                    return
                except ValueError:
                    pass
            self._echo(line)

        return proc.stream(self.argv(*args), parse, env={**self.env, **(env or {})}, missing_hint=INSTALL_HINT,
                           stdin=stdin, on_stderr=parse_stderr)

    # --- repository -----------------------------------------------------------

    def exists(self) -> bool:
        """True if the repository opens; False if there is none. Other failures raise."""
        try:
            self.run("cat", "config", timeout=300)
        except ResticError as exc:
            if str(exc).startswith("no restic repository"):
                return False
            raise
        return True

    def init(self) -> None:
        self.run("init")

    def snapshots(self, tags: Sequence[str] = ("vhbackup",), ids: Sequence[str] = ()) -> list[Snapshot]:
        args = ["snapshots", "--json"]
        for tag in tags:
            args += ["--tag", tag]
        result = self.run(*args, *ids)
        snaps = [
            Snapshot(id=s["id"], time=parse_time(s["time"]), host=s.get("hostname", ""),
                     tags=tuple(s.get("tags") or ()), paths=tuple(s.get("paths") or ()),
                     summary=s.get("summary") or {})
            for s in json.loads(result.stdout or "[]") or []
        ]
        return sorted(snaps, key=lambda s: s.time)

    # --- backup ---------------------------------------------------------------

    def _tag_args(self, tags: Sequence[str]) -> list[str]:
        args = ["--host", self.policy.host]
        for tag in tags:
            args += ["--tag", tag]
        return args

    def backup(self, paths: Sequence[str], tags: Sequence[str], excludes: Sequence[str] = ()) -> BackupResult:
        args = ["backup", "--json", *self._tag_args(tags)]
        for pattern in excludes:
            args.append(f"--exclude={pattern}")
        args += ["--", *paths]
        return self._backup(args)

    def backup_stdin(self, filename: str, tags: Sequence[str], stdin,
                     on_stderr: Callable[[str], None] | None = None) -> BackupResult:
        """Back up what arrives on ``stdin`` (a pipe) as ``filename`` (no directory: 0.18 refuses one)."""
        return self._backup(["backup", "--json", "--stdin", "--stdin-filename", filename,
                             *self._tag_args(tags)], stdin=stdin, on_stderr=on_stderr)

    def backup_command(self, filename: str, tags: Sequence[str], command: Sequence[str],
                       env: dict[str, str] | None = None,
                       on_stderr: Callable[[str], None] | None = None) -> BackupResult:
        """restic >= 0.17: run ``command`` and store its stdout; no snapshot if it fails.

        restic passes its environment (plus ``env``) to the command and copies the command's
        stderr to its own, as ``subprocess NAME: line``; ``on_stderr`` sees every stderr line.
        """
        return self._backup(["backup", "--json", "--stdin-from-command", "--stdin-filename", filename,
                             *self._tag_args(tags), "--", *command], env=env, on_stderr=on_stderr)

    def _backup(self, args: list[str], stdin=proc.DEVNULL, env: dict[str, str] | None = None,
                on_stderr: Callable[[str], None] | None = None) -> BackupResult:
        summary: dict = {}
        unreadable: list[str] = []

        def on_message(msg: dict) -> None:
            kind = msg.get("message_type")
            if kind == "summary":
                summary.update(msg)
            elif kind == "error" and on_stderr:
                log.debug("restic: %s", _error_text(msg))
            elif kind == "error":
                item = msg.get("item") or ""
                unreadable.append(item)
                log.warning("could not read %s: %s", item, _error_text(msg))
            elif kind == "status" and self.progress:
                self.progress(msg)

        result = self._json_lines(args, on_message, stdin=stdin, env=env, on_stderr=on_stderr)
        if result.returncode == 3 and summary.get("snapshot_id"):
            return BackupResult.from_summary(summary, partial=True, unreadable=unreadable)
        if result.returncode != 0:
            self._raise_for("backup", result.returncode, result.stderr)
        if not summary.get("snapshot_id"):
            raise ResticError("restic backup reported success but no snapshot id; run with -v to see its output")
        return BackupResult.from_summary(summary, partial=False, unreadable=unreadable)

    # --- reading back ---------------------------------------------------------

    def ls(self, snapshot_id: str) -> Iterator[dict]:
        """The nodes of a snapshot, as restic's ``ls --json`` gives them."""
        result = self.run("ls", "--json", snapshot_id)
        for line in result.stdout.splitlines():
            if line.startswith("{"):
                node = json.loads(line)
                if node.get("struct_type") == "node":
                    yield node

    def restore(self, snapshot_id: str, target: str, includes: Sequence[str] = (), verify: bool = False) -> None:
        """``verify``: restic reads the restored files back and checks their content against the snapshot."""
        args = ["restore", snapshot_id, "--target", target, *(["--verify"] if verify else [])]
        for path in includes:
            args += ["--include", path]
        if not self.version.at_least(0, 17):
            self._remove_symlinks_to_restore(snapshot_id, target, includes)
        self.run(*args)

    def _remove_symlinks_to_restore(self, snapshot_id: str, target: str, includes: Sequence[str]) -> None:
        """restic < 0.17 cannot restore a symlink over an existing one ("file exists"): remove those first.

        Only paths that are symlinks both in the snapshot and on disk are removed; the restore
        puts them back as the snapshot has them. When nothing exists yet where the restore writes
        (a new or empty target), nothing can be in the way: the listing (a restic call, and the
        whole snapshot's nodes in memory) is skipped.
        """
        roots = [os.path.join(target, inc.lstrip("/")) for inc in includes] or [target]
        if not any(_occupied(root) for root in roots):
            return
        for node in self.ls(snapshot_id):
            path = node.get("path", "")
            if node.get("type") != "symlink" or not path.startswith("/"):
                continue
            if includes and not any(path == inc or path.startswith(inc.rstrip("/") + "/") for inc in includes):
                continue
            dest = os.path.join(target, path.lstrip("/"))
            if os.path.islink(dest):
                os.unlink(dest)

    def dump(self, snapshot_id: str, path: str, stdout) -> subprocess.Popen:
        """Start ``restic dump`` writing ``path`` of the snapshot to ``stdout``; the caller waits."""
        self.version  # noqa: B018
        return proc.spawn(self.argv("dump", snapshot_id, path), env=self.env, missing_hint=INSTALL_HINT,
                          stdin=proc.DEVNULL, stdout=stdout, stderr=proc.PIPE)

    def check_dump(self, process: subprocess.Popen, stderr: str) -> None:
        if process.returncode != 0:
            self._raise_for("dump", process.returncode, stderr)

    @contextmanager
    def dump_stream(self, snapshot_id: str, path: str) -> Iterator[IO[bytes]]:
        """Read ``path`` of the snapshot from the yielded pipe; raises after the block if restic failed."""
        process = self.dump(snapshot_id, path, stdout=proc.PIPE)
        drain, tail = proc.drain_in_thread(process.stderr)
        try:
            yield process.stdout
            process.wait()
        finally:
            proc.terminate(process)
            drain.join(timeout=10)
        self.check_dump(process, "\n".join(tail))

    # --- maintenance ----------------------------------------------------------

    def forget(self, ids: Sequence[str], prune: bool = False) -> None:
        if ids:
            self.run("forget", *(["--prune"] if prune else []), *ids)

    def prune(self) -> None:
        self.run("prune")

    def check(self, *extra: str) -> proc.Result:
        """``restic check``; returns the result whatever the exit code, for the caller's report.

        Raises when the repository could not be opened at all: that is not damage, although
        restic before 0.17 exits 1 for it too. Only its ``Fatal:`` lines are judged, so that
        a damage report quoting, say, a canceled context is still a damage report.
        """
        result = self.run("check", *extra, ok=(0, 1))
        if result.returncode == 1:
            fatal = "\n".join(ln for ln in result.stderr.splitlines() if ln.startswith("Fatal:"))
            error = self._access_error(1, fatal) if fatal else None
            if error is not None:
                raise error
        return result

    def stats(self, mode: str = "raw-data") -> dict:
        return json.loads(self.run("stats", "--json", "--mode", mode).stdout or "{}")

    def unlock(self) -> None:
        self.run("unlock")


def _error_text(msg: dict) -> str:
    err = msg.get("error") or {}
    if "message" in err:
        return err["message"]
    if isinstance(err.get("Err"), int):
        return os.strerror(err["Err"])
    return str(err)


def _occupied(path: str) -> bool:
    """Something exists at ``path`` that a restore could collide with: anything but an empty directory."""
    if not os.path.lexists(path):
        return False
    if os.path.islink(path) or not os.path.isdir(path):
        return True
    with os.scandir(path) as entries:
        return next(entries, None) is not None


def _last_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                msg = json.loads(line)
                if msg.get("message_type") in ("exit_error", "error"):
                    return msg.get("message") or _error_text(msg)
            except ValueError:
                pass
        elif line.startswith("Fatal:"):
            fatal = line[len("Fatal:"):].strip()
            first = next((ln for ln in lines if ln.startswith("ignoring error for ")), None)
            if first and fatal.startswith("There were"):
                return f"{fatal}, the first: {first[len('ignoring error for '):]}"
            return fatal
    return lines[-1] if lines else "no error message"
