"""Where a database's tools run: on this host, or inside the database's container.

The engine modules (postgresql, mariadb, mongodb) describe a tool call as a
``Command`` (argv, plain environment, secret environment); the ``Runner``
of the connection turns it into a process:

- on the host: the argv as is, secrets in the tool's environment;
- in a container: ``ENGINE exec -i [--user U] -e K=V... -e SECRET CONTAINER
  sh -c WRAPPER ...``. A secret is given as ``-e NAME`` without a value, so
  the engine copies it from the exec client's own environment: it is on no
  command line and in no file. The wrapper (``containers.WRAPPER``)
  reports the tool's own exit status, which is what is judged, and lets
  vhbackup stop the tool inside the container.

Tools are looked up where they run: ``shutil.which`` on the host, ``command
-v`` through the engine inside a container (cached per container).
"""

from __future__ import annotations

import shutil
import signal
import threading
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from vhbackup import containers, proc

_found: dict[tuple[str, str, str | None, str], bool] = {}
_found_lock = threading.Lock()


@dataclass(frozen=True)
class Command:
    """A child process to start: argv (never a secret in it), extra environment, and secret environment."""

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict, repr=False)
    secrets: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def tool(self) -> str:
        return self.argv[0].rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Runner:
    """The host (no container), or a running container reached through ``engine``."""

    engine: str | None = None
    container: str | None = None
    user: str | None = None
    #: The wrapper's token for this connection's tool runs (one at a time): its pid file and status line.
    token: str = field(default_factory=containers.new_token, compare=False, repr=False)

    @property
    def in_container(self) -> bool:
        return self.container is not None

    @property
    def where(self) -> str:
        return f" in container {self.container}" if self.container else ""

    # --- tools ---

    def has(self, name: str) -> bool:
        if not self.in_container:
            return shutil.which(name) is not None
        key = (self.engine, self.container, self.user, name)
        with _found_lock:
            if key in _found:
                return _found[key]
        argv = [self.engine, "exec", *(["--user", self.user] if self.user else []), self.container,
                "sh", "-c", 'command -v "$0" >/dev/null', name]
        found = proc.run(argv, timeout=60).returncode == 0
        with _found_lock:
            _found[key] = found
        return found

    def first_available(self, names: Sequence[str]) -> str:
        """The first of ``names`` that is installed where the tools run, or the first (so errors name it)."""
        return next((n for n in names if self.has(n)), names[0])

    def missing(self, groups: Iterable[Sequence[str]]) -> list[str]:
        """Of each group of alternatives (e.g. mariadb-dump or mysqldump), the ones with none installed."""
        return [group[0] for group in groups if not any(self.has(n) for n in group)]

    # --- processes ---

    def step(self, command: Command, missing_hint: str | None = None,
             stop_signal: int = signal.SIGTERM) -> proc.Step:
        """The pipeline step that runs ``command`` here (a dump producer or a restore consumer)."""
        if not self.in_container:
            return proc.Step(command.argv, env={**command.env, **command.secrets}, stop_signal=stop_signal,
                             missing_hint=missing_hint)
        token = self.token
        argv = containers.exec_argv(self.engine, self.container, command.argv, command.env,
                                    sorted(command.secrets), self.user, token)
        engine, container, user = self.engine, self.container, self.user
        return proc.Step(tuple(argv), env=dict(command.secrets), stop_signal=signal.SIGTERM,
                         on_stop=lambda: containers.stop_inside(engine, container, user, token))

    def run(self, command: Command, timeout: float = 120) -> proc.Result:
        """Run a short client call (a query) to its end."""
        if not self.in_container:
            return proc.run(command.argv, env={**command.env, **command.secrets}, timeout=timeout)
        argv = [self.engine, "exec", *(["--user", self.user] if self.user else [])]
        for key, value in command.env.items():
            argv += ["-e", f"{key}={value}"]
        for name in sorted(command.secrets):
            argv += ["-e", name]
        return proc.run([*argv, self.container, *command.argv], env=dict(command.secrets), timeout=timeout)

    def ended(self, ended: proc.Ended) -> proc.Ended:
        """How the tool itself ended (inside a container: its own status, not the exec client's)."""
        if not self.in_container:
            return ended
        return containers.tool_status(self.engine, self.container, ended, self.token)


HOST = Runner()
