"""The policy file, parsed once into immutable dataclasses.

Every error names the file, the line and the key. Each section has one
small ``_parse_<section>`` function; adding a section means writing one of
those and listing it in ``_SECTIONS``. Nothing else in vhbackup reads YAML
or the environment for configuration: it receives a ``Policy``.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from vhbackup import credentials
from vhbackup.errors import PolicyError
from vhbackup.quantities import parse_duration, parse_percent, parse_size

DEFAULT_POLICY = "/etc/vhbackup/policy.yml"
DEFAULT_STATE_DIR = "/var/lib/vhbackup"
DEFAULT_CACHE_DIR = "/var/cache/vhbackup"
SYSTEM_SERVICE = "system"
DATABASE_TYPES = ("postgresql", "mariadb", "mongodb")
#: The servers' own databases: never a ``--into-database`` target (loading an application's dump into
#: template1 puts its tables into every database created later; into mysql, its tables beside the grants).
SYSTEM_DATABASES = {"postgresql": ("postgres", "template0", "template1"),
                    "mariadb": ("mysql", "information_schema", "performance_schema", "sys"),
                    "mongodb": ("admin", "local", "config")}
NOTIFY_EVENTS = ("failure", "warning", "success")
IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
DB_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_$-]{0,63}$")
#: Container, compose service and volume names as Docker and Podman accept them.
CONTAINER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
#: Compose project names (docker compose: lower case letters, digits, '_' and '-').
COMPOSE_PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
CONTAINER_ENGINES = ("docker", "podman")
#: A systemd unit name as systemd spells it (letters, digits, ':', '_', '.', '\\', '@', '-'), not an option
#: (no leading '-') and not a pattern: systemctl expands '*', '?' and '[' over every loaded unit, so
#: ``stop``/``start`` of a pattern would start units that were not running before.
UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.\\@][A-Za-z0-9:_.\\@-]{0,254}$")
#: A policy larger than this is refused before it is parsed.
MAX_POLICY_BYTES = 1 << 20
#: YAML nodes a policy may expand to, counting every use of an alias: aliases
#: ("billion laughs") must not turn a small file into gigabytes of memory.
MAX_NODES = 50_000
DEFAULT_REPOSITORY_TIMEOUT = 60.0
DEFAULT_LOCK_WAIT = 300.0
MAX_LOCK_WAIT = 24 * 3600.0

#: The name ``repository:`` (one repository) gets; ``--repository default`` selects it.
DEFAULT_REPOSITORY_NAME = "default"
REPOSITORY_ROLES = ("primary", "copy")

#: Dump options that would send the dump somewhere else than to vhbackup, print
#: something else, or change the format the restore relies on: refused, because
#: the snapshot would then hold something that is not the database.
REFUSED_DUMP_OPTIONS: dict[str, tuple[str, ...]] = {
    "postgresql": ("-f", "--file", "-F", "--format", "-V", "--version", "-?", "--help", "-j", "--jobs"),
    "mariadb": ("-r", "--result-file", "-T", "--tab", "-X", "--xml", "-V", "--version", "-?", "-I", "--help",
                "--compact", "--skip-comments", "--comments=0", "--dump-date=0", "--print-defaults",
                "--no-defaults", "--defaults-file", "--defaults-extra-file", "--defaults-group-suffix"),
    "mongodb": ("-o", "--out", "--archive", "--gzip", "--help", "--version"),
}


@dataclass(frozen=True)
class Sftp:
    """``repository.sftp``: the ssh options for an ``sftp:`` repository (see ``restic.sftp_command``)."""

    #: The private key ssh logs in with (``-i``, ``IdentitiesOnly=yes``); None: ssh's default keys.
    identity_file: str | None = None
    #: The file that pins the server's host key (``UserKnownHostsFile``); None: ssh's default files.
    known_hosts: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class Repository:
    url: str
    password_file: str
    env: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    env_file: str | None = None
    compression: str | None = None
    cache_dir: str = DEFAULT_CACHE_DIR
    #: How long the repository may stay unreachable before a run gives up (restic 0.18 would retry for minutes).
    timeout: float = DEFAULT_REPOSITORY_TIMEOUT
    #: Its name under ``repositories:`` (``repository:`` alone is named DEFAULT_REPOSITORY_NAME).
    name: str = "default"
    #: ``primary`` (the run writes here) or ``copy`` (receives the run's snapshots with ``restic copy``).
    role: str = "primary"
    #: This host never forgets or prunes here; ``prune --repository NAME --maintenance`` elsewhere does.
    append_only: bool = False
    #: Its own retention; None: the policy's (see ``Policy.retention_of``).
    retention: Retention | None = None

    @property
    def is_copy(self) -> bool:
        return self.role == "copy"
    #: ``repository.sftp``: how ssh reaches an ``sftp:`` repository (None: ssh's defaults, host keys still pinned).
    sftp: Sftp | None = None

    @property
    def temp_dir(self) -> str:
        """restic's TMPDIR: ``<cache_dir>/tmp``, on disk.

        Not /tmp, which Debian 13 mounts as a tmpfs of half the RAM (and which
        the units make private): on a small host restic's temporary packs would
        fill memory, and the free-space pre-check would measure the wrong file
        system. The cache directory is writable under the units
        (``CacheDirectory=vhbackup``) and when run by hand.
        """
        return os.path.join(self.cache_dir, "tmp")


@dataclass(frozen=True)
class Retention:
    last: int | None = None
    hourly: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None
    yearly: int | None = None
    within: str | None = None
    within_seconds: float | None = None

    def rules(self) -> dict[str, int]:
        """The count rules that are set, in restic's order."""
        names = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def is_empty(self) -> bool:
        return not self.rules() and self.within is None


@dataclass(frozen=True)
class Database:
    name: str
    type: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password_file: str | None = None
    names: tuple[str, ...] | None = None  # None means every database ("all")
    options: tuple[str, ...] = ()
    service: str = SYSTEM_SERVICE
    #: Seconds the dump waits for a table lock held by another session before it fails.
    lock_wait_timeout: float = DEFAULT_LOCK_WAIT
    #: The container the tools run in (``container:``), or a compose (project, service); None: on the host.
    container: str | None = None
    compose: tuple[str, str] | None = None
    #: ``exec --user`` inside the container (e.g. postgres where the server trusts only its own user).
    container_user: str | None = None
    #: The policy's ``container_engine`` (None: detected).
    container_engine: str | None = None

    @property
    def item(self) -> str:
        """Its name in state records and status lines: ``db:<name>``."""
        return f"db:{self.name}"


@dataclass(frozen=True)
class Service:
    name: str
    paths: tuple[str, ...] = ()
    databases: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    stop: bool = True
    #: Paths (a subset of ``paths``) that may be absent without making the backup partial.
    optional_paths: tuple[str, ...] = ()
    #: Containers stopped around its backup and in-place restore: by name, and compose (project, service).
    containers: tuple[str, ...] = ()
    compose: tuple[tuple[str, str], ...] = ()
    #: Named volumes whose mount points (resolved at run time) are backed up with its paths.
    volumes: tuple[str, ...] = ()

    @property
    def item(self) -> str:
        """Its name in state records and status lines: ``files:<name>``."""
        return f"files:{self.name}"


@dataclass(frozen=True)
class Checks:
    max_age: float = 24 * 3600.0
    min_free_space: int = 1 << 30


@dataclass(frozen=True)
class VerifySettings:
    read_data_subset: float = 5.0
    #: Whether the timer's ``vhbackup verify`` also runs the spot check (``verify --spot``).
    spot: bool = False
    #: Spot check tolerances, in percent of the backed-up count and size (live vs latest run).
    spot_files_tolerance: float = 5.0
    spot_size_tolerance: float = 10.0
    #: Share of backed-up files that may have changed (size or mtime) or vanished since the backup.
    spot_changed_tolerance: float = 50.0
    #: How many unchanged files (same size and mtime as in the backup) are compared byte for byte.
    spot_sample: int = 50


@dataclass(frozen=True)
class Email:
    to: tuple[str, ...]
    sender: str
    smtp_host: str = "localhost"
    smtp_port: int = 25
    starttls: bool = False
    user: str | None = None
    password_file: str | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class Webhook:
    url: str = field(repr=False)
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    timeout: float = 10.0


@dataclass(frozen=True)
class Notify:
    on: tuple[str, ...] = ("failure",)
    email: Email | None = None
    webhook: Webhook | None = None


MONITOR_KINDS = ("healthchecks", "ntfy", "uptime_kuma", "url")
MONITORED_ACTIONS = ("backup", "prune", "verify", "drill")
#: Placeholders a monitor URL may hold; ``{status}`` is start, success or fail.
MONITOR_PLACEHOLDERS = ("action", "status", "host")


@dataclass(frozen=True)
class Ping:
    """One outside monitor pinged at the start and the end of runs (``monitor.<kind>``)."""

    kind: str
    url: str = field(repr=False)
    timeout: float = 10.0
    retries: int = 2
    actions: tuple[str, ...] = MONITORED_ACTIONS
    #: ``url`` kind only: GET (nothing in the body) or POST (the log tail in the body).
    method: str = "POST"
    #: How records and lines name it: the kind, or ``kind#2`` for the second of a list of that kind.
    name: str = ""


@dataclass(frozen=True)
class Monitor:
    pings: tuple[Ping, ...] = ()


@dataclass(frozen=True)
class Policy:
    source: str
    repository: Repository
    host: str
    state_dir: str = DEFAULT_STATE_DIR
    restic_binary: str = "restic"
    retention: Retention = Retention()
    paths: tuple[str, ...] = ()
    optional_paths: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    services: tuple[Service, ...] = ()
    databases: tuple[Database, ...] = ()
    #: How many of a run's jobs (the files backup, each database dump) run at once; 1 is serial.
    concurrency: int = 2
    checks: Checks = Checks()
    verify: VerifySettings = VerifySettings()
    notify: Notify = Notify()
    monitor: Monitor = Monitor()
    metrics_file: str | None = None
    #: ``docker``, ``podman`` or an engine command's absolute path; None: detected when containers are used.
    container_engine: str | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)
    #: Every repository, the primary (``repository``) first; () means just ``repository``.
    repositories: tuple[Repository, ...] = ()

    def __post_init__(self) -> None:
        if not self.repositories:
            object.__setattr__(self, "repositories", (self.repository,))

    # --- several repositories (issue 10) ---------------------------------------------

    @property
    def primary(self) -> Repository:
        """The primary, also while a command works on another repository (``repository`` is then that one)."""
        return self.repositories[0]

    @property
    def copies(self) -> tuple[Repository, ...]:
        return tuple(r for r in self.repositories if r.is_copy)

    def repo(self, name: str) -> Repository:
        """The repository called ``name``; PolicyError (naming the known ones) if there is none."""
        for repo in self.repositories:
            if repo.name == name:
                return repo
        raise PolicyError(f"{self.source}: no repository named {name!r}; the policy has "
                          f"{', '.join(r.name for r in self.repositories)}")

    def retention_of(self, repo: Repository) -> Retention:
        return repo.retention if repo.retention is not None else self.retention

    def service(self, name: str) -> Service:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(name)

    def database(self, name: str) -> Database:
        for db in self.databases:
            if db.name == name:
                return db
        raise KeyError(name)

    def file_sets(self) -> list[Service]:
        """Every set of paths backed up as one item: the top-level paths (service 'system') and each service's."""
        sets = [Service(SYSTEM_SERVICE, self.paths, optional_paths=self.optional_paths)] if self.paths else []
        return sets + [s for s in self.services if s.paths]

    def items(self) -> list[str]:
        """What status judges one by one: ``files:<service>`` and ``db:<name>``."""
        return [s.item for s in self.file_sets()] + [db.item for db in self.databases]

    @property
    def metrics_path(self) -> str:
        return self.metrics_file or os.path.join(self.state_dir, "vhbackup.prom")


# --- the located YAML tree -------------------------------------------------

class _Node:
    """A YAML node with the file, line and dotted key it came from."""

    def __init__(self, node: yaml.Node, source: str, key: str, loader: yaml.SafeLoader):
        self.node = node
        self.source = source
        self.key = key
        self.loader = loader

    @property
    def line(self) -> int:
        return self.node.start_mark.line + 1

    def error(self, message: str) -> PolicyError:
        where = f"{self.source}:{self.line}"
        return PolicyError(f"{where}: {self.key}: {message}" if self.key else f"{where}: {message}")

    def value(self) -> Any:
        return _construct(self.loader, self.node, self)

    def mapping(self) -> _Map:
        if not isinstance(self.node, yaml.MappingNode):
            raise self.error(f"must be a mapping (key: value lines), got {_kind(self.node)}")
        return _Map(self)

    def items(self) -> list[_Node]:
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.error(f"must be a list, got {_kind(self.node)}")
        return [
            _Node(child, self.source, f"{self.key}[{i}]", self.loader)
            for i, child in enumerate(self.node.value)
        ]

    def string(self, strip: bool = True) -> str:
        """The value as a string, stripped of surrounding blanks unless ``strip=False`` (file names are literal).

        A NUL never reaches a command line or a file name: refused here, for every string of the policy.
        """
        value = self.value() if isinstance(self.node, yaml.ScalarNode) else None
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"must be a non-empty string, got {_describe(self)}")
        if "\0" in value:
            raise self.error("must not contain a NUL character")
        return value.strip() if strip else value

    def integer(self, minimum: int = 0) -> int:
        value = self.value() if isinstance(self.node, yaml.ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(f"must be an integer >= {minimum}, got {_describe(self)}")
        return value

    def boolean(self) -> bool:
        value = self.value() if isinstance(self.node, yaml.ScalarNode) else None
        if not isinstance(value, bool):
            raise self.error(f"must be true or false, got {_describe(self)}")
        return value

    def strings(self) -> tuple[str, ...]:
        return tuple(item.string() for item in self.items())

    def converted(self, convert: Callable[[str], Any]) -> Any:
        if not isinstance(self.node, yaml.ScalarNode):
            raise self.error(f"must be a single value, got {_kind(self.node)}")
        raw = self.value()
        try:
            return convert(str(raw).strip() if raw is not None else "")
        except ValueError as exc:
            raise self.error(str(exc)) from None


class _Map:
    """A mapping node whose keys are consumed one by one; leftovers are errors."""

    def __init__(self, parent: _Node):
        self.parent = parent
        self.children: dict[str, _Node] = {}
        self.key_nodes: dict[str, yaml.Node] = {}
        for key_node, value_node in parent.node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Node(key_node, parent.source, parent.key, parent.loader).error(
                    "YAML merge keys ('<<') are not supported: write the keys out")
            key = _construct(parent.loader, key_node, _Node(key_node, parent.source, parent.key, parent.loader))
            if isinstance(key, bool) and isinstance(key_node, yaml.ScalarNode) and not key_node.style:
                key = key_node.value  # YAML 1.1 reads a plain `on:` key as true; keys are names
            if not isinstance(key, str):
                raise _Node(key_node, parent.source, parent.key, parent.loader).error(
                    f"keys must be strings, got {key!r}")
            dotted = f"{parent.key}.{key}" if parent.key else key
            if key in self.children:
                raise _Node(key_node, parent.source, dotted, parent.loader).error(
                    f"duplicate key (first given on line {self.key_nodes[key].start_mark.line + 1})")
            self.children[key] = _Node(value_node, parent.source, dotted, parent.loader)
            self.key_nodes[key] = key_node

    def get(self, key: str) -> _Node | None:
        node = self.children.get(key)
        if node is None or (isinstance(node.node, yaml.ScalarNode) and node.value() is None):
            return None
        return node

    def require(self, key: str) -> _Node:
        node = self.get(key)
        if node is None:
            where = f"{self.parent.source}:{self.parent.line}"
            dotted = f"{self.parent.key}.{key}" if self.parent.key else key
            raise PolicyError(f"{where}: {dotted}: missing (required)")
        return node

    def check_known(self, known: tuple[str, ...]) -> None:
        for key, key_node in self.key_nodes.items():
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                suggestion = f"; did you mean '{hint[0]}'?" if hint else f"; known keys: {', '.join(known)}"
                raise _Node(key_node, self.parent.source, self.children[key].key, self.parent.loader).error(
                    f"unknown key{suggestion}")

    def names(self) -> list[str]:
        return list(self.children)


def _construct(loader: yaml.SafeLoader, node: yaml.Node, where: _Node) -> Any:
    """The Python value of ``node``; a tag that cannot be built (``!foo``, ``!!python/...``, ``!!int abc``) is
    a one-line policy error, never a traceback."""
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise where.error(f"cannot read this value: {problem}") from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise where.error(f"cannot read this value as its tag {node.tag!r} says: {exc}") from None


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a single value"


def _describe(node: _Node) -> str:
    if not isinstance(node.node, yaml.ScalarNode):
        return _kind(node.node)
    return repr(node.value())


def _absolute_path(node: _Node) -> str:
    """A literal absolute path: blanks around it are part of the name (a quoted "/srv/a " is not /srv/a)."""
    value = node.string(strip=False)
    if not value.startswith("/"):
        raise node.error(f"must be an absolute path, got {value!r}")
    return os.path.normpath("/" + value.lstrip("/"))


def _path_list(node: _Node) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``paths:`` items: ``/path`` or ``{path: /path, optional: true}``; (paths, the optional ones).

    Paths are literal: restic gets exactly these names, never as patterns.
    """
    paths: list[str] = []
    optional: list[str] = []
    for item in node.items():
        if isinstance(item.node, yaml.MappingNode):
            m = item.mapping()
            m.check_known(("path", "optional"))
            path = _absolute_path(m.require("path"))
            if m.get("optional") is not None and m.get("optional").boolean():
                optional.append(path)
        else:
            path = _absolute_path(item)
        if path not in paths:
            paths.append(path)
    return tuple(paths), tuple(p for p in paths if p in optional)


def _secret_file(node: _Node, out: dict) -> str:
    """The absolute path of a credential file that exists with safe ownership and mode."""
    path = _absolute_path(node)
    try:
        out["warnings"] += credentials.check_secret_file(path, min_length=0)
    except PolicyError as exc:
        raise node.error(str(exc)) from None
    return path


def _identifier(node: _Node, what: str) -> str:
    value = node.string() if isinstance(node.node, yaml.ScalarNode) else None
    if value is None or not IDENTIFIER.match(value):
        raise node.error(f"{what} must be a plain identifier (letters, digits, '_' or '-', "
                         f"starting with a letter), got {_describe(node)}")
    return value


# --- sections ----------------------------------------------------------------

def _parse_repository(node: _Node, out: dict) -> None:
    out["repository"] = _repository(node.mapping(), node, out, DEFAULT_REPOSITORY_NAME, ())


def _repository(m: _Map, node: _Node, out: dict, name: str, extra: tuple[str, ...]) -> Repository:
    """One repository's connection settings (``repository:``, or one entry of ``repositories:``)."""
    m.check_known(("url", "password_file", "env_file", "compression", "cache_dir", "timeout", "sftp") + extra)
    url = m.require("url").string()
    sftp = _parse_sftp(m.get("sftp"), url, out) if m.get("sftp") is not None else None
    pw_node = m.get("password_file")
    password_file = credentials.restic_password_file(pw_node.string() if pw_node else None)
    if password_file is None:
        raise m.require("password_file").error("missing (required)")
    check = out["_repository_credentials"]
    try:
        if check:
            out["warnings"] += credentials.check_password_file(password_file)
    except PolicyError as exc:
        raise (pw_node or node).error(str(exc)) from None
    env_file, env = None, {}
    env_node = m.get("env_file")
    if env_node is not None:
        env_file = _absolute_path(env_node)
        try:
            env = credentials.read_env_file(env_file) if check else {}
        except PolicyError as exc:
            raise env_node.error(str(exc)) from None
    compression = None
    if (c := m.get("compression")) is not None:
        compression = c.string()
        if compression not in ("auto", "off", "max"):
            raise c.error(f"must be auto, off or max, got {compression!r}")
    cache_dir = _absolute_path(m.get("cache_dir")) if m.get("cache_dir") else DEFAULT_CACHE_DIR
    timeout = DEFAULT_REPOSITORY_TIMEOUT
    if (t := m.get("timeout")) is not None:
        timeout = t.converted(_positive_duration)
        if not 5 <= timeout <= 3600:
            raise t.error(f"must be between 5s and 1h, got {t.value()!r}")
    return Repository(url=url, password_file=password_file, env=env, env_file=env_file,
                      compression=compression, cache_dir=cache_dir, timeout=timeout, name=name, sftp=sftp)


# --- repository.sftp (the ssh side of an sftp: repository) -----------------------------

#: Paths that go into restic's ``sftp.command``, which restic splits at white space itself (no shell).
_SSH_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./@+=,:%-]*$")


def _ssh_path(node: _Node) -> str:
    path = _absolute_path(node)
    if not _SSH_SAFE_PATH.match(path):
        raise node.error(f"must be a path without spaces, quotes or backslashes (restic splits its ssh "
                         f"command at white space), got {path!r}")
    return path


def _parse_sftp(node: _Node, url: str, out: dict) -> Sftp:
    """``sftp: {identity_file, known_hosts, port}``; only for an ``sftp:`` url. Host keys are always checked."""
    m = node.mapping()
    m.check_known(("identity_file", "known_hosts", "port"))
    if not url.startswith("sftp:"):
        raise node.error(f"only for an sftp: repository, but repository.url is {url.split(':', 1)[0]}:")
    identity_file = None
    if (i := m.get("identity_file")) is not None:
        identity_file = _ssh_path(i)
        if out["_repository_credentials"]:
            try:
                credentials.check_secret_file(identity_file, min_length=0, one_line=False)
            except PolicyError as exc:
                raise i.error(str(exc)) from None
    known_hosts = None
    if (k := m.get("known_hosts")) is not None:
        known_hosts = _ssh_path(k)
        if not os.path.isfile(known_hosts):
            raise k.error(f"{known_hosts} does not exist; pin the server's host key in it, e.g. "
                          f"ssh-keyscan -p PORT HOST > {known_hosts}, and compare the fingerprint with the server's")
    port = _port(m.get("port")) if m.get("port") is not None else None
    return Sftp(identity_file=identity_file, known_hosts=known_hosts, port=port)


def _parse_retention(node: _Node, out: dict) -> None:
    out["retention"] = _retention(node)


def _retention(node: _Node) -> Retention:
    m = node.mapping()
    counts = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
    m.check_known(counts + ("within",))
    values: dict[str, Any] = {k: m.get(k).integer() for k in counts if m.get(k) is not None}
    if (w := m.get("within")) is not None:
        values["within_seconds"] = w.converted(_positive_duration)
        values["within"] = str(w.value()).strip()
    return Retention(**values)


def _positive_duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"must be a duration longer than zero, e.g. 24h or 7d, got {text!r}")
    return seconds


def _parse_paths(node: _Node, out: dict) -> None:
    out["paths"], out["optional_paths"] = _path_list(node)


def _parse_exclude(node: _Node, out: dict) -> None:
    out["exclude"] = node.strings()


def _parse_databases(node: _Node, out: dict) -> None:
    m = node.mapping()
    databases = []
    for name in m.names():
        child = m.children[name]
        _identifier(_Node(m.key_nodes[name], child.source, child.key, child.loader), "database name")
        d = child.mapping()
        d.check_known(("type", "host", "port", "user", "password_file", "names", "options", "lock_wait_timeout",
                       "container", "compose", "container_user"))
        db_type = d.require("type").string()
        if db_type not in DATABASE_TYPES:
            raise d.require("type").error(f"must be one of {', '.join(DATABASE_TYPES)}, got {db_type!r}")
        password_file = _secret_file(d.get("password_file"), out) if d.get("password_file") else None
        names: tuple[str, ...] | None = None
        names_node = d.get("names")
        if names_node is None:
            names = (name,)
        elif isinstance(names_node.node, yaml.ScalarNode) and names_node.value() == "all":
            names = None
        else:
            names = names_node.strings()
            for item, value in zip(names_node.items(), names):
                if not DB_NAME.match(value):
                    raise item.error(f"not a valid database name: {value!r}")
            if not names:
                raise names_node.error("must list at least one database, or be 'all'")
            if len(names) > 1 and db_type in ("postgresql", "mongodb"):
                raise names_node.error(f"a {db_type} entry dumps one database or 'all'; "
                                       f"define one entry per database")
        host = d.get("host").string() if d.get("host") else None
        options = _dump_options(d.get("options"), db_type) if d.get("options") else ()
        lock_wait = DEFAULT_LOCK_WAIT
        if (lw := d.get("lock_wait_timeout")) is not None:
            lock_wait = lw.converted(_positive_duration)
            if not 1 <= lock_wait <= MAX_LOCK_WAIT:
                # PostgreSQL takes at most 2^31-1 ms (24.8 days): beyond, every dump failed "value out of range"
                raise lw.error(f"must be between 1s and 24h, got {lw.value()!r}")
        databases.append(Database(
            name=name, type=db_type, host=host,
            port=_port(d.get("port")) if d.get("port") else None,
            user=d.get("user").string() if d.get("user") else None,
            password_file=password_file, names=names, options=options, lock_wait_timeout=lock_wait,
            **_database_container(d),
        ))
    out["databases"] = tuple(databases)


def _unit_name(node: _Node) -> str:
    return _matching(node, UNIT_NAME, "a systemd unit name is letters, digits, ':', '_', '.', '\\', '@' or '-' "
                                      "(not first), never a pattern")


def _matching(node: _Node, pattern: re.Pattern, rule: str) -> str:
    """A scalar matching ``pattern``; otherwise ``rule`` and what was given, one line with file:line."""
    value = node.string() if isinstance(node.node, yaml.ScalarNode) else None
    if value is None or not pattern.match(value):
        raise node.error(f"{rule}, got {_describe(node)}")
    return value


def _port(node: _Node) -> int:
    port = node.integer(minimum=1)
    if port > 65535:
        raise node.error(f"must be a TCP port from 1 to 65535, got {port}")
    return port


def _container_name(node: _Node, what: str = "container name") -> str:
    return _matching(node, CONTAINER_NAME, f"{what} must be letters, digits, '_', '.' or '-' (starting with a "
                                           f"letter or digit)")


def _compose_project(node: _Node) -> str:
    return _matching(node, COMPOSE_PROJECT, "a compose project name is lower-case letters, digits, '_' or '-'")


def _database_container(d: _Map) -> dict:
    """``container: NAME`` or ``compose: {project: P, service: S}``, and ``container_user``."""
    values: dict[str, Any] = {}
    if d.get("container") is not None and d.get("compose") is not None:
        raise d.get("compose").error("give 'container' or 'compose', not both")
    if (c := d.get("container")) is not None:
        values["container"] = _container_name(c)
    if (c := d.get("compose")) is not None:
        m = c.mapping()
        m.check_known(("project", "service"))
        values["compose"] = (_compose_project(m.require("project")),
                             _container_name(m.require("service"), "a compose service name"))
    if (u := d.get("container_user")) is not None:
        if not values:
            raise u.error("only for a database with 'container' or 'compose'")
        values["container_user"] = _container_name(u, "a user name")
    return values


def _service_containers(s: _Map) -> dict:
    """``containers: [NAME...]``, ``compose: {project: P, services: [S...]}`` and ``volumes: [NAME...]``."""
    values: dict[str, Any] = {}
    if (c := s.get("containers")) is not None:
        values["containers"] = tuple(dict.fromkeys(_container_name(i) for i in c.items()))
    if (c := s.get("compose")) is not None:
        m = c.mapping()
        m.check_known(("project", "services"))
        project = _compose_project(m.require("project"))
        services = tuple(dict.fromkeys(_container_name(i, "a compose service name")
                                       for i in m.require("services").items()))
        if not services:
            raise m.require("services").error("list at least one compose service")
        values["compose"] = tuple((project, svc) for svc in services)
    if (v := s.get("volumes")) is not None:
        values["volumes"] = tuple(dict.fromkeys(_container_name(i, "a volume name") for i in v.items()))
    return values


def _container_engine(node: _Node) -> str:
    value = node.string()
    if value in CONTAINER_ENGINES:
        return value
    if value.startswith("/") and "\0" not in value and os.path.basename(value):
        return os.path.normpath(value)
    raise node.error(f"must be docker, podman or the absolute path of one of them, got {value!r}")


def _dump_options(node: _Node, db_type: str) -> tuple[str, ...]:
    """Extra dump tool options, minus those that would make the snapshot hold something else."""
    options = node.strings()
    refused = REFUSED_DUMP_OPTIONS[db_type]
    for item, option in zip(node.items(), options):
        name = option.split("=", 1)[0]
        short = option[:2] if option.startswith("-") and not option.startswith("--") else None
        # the tools take any unambiguous start of a long option: --fil=/tmp/x is --file, --xm is --xml
        longs = {r.split("=", 1)[0] for r in refused if r.startswith("--")}
        abbreviated = name.startswith("--") and len(name) > 2 and any(r != name and r.startswith(name) for r in longs)
        if option in refused or name in refused or (short and short in refused) or abbreviated:
            raise item.error(f"option {option!r} is not allowed: it sends the dump elsewhere, prints something "
                             f"else or changes the format vhbackup restores from; remove it")
    return options


def _parse_services(node: _Node, out: dict) -> None:
    m = node.mapping()
    services = []
    for name in m.names():
        child = m.children[name]
        key_node = _Node(m.key_nodes[name], child.source, child.key, child.loader)
        _identifier(key_node, "service name")
        if name == SYSTEM_SERVICE:
            raise key_node.error(f"'{SYSTEM_SERVICE}' is reserved for the top-level paths and databases")
        s = child.mapping()
        s.check_known(("paths", "databases", "units", "stop", "containers", "compose", "volumes"))
        paths, optional = _path_list(s.get("paths")) if s.get("paths") else ((), ())
        dbs = tuple(_identifier(i, "database name") for i in s.get("databases").items()) if s.get("databases") else ()
        units = tuple(_unit_name(i) for i in s.get("units").items()) if s.get("units") else ()
        stop = s.get("stop").boolean() if s.get("stop") else True
        in_containers = _service_containers(s)
        if not paths and not dbs and not in_containers.get("volumes"):
            raise child.error("a service needs 'paths', 'volumes' or 'databases'")
        services.append(Service(name=name, paths=paths, databases=dbs, units=units, stop=stop,
                                optional_paths=optional, **in_containers))
        out.setdefault("_service_db_nodes", {})[name] = s.get("databases")
    out["services"] = tuple(services)


def _parse_checks(node: _Node, out: dict) -> None:
    m = node.mapping()
    m.check_known(("max_age", "min_free_space"))
    values = {}
    if (n := m.get("max_age")) is not None:
        values["max_age"] = n.converted(_positive_duration)
    if (n := m.get("min_free_space")) is not None:
        values["min_free_space"] = n.converted(parse_size)
    out["checks"] = Checks(**values)


def _parse_verify(node: _Node, out: dict) -> None:
    m = node.mapping()
    m.check_known(("read_data_subset", "spot", "spot_tolerance", "spot_sample"))
    values: dict[str, Any] = {}
    if (n := m.get("read_data_subset")) is not None:
        values["read_data_subset"] = n.converted(parse_percent)
    if (n := m.get("spot")) is not None:
        values["spot"] = n.boolean()
    if (n := m.get("spot_tolerance")) is not None:
        t = n.mapping()
        t.check_known(("files", "size", "changed"))
        for key in ("files", "size", "changed"):
            if (f := t.get(key)) is not None:
                values[f"spot_{key}_tolerance"] = f.converted(parse_percent)
    if (n := m.get("spot_sample")) is not None:
        values["spot_sample"] = n.integer(minimum=0)
        if values["spot_sample"] > 10000:
            raise n.error(f"must be at most 10000, got {values['spot_sample']}")
    out["verify"] = VerifySettings(**values)


def _parse_email(node: _Node, host: str, out: dict) -> Email:
    m = node.mapping()
    m.check_known(("to", "from", "smtp", "starttls", "user", "password_file", "timeout"))
    to_node = m.require("to")
    to = (to_node.string(),) if isinstance(to_node.node, yaml.ScalarNode) else to_node.strings()
    if not to:
        raise to_node.error("needs at least one recipient")
    for item in to:
        if "@" not in item:
            raise to_node.error(f"not an email address: {item!r}")
    smtp_host, smtp_port = "localhost", 25
    if (s := m.get("smtp")) is not None:
        raw = s.string()
        smtp_host, _, port = raw.rpartition(":") if ":" in raw else (raw, "", "25")
        bracketed = smtp_host.startswith("[") and smtp_host.endswith("]")
        smtp_host = smtp_host[1:-1] if bracketed else smtp_host
        forbidden = "/@[]" if bracketed else "/@[]:"
        if not smtp_host or any(c.isspace() or c in forbidden for c in smtp_host) or not port.isdigit() \
                or not 0 < int(port) < 65536:
            raise s.error(f"must be host:port with a port from 1 to 65535, e.g. localhost:25, got {raw!r}")
        smtp_port = int(port)
    p = m.get("password_file")
    password_file = _secret_file(p, out) if p else None
    user = m.get("user").string() if m.get("user") else None
    if (user is None) != (password_file is None):
        raise (p or m.require("user")).error(
            "notify.email.user and notify.email.password_file go together: set both, or neither")
    sender = m.get("from").string() if m.get("from") else f"vhbackup@{host}"
    if "@" not in sender:
        raise m.get("from").error(f"not an email address: {sender!r}")
    return Email(
        to=to, sender=sender, smtp_host=smtp_host, smtp_port=smtp_port,
        starttls=m.get("starttls").boolean() if m.get("starttls") else False,
        user=user, password_file=password_file, timeout=_notify_timeout(m),
    )


def _notify_timeout(m: _Map) -> float:
    """A notifier's bound: an alert must never hold a run for long."""
    node = m.get("timeout")
    if node is None:
        return 10.0
    seconds = node.converted(parse_duration)
    if seconds > 300:
        raise node.error(f"must be at most 5 min, got {node.value()!r}")
    return seconds


def _parse_webhook(node: _Node, out: dict) -> Webhook:
    m = node.mapping()
    m.check_known(("url", "url_file", "headers", "timeout"))
    if (f := m.get("url_file")) is not None:
        path = _secret_file(f, out)
        try:
            url = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise f.error(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        where = f
    else:
        where = m.require("url")
        url = where.string()
    if not url.startswith(("http://", "https://")):
        raise where.error("must start with http:// or https://")
    headers: tuple[tuple[str, str], ...] = ()
    if (h := m.get("headers")) is not None:
        hm = h.mapping()
        headers = tuple((k, hm.children[k].string()) for k in hm.names())
    return Webhook(url=url, headers=headers, timeout=_notify_timeout(m))


def _parse_notify(node: _Node, out: dict) -> None:
    m = node.mapping()
    m.check_known(("on", "email", "webhook"))
    on: tuple[str, ...] = ("failure",)
    if (n := m.get("on")) is not None:
        on = (n.string(),) if isinstance(n.node, yaml.ScalarNode) else n.strings()
        for value in on:
            if value not in NOTIFY_EVENTS:
                raise n.error(f"unknown event {value!r}; use {', '.join(NOTIFY_EVENTS)}")
    host = out.get("host") or socket.gethostname()
    email = _parse_email(m.get("email"), host, out) if m.get("email") else None
    webhook = _parse_webhook(m.get("webhook"), out) if m.get("webhook") else None
    out["notify"] = Notify(on=on, email=email, webhook=webhook)


def _host(node: _Node) -> str:
    """The host name snapshots are made under: one line of printable characters (it is in every listing,
    alert and journal line, where a control character or a line break would forge or hide output)."""
    value = node.string()
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise node.error(f"must be printable characters on one line, got {value!r}")
    return value

# --- several repositories (issue 10) ---------------------------------------------------
#
# ``repositories:`` maps names to repositories: the primary (the run writes there; the first one
# unless another says ``role: primary``) and copies (``role: copy``: each run's snapshots are copied
# there). ``repository:`` is the shorthand for one primary named DEFAULT_REPOSITORY_NAME.

def _parse_repositories(node: _Node, out: dict) -> None:
    m = node.mapping()
    if not m.names():
        raise node.error("list at least one repository (name: {url: ..., password_file: ...})")
    repos: list[Repository] = []
    roles: dict[str, _Node | None] = {}
    urls: dict[str, str] = {}
    for name in m.names():
        child = m.children[name]
        key_node = _Node(m.key_nodes[name], child.source, child.key, child.loader)
        _identifier(key_node, "repository name")
        r = child.mapping()
        repo = _repository(r, child, out, name, ("role", "append_only", "retention"))
        role_node = r.get("role")
        if role_node is not None:
            role = role_node.string()
            if role not in REPOSITORY_ROLES:
                raise role_node.error(f"unknown role {role!r}; use {' or '.join(REPOSITORY_ROLES)}")
            roles[name] = role_node
        append_only = r.get("append_only").boolean() if r.get("append_only") is not None else False
        retention = _retention(r.get("retention")) if r.get("retention") is not None else None
        if repo.url in urls:
            raise r.require("url").error(f"the same repository as '{urls[repo.url]}'")
        urls[repo.url] = name
        role = role_node.string() if role_node is not None else None
        repos.append(Repository(**{**repo.__dict__, "role": role or "", "append_only": append_only,
                                   "retention": retention}))
    primaries = [r.name for r in repos if r.role == "primary"]
    if len(primaries) > 1:
        raise roles[primaries[1]].error(f"a second primary ('{primaries[0]}' is one); exactly one repository "
                                        f"is the primary, the others are role: copy")
    if not primaries:
        if repos[0].role == "copy":
            raise roles[repos[0].name].error("no repository is the primary: give one of them role: primary "
                                             "(the first one is the primary unless it says otherwise)")
        primaries = [repos[0].name]
    ordered = [Repository(**{**r.__dict__, "role": "primary" if r.name == primaries[0] else "copy"})
               for r in repos]
    ordered.sort(key=lambda r: r.role != "primary")
    out["repository"] = ordered[0]
    out["repositories"] = tuple(ordered)
    out["_repositories_node"] = m


def _link_repositories(out: dict, source: str) -> None:
    """An append-only repository's retention needs ``within`` (forged future times; restic's advice)."""
    m = out.pop("_repositories_node", None)
    if m is None:
        return
    for repo in out["repositories"]:
        retention = repo.retention if repo.retention is not None else out.get("retention", Retention())
        if repo.append_only and retention.within is None:
            child = m.children[repo.name]
            r = child.mapping()
            where = r.get("retention") or r.get("append_only")
            raise where.error("an append_only repository needs a 'within' rule in its retention (its own "
                              "retention: or the policy's): a compromised host can forge snapshot times, and "
                              "'within' keeps every recent snapshot whatever the counts say (e.g. within: 30d)")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def _url_or_file(m: _Map, out: dict) -> tuple[str, _Node]:
    """``url:`` or ``url_file:`` (a credential file holding the URL, whose token is a secret); (url, its node)."""
    if m.get("url") is not None and m.get("url_file") is not None:
        raise m.get("url_file").error("give url or url_file, not both")
    if (f := m.get("url_file")) is not None:
        path = _secret_file(f, out)
        try:
            url = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise f.error(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        return url, f
    where = m.require("url")
    return where.string(), where


def _parse_ping(kind: str, node: _Node, out: dict, name: str) -> Ping:
    m = node.mapping()
    m.check_known(("url", "url_file", "timeout", "retries", "actions") + (("method",) if kind == "url" else ()))
    url, where = _url_or_file(m, out)
    if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
        raise where.error("must be an http:// or https:// URL without spaces")
    for placeholder in _PLACEHOLDER.findall(url):
        if placeholder not in MONITOR_PLACEHOLDERS:
            raise where.error(f"unknown placeholder {{{placeholder}}}; use {{action}}, {{status}} or {{host}}")
    if kind == "url" and "{status}" not in url:
        raise where.error("needs the {status} placeholder (start, success or fail), or the receiver cannot "
                          "tell a start from an end")
    if kind != "url" and "{status}" in url:
        raise where.error(f"{{status}} is for the generic 'url' kind; {kind} adds the status itself")
    retries = 2
    if (r := m.get("retries")) is not None:
        retries = r.integer(minimum=0)
        if retries > 5:
            raise r.error(f"must be at most 5, got {retries}")
    actions: tuple[str, ...] = MONITORED_ACTIONS
    if (a := m.get("actions")) is not None:
        actions = (a.string(),) if isinstance(a.node, yaml.ScalarNode) else a.strings()
        for action in actions:
            if action not in MONITORED_ACTIONS:
                raise a.error(f"unknown action {action!r}; use {', '.join(MONITORED_ACTIONS)}")
    method = "POST"
    if (x := m.get("method")) is not None:
        method = x.string().upper()
        if method not in ("GET", "POST"):
            raise x.error(f"must be GET or POST, got {x.value()!r}")
    timeout = _notify_timeout(m)
    if timeout > 60:
        raise m.get("timeout").error(f"must be at most 1 min (a ping must never hold a run), got "
                                     f"{m.get('timeout').value()!r}")
    return Ping(kind=kind, url=url, timeout=timeout, retries=retries, actions=tuple(dict.fromkeys(actions)),
                method=method, name=name)


def _parse_monitor(node: _Node, out: dict) -> None:
    m = node.mapping()
    m.check_known(MONITOR_KINDS)
    pings: list[Ping] = []
    for kind in MONITOR_KINDS:
        node = m.get(kind)
        if node is None:
            continue
        if isinstance(node.node, yaml.SequenceNode):  # several checks of one kind, e.g. one per action
            items = node.items()
            if not items:
                raise node.error("must list at least one monitor, or be left out")
            pings += [_parse_ping(kind, item, out, kind if len(items) == 1 else f"{kind}#{i + 1}")
                      for i, item in enumerate(items)]
        else:
            pings.append(_parse_ping(kind, node, out, kind))
    out["monitor"] = Monitor(pings=tuple(pings))


def _scalar(key: str, parse: Callable[[_Node], Any]) -> Callable[[_Node, dict], None]:
    def section(node: _Node, out: dict) -> None:
        out[key] = parse(node)
    return section


_SECTIONS: dict[str, Callable[[_Node, dict], None]] = {
    "host": _scalar("host", lambda n: _host(n)),
    "state_dir": _scalar("state_dir", _absolute_path),
    "restic_binary": _scalar("restic_binary", lambda n: n.string()),
    "repository": _parse_repository,
    "repositories": _parse_repositories,
    "retention": _parse_retention,
    "paths": _parse_paths,
    "exclude": _parse_exclude,
    "databases": _parse_databases,
    "services": _parse_services,
    "concurrency": _scalar("concurrency", lambda n: n.integer(minimum=1)),
    "parallel_dumps": _scalar("concurrency", lambda n: n.integer(minimum=1)),
    "checks": _parse_checks,
    "verify": _parse_verify,
    "notify": _parse_notify,
    "monitor": _parse_monitor,
    "metrics_file": _scalar("metrics_file", _absolute_path),
    "container_engine": _scalar("container_engine", _container_engine),
}


def _link_databases(out: dict) -> None:
    """Give every database its owning service; reject unknown or shared ones."""
    databases = {db.name: db for db in out.get("databases", ())}
    owner: dict[str, str] = {}
    for svc in out.get("services", ()):
        node = out["_service_db_nodes"].get(svc.name)
        for item, db_name in zip(node.items() if node else (), svc.databases):
            if db_name not in databases:
                hint = difflib.get_close_matches(db_name, list(databases), n=1)
                more = f"; did you mean '{hint[0]}'?" if hint else "; define it under 'databases:'"
                raise item.error(f"unknown database {db_name!r}{more}")
            if db_name in owner:
                raise item.error(f"database {db_name!r} already belongs to service '{owner[db_name]}'")
            owner[db_name] = svc.name
    out["databases"] = tuple(
        Database(**{**db.__dict__, "service": owner.get(db.name, SYSTEM_SERVICE),
                    "container_engine": out.get("container_engine")})
        for db in databases.values()
    )


def overlaps(policy: Policy) -> list[str]:
    """Warnings (for ``config check``) for a path of one file set that holds (or is) a path of another:
    restoring the first in place also brings back the second's files, from the first's snapshot, while the
    second's units keep running. Often meant (/etc and /etc/nginx), so never repeated by every run."""
    sets = [(SYSTEM_SERVICE, policy.paths)] + [(s.name, s.paths) for s in policy.services]
    warnings = []
    for name, paths in sets:
        for path in paths:
            for other, other_paths in sets:
                for inner in other_paths:
                    if other != name and (inner == path or inner.startswith(path.rstrip("/") + "/")):
                        warnings.append(f"{path} of service {name} holds {inner} of service {other}: restoring "
                                        f"{name} in place also brings back those files, with {other}'s units "
                                        f"running; exclude it from one of them")
    return warnings


def _check_size(root: yaml.Node, source: str) -> None:
    """Refuse a document that expands to more than MAX_NODES nodes (each alias use counts again)."""
    budget = MAX_NODES
    stack = [root]
    while stack:
        node = stack.pop()
        budget -= 1
        if budget < 0:
            line = node.start_mark.line + 1
            raise PolicyError(f"{source}:{line}: the policy expands to more than {MAX_NODES} values "
                              f"(YAML aliases used over and over?); write it out plainly")
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))


def _read_policy_text(path: str) -> str | None:
    """The policy's text; None when it is larger than MAX_POLICY_BYTES or not a regular file.

    Never blocks and never reads without end: a FIFO, /dev/zero or a
    terminal given as the policy would hang ``status`` (called by
    monitoring every minute) or fill memory.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_POLICY_BYTES:
            return None
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(MAX_POLICY_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_POLICY_BYTES:
        return None
    return data.decode("utf-8")


def not_configured_message(source: str) -> str:
    """The one line for a policy that is still the unconfigured template (see ``is_template``)."""
    return (f"{source}: not configured yet: every setting is commented out; set repository.url and what to "
            f"back up (paths:, services:), write the repository password to "
            f"/etc/vhbackup/credentials/restic-password, then run 'vhbackup init' (the file's comments explain it)")


def is_template(path: str | os.PathLike) -> bool:
    """Whether the policy at ``path`` is still the unconfigured template: it exists but sets nothing.

    The package ships /etc/vhbackup/policy.yml with every setting commented
    out. Until the admin sets something, the units skip their runs (their
    ``ExecCondition=vhbackup config check --if-configured`` exits 1) and
    ``status`` says "not configured yet", instead of failing and alerting
    every night. A file that sets anything, even something broken, is
    configured: its errors must fail the run loudly. A missing or unreadable
    file is not the template either (it fails loudly too).
    """
    try:
        text = _read_policy_text(str(path))
        if text is None:
            return False
        return yaml.compose(text, Loader=yaml.SafeLoader) is None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False


def load_policy(path: str | os.PathLike, repository_credentials: bool = True) -> Policy:
    """Read, validate and return the policy at ``path``; raise PolicyError otherwise.

    ``repository_credentials=False`` skips reading the repository's password
    and env files, for commands that never open the repository (``status``,
    ``notify``): an alert about a missing password file must still go out.
    """
    source = str(path)
    try:
        text = _read_policy_text(source)
        if text is None:
            raise PolicyError(f"{source}: the policy is larger than {MAX_POLICY_BYTES // 1024} KiB, or not a "
                              f"regular file; is this the right file?")
    except FileNotFoundError:
        raise PolicyError(f"{source}: policy file not found; create it (see /usr/share/doc/vhbackup/"
                          f"examples) or pass --config FILE") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{source}: cannot read policy file: {getattr(exc, 'strerror', None) or exc}") from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"{source}{line}: YAML syntax error: {problem}") from None
    finally:
        loader.dispose()
    if root is None:
        raise PolicyError(not_configured_message(source))
    top = _Node(root, source, "", loader)
    _check_size(root, source)
    if not isinstance(root, yaml.MappingNode):
        raise top.error(f"the policy must be a mapping of keys such as 'repository:', got {_kind(root)}")
    m = top.mapping()
    m.check_known(tuple(_SECTIONS))
    if "parallel_dumps" in m.children and "concurrency" in m.children:
        raise m.children["parallel_dumps"].error("replaced by 'concurrency'; keep only that one")
    out: dict[str, Any] = {"warnings": [], "_repository_credentials": repository_credentials}
    if m.get("host") is not None:
        _SECTIONS["host"](m.get("host"), out)
    for key, parse in _SECTIONS.items():
        node = m.get(key)
        if key == "repository" and node is None and m.get("repositories") is None:
            node = m.require("repository")
        if key == "repositories" and node is not None and m.get("repository") is not None:
            raise node.error("give 'repository:' (one) or 'repositories:' (several), not both")
        if node is not None and key != "host":
            parse(node, out)
    if "parallel_dumps" in m.children:
        out["warnings"].append(f"{source}: 'parallel_dumps' is now called 'concurrency' (it counts the files "
                               f"backup too); rename it")
    _link_databases(out)
    _link_repositories(out, source)
    out.pop("_service_db_nodes", None)
    out.setdefault("host", socket.gethostname())
    out.pop("_repository_credentials")
    out["warnings"] = tuple(dict.fromkeys(out["warnings"]))  # one password file for several repositories: once
    return Policy(source=source, **out)
