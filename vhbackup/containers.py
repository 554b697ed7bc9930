"""Containers of a Docker or Podman engine: find them, stop and start them, exec into them, resolve volumes.

Everything goes through the engine's own command line (``docker`` or
``podman``, the same verbs for both), run by ``proc``; nothing here talks
to a socket itself. Under the hardened backup unit, podman is used as a
client of its API service (``CONTAINER_HOST``, see docs/containers.md):
the unit cannot create namespaces itself.

Compose services are found by the labels every compose implementation
puts on its containers (``com.docker.compose.project`` and
``com.docker.compose.service``), never through ``docker compose`` or
podman-compose (podman-compose 1.0.3 exits 0 even when podman failed).

``exec_argv`` wraps a database tool in a small ``sh`` script inside the
container that (1) reports the tool's own exit status on stderr as its
last line, so that the status judged is the tool's, not the exec client's
(``podman exec`` exits 0 when it is itself sent SIGTERM, leaving the tool
running), and (2) notes the tool's pid, so that vhbackup can stop the
tool inside the container (``stop_inside``): signalling the exec client
does not reach it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import secrets
import shutil
import stat
from dataclasses import dataclass
from typing import Mapping, Sequence

from vhbackup import proc
from vhbackup.errors import VhError
from vhbackup.policy import Policy

log = logging.getLogger("vhbackup")

ENGINES = ("docker", "podman")
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
#: Seconds an engine command may take (a stop waits up to the container's own stop timeout, 10 s by default).
TIMEOUT = 300
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
#: The last stderr line of a wrapped tool: its own exit status inside the container.
#: It carries the exec's random token: a line the tool itself prints (an error quoting a table name with a line
#: break in it) cannot pass for it when the wrapper never got to print its own (container stopped mid-dump).
STATUS_LINE = re.compile(r"^vhbackup-exec-status (\S+) (\d+)$")

#: Runs "$@" (the tool) with the exec's stdin, notes its pid in a file named after $0, forwards
#: TERM/INT to it, and prints its exit status as the last stderr line.
WRAPPER = (
    'f="${TMPDIR:-/tmp}/$0.pid"; exec 3<&0; "$@" <&3 3<&- & p=$!; exec 3<&-; '
    'echo "$p" >"$f" 2>/dev/null; trap \'kill -TERM "$p" 2>/dev/null\' TERM INT; '
    'while :; do wait "$p"; rc=$?; kill -0 "$p" 2>/dev/null || break; done; '
    'rm -f "$f" 2>/dev/null; echo "vhbackup-exec-status $0 $rc" >&2; exit "$rc"'
)
#: Sends TERM to the pid noted by WRAPPER (then KILL after 10 s if it still runs).
STOPPER = (
    'f="${TMPDIR:-/tmp}/$0.pid"; [ -r "$f" ] || exit 0; read -r p <"$f" || exit 0; kill -TERM "$p" 2>/dev/null || exit 0; '
    'i=0; while kill -0 "$p" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1 2>/dev/null || sleep 1; i=$((i+1)); done; '
    'kill -KILL "$p" 2>/dev/null; exit 0'
)


@dataclass(frozen=True)
class Container:
    """One container as the engine reports it."""

    id: str
    name: str
    running: bool


@dataclass(frozen=True)
class Ref:
    """A container the policy names: by ``name``, or as a compose ``project``/``service``."""

    name: str | None = None
    project: str | None = None
    service: str | None = None

    def __str__(self) -> str:
        return self.name if self.name else f"compose service {self.service} of project {self.project}"


# --- the engine ------------------------------------------------------------------


def detect(setting: str | None) -> str:
    """The engine command: the policy's ``container_engine``, else docker where its daemon's socket is, else podman.

    Detection starts no process: a machine with Docker's daemon has its
    socket (or ``DOCKER_HOST``); otherwise podman when installed (podman-docker's
    ``docker`` is podman too), else docker.
    """
    if setting:
        return setting
    if os.environ.get("DOCKER_HOST") or any(_is_socket(p) for p in DOCKER_SOCKETS):
        if shutil.which("docker"):
            return "docker"
    for name in ("podman", "docker"):
        if shutil.which(name):
            return name
    raise VhError("the policy names containers, but neither podman nor docker is installed; install one, "
                  "or set container_engine to the engine's command")


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def kind(engine: str) -> str:
    """``docker`` or ``podman`` for an engine command (a path such as /usr/bin/podman counts as podman)."""
    return "podman" if "podman" in os.path.basename(engine) else "docker"


def _hint(engine: str) -> str:
    return "apt install podman" if kind(engine) == "podman" else "apt install docker.io"


def run(engine: str, *args: str, timeout: float = TIMEOUT) -> proc.Result:
    return proc.run([engine, *args], missing_hint=_hint(engine), timeout=timeout)


def engine_error(result: proc.Result) -> str:
    """The engine's own complaint, one line (its ``Error:`` / ``Error response from daemon:`` line)."""
    lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
    for line in lines:
        if line.startswith("Error"):
            return line
    return lines[-1] if lines else proc.describe_exit(result.returncode)


def answers(engine: str) -> str | None:
    """None when the engine answers; else why not (its daemon or API service is not running, ...)."""
    try:
        result = run(engine, "version", timeout=30)
    except VhError as exc:
        return str(exc)
    return None if result.returncode == 0 else engine_error(result)


# --- finding containers ------------------------------------------------------------


def inspect(engine: str, name: str) -> Container | None:
    """The container called ``name`` (or with that id); None when there is none."""
    result = run(engine, "container", "inspect", name, timeout=60)
    if result.returncode != 0:
        if re.search(r"no such (object|container)|not found", result.stderr, re.IGNORECASE):
            return None
        raise VhError(f"{engine} could not inspect container {name}: {engine_error(result)}")
    try:
        data = json.loads(result.stdout)[0]
        return Container(id=str(data["Id"]), name=str(data["Name"]).lstrip("/"),
                         running=bool(data["State"]["Running"]))
    except (ValueError, LookupError, TypeError) as exc:
        raise VhError(f"{engine} container inspect {name}: unexpected answer ({exc})") from None


def compose_ids(engine: str, project: str, service: str) -> list[str]:
    """Ids of the containers (running or not) of a compose service, found by their compose labels."""
    result = run(engine, "ps", "-a", "--no-trunc", "--filter", f"label={PROJECT_LABEL}={project}",
                 "--filter", f"label={SERVICE_LABEL}={service}", "--format", "{{.ID}}", timeout=60)
    if result.returncode != 0:
        raise VhError(f"{engine} could not list the containers of compose project {project}: "
                      f"{engine_error(result)}")
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def resolve(engine: str, refs: Sequence[Ref]) -> list[Container]:
    """Every container the references name, in order, each once; one-line error for one that does not exist."""
    found: dict[str, Container] = {}
    for ref in refs:
        if ref.name:
            container = inspect(engine, ref.name)
            if container is not None and ref.name not in (container.name, container.id):
                container = None  # the engine matched the start of another container's id: not this name
            if container is None:
                raise VhError(f"container {ref.name} does not exist ({engine}); check its name with "
                              f"'{engine} ps -a'")
            found.setdefault(container.id, container)
            continue
        ids = compose_ids(engine, ref.project, ref.service)
        if not ids:
            raise VhError(f"compose project {ref.project} has no container for service {ref.service} ({engine}); "
                          f"check with '{engine} ps -a --filter label={PROJECT_LABEL}={ref.project}'")
        for cid in ids:
            container = inspect(engine, cid)
            if container is not None:
                found.setdefault(container.id, container)
    return list(found.values())


def running_one(engine: str, ref: Ref) -> Container:
    """The one running container a database runs in; one-line errors otherwise."""
    containers = resolve(engine, [ref])
    live = [c for c in containers if c.running]
    if not live:
        raise VhError(f"container {containers[0].name} ({ref}) is not running; start it "
                      f"('{engine} start {containers[0].name}') before its databases can be dumped or restored")
    if len(live) > 1:
        raise VhError(f"{ref} runs in {len(live)} containers ({', '.join(c.name for c in live)}); "
                      f"name one with 'container:'")
    return live[0]


# --- stop and start ------------------------------------------------------------------


def stop(engine: str, container: Container) -> None:
    result = run(engine, "stop", container.id)
    if result.returncode != 0:
        raise VhError(f"could not stop container {container.name}: {engine_error(result)}")


def start(engine: str, container_id: str) -> proc.Result:
    return run(engine, "start", container_id)


def is_running(engine: str, container_id: str) -> bool:
    container = inspect(engine, container_id)
    return container is not None and container.running


# --- volumes ---------------------------------------------------------------------------


def _volume_name(inspect_output: str) -> str | None:
    try:
        return str(json.loads(inspect_output)[0]["Name"])
    except (ValueError, LookupError, TypeError):
        return None


def volume_path(engine: str, name: str, create: bool = False) -> str | None:
    """The mount point of volume ``name`` on this machine; None when it does not exist (unless ``create``)."""
    result = run(engine, "volume", "inspect", name, timeout=60)
    if result.returncode == 0 and _volume_name(result.stdout) != name:
        # podman matched a unique partial name (hub_data -> hub_data_old): that is another volume
        result = proc.Result(result.argv, 1, "", f"Error: no such volume {name}")
    if result.returncode != 0:
        if not re.search(r"no such volume|not found|no such object", result.stderr, re.IGNORECASE):
            raise VhError(f"{engine} could not inspect volume {name}: {engine_error(result)}")
        if not create:
            return None
        made = run(engine, "volume", "create", name, timeout=60)
        if made.returncode != 0:
            raise VhError(f"could not create volume {name}: {engine_error(made)}")
        log.info("created volume %s", name)
        return volume_path(engine, name)
    try:
        path = str(json.loads(result.stdout)[0]["Mountpoint"])
    except (ValueError, LookupError, TypeError) as exc:
        raise VhError(f"{engine} volume inspect {name}: unexpected answer ({exc})") from None
    if not path.startswith("/"):
        raise VhError(f"volume {name} has no local mount point ({path!r}): back it up from inside its container")
    return os.path.normpath(path)


# --- exec ---------------------------------------------------------------------------------


def exec_argv(engine: str, container: str, argv: Sequence[str], env: Mapping[str, str],
              secret_names: Sequence[str], user: str | None, token: str) -> list[str]:
    """``ENGINE exec -i [--user U] -e K=V... -e SECRET... CONTAINER sh -c WRAPPER TOKEN tool args...``.

    Secrets are passed as ``-e NAME`` without a value: the engine copies
    the value from its own environment, so it is never on a command line.
    """
    args = [engine, "exec", "-i"]
    if user:
        args += ["--user", user]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    for name in secret_names:
        args += ["-e", name]
    return [*args, container, "sh", "-c", WRAPPER, token, *argv]


def new_token() -> str:
    return f"vhbackup-exec-{secrets.token_hex(8)}"


def stop_inside(engine: str, container: str, user: str | None, token: str) -> None:
    """Stop the tool a wrapped exec runs (TERM, KILL after 10 s); the exec client then ends with its status."""
    args = [engine, "exec"]
    if user:
        args += ["--user", user]
    try:
        result = proc.run([*args, container, "sh", "-c", STOPPER, token], missing_hint=_hint(engine), timeout=30)
        if result.returncode != 0:
            log.warning("could not stop the tool inside container %s: %s", container, engine_error(result))
    except VhError as exc:
        log.warning("could not stop the tool inside container %s: %s", container, exc)


def tool_status(engine: str, container: str, ended: proc.Ended, token: str) -> proc.Ended:
    """How the tool inside the container ended, from the wrapper's status line; engine failures made clear.

    Without the status line the tool's end is unknown (the exec client was
    stopped, or the engine failed): never a success.
    """
    lines = list(ended.stderr)
    status = None
    for i in range(len(lines) - 1, -1, -1):
        match = STATUS_LINE.match(lines[i].strip())
        if match and match.group(1) == token:
            status = int(match.group(2))
            del lines[i]
            break
    lines = [ln for ln in lines if not ln.startswith("Emulate Docker CLI using podman")]
    if status is not None:
        if status > 128:
            lines.append(f"{ended.tool} was killed by {_signal_name(status - 128)} inside container {container}")
        return proc.Ended(ended.tool, status, tuple(lines), stalled=ended.stalled)
    why = _exec_failure(engine, container, ended.returncode, lines)
    return proc.Ended(ended.tool, ended.returncode if ended.returncode != 0 else 1, (*lines, why),
                      stalled=ended.stalled)


def _signal_name(number: int) -> str:
    import signal
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _exec_failure(engine: str, container: str, code: int, lines: list[str]) -> str:
    detail = next((ln.strip() for ln in lines if ln.strip().startswith("Error")), None)
    tail = f": {detail}" if detail else ""
    if code == 127:
        return f"{engine} exec in container {container}: command not found (exit 127){tail}"
    if code == 126:
        return f"{engine} exec in container {container}: command cannot be run (exit 126){tail}"
    if code in (125, 255) or (code == 1 and detail):
        return f"{engine} exec in container {container} failed ({proc.describe_exit(code)}){tail}"
    return (f"{engine} exec in container {container} ended ({proc.describe_exit(code)}) without the tool's exit "
            f"status (the exec client was stopped, or the container has no /bin/sh)")


def with_volumes(policy: Policy, services: Sequence[str] = (), create: bool = False,
                 missing_ok: bool = False) -> Policy:
    """The policy with each service's volumes (all services, or those named) added to its paths as mount points.

    Paths stay literal: a volume becomes the one directory its engine
    reports. ``create`` makes a missing volume (an in-place restore);
    otherwise a missing volume is a one-line error naming it (or, with
    ``missing_ok``, for a dry run, left out).
    """
    wanted = [s for s in policy.services if s.volumes and (not services or s.name in services)]
    if not wanted:
        return policy
    engine = detect(policy.container_engine)
    resolved = {}
    for svc in wanted:
        paths = list(svc.paths)
        for volume in svc.volumes:
            path = volume_path(engine, volume, create=create)
            if path is None and missing_ok:
                continue
            if path is None:
                raise VhError(f"volume {volume} of service {svc.name} does not exist ({engine}); check its name with "
                              f"'{engine} volume ls'")
            if path not in paths:
                paths.append(path)
        resolved[svc.name] = dataclasses.replace(svc, paths=tuple(paths))
    return dataclasses.replace(policy, services=tuple(resolved.get(s.name, s) for s in policy.services))
