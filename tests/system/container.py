"""A Debian release booted with systemd as PID 1 in a systemd-nspawn container.

Each container boots an overlay of a cached root (tools/system-rootfs.sh:
Debian 12 or 13), so containers never change the cache or each other. It
gets the unified cgroup hierarchy (cgroup v2, as Debian 12 and 13 boot on a
real machine; nspawn provides it on this hybrid host too) in a cgroup of its
own, and optionally a memory limit with /tmp as a tmpfs of half of it (what
Debian 13 mounts on a small host). By default it shares the host's network
namespace (apt inside reaches Debian's mirror; a listener on the host's
127.0.0.1 is reachable from inside); ``private_network`` gives it only its
own loopback. Commands run inside through ``nsenter`` on the container's PID
1 with a clean environment.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MiB = 1024 * 1024
CGROUP_PARENT = "vhbackup-tests"


class ContainerError(AssertionError):
    pass


def _is_cgroup2(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "cgroup.controllers"))


def unified_hierarchy() -> str:
    """The host's cgroup v2 mount: /sys/fs/cgroup (pure v2) or /sys/fs/cgroup/unified (hybrid)."""
    for path in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if _is_cgroup2(path):
            return path
    raise ContainerError("no cgroup v2 hierarchy on this host (/sys/fs/cgroup or /sys/fs/cgroup/unified)")


def memory_hierarchy() -> tuple[str, str]:
    """(mount, limit file) of the memory controller: cgroup v1's, or v2's when it has the controller."""
    v1 = "/sys/fs/cgroup/memory"
    if os.path.isfile(os.path.join(v1, "memory.limit_in_bytes")):
        return v1, "memory.limit_in_bytes"
    unified = unified_hierarchy()
    with open(os.path.join(unified, "cgroup.controllers")) as fh:
        if "memory" in fh.read().split():
            return unified, "memory.max"
    raise ContainerError("this host has no memory cgroup controller to limit a container with")


def remove_cgroup(path: str) -> None:
    """rmdir a cgroup and whatever nspawn and the container's systemd left below it, deepest first."""
    deadline = time.monotonic() + 10  # killed processes take a moment to leave their cgroup
    while os.path.isdir(path) and time.monotonic() < deadline:
        for dirpath, _, _ in sorted(os.walk(path), key=lambda entry: -entry[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass
        if os.path.isdir(path):
            time.sleep(0.2)


class Container:
    def __init__(self, image: Path, workdir: Path, name: str, binds: tuple[tuple[str, str], ...] = (),
                 memory: int | None = None, private_network: bool = False,
                 binds_ro: tuple[tuple[str, str], ...] = ()):
        self.image = Path(image)
        self.workdir = Path(workdir)
        self.name = name
        self.binds = binds
        self.binds_ro = binds_ro
        self.memory = memory
        self.private_network = private_network
        self.root = self.workdir / "merged"
        self.log_path = self.workdir / "nspawn.log"
        self.nspawn: subprocess.Popen | None = None
        self.leader: int | None = None
        self.cgroups: list[str] = []
        self.state = ""

    # --- life cycle ---------------------------------------------------------

    def _make_cgroups(self) -> list[str]:
        """A cgroup of its own in the unified hierarchy (nspawn puts the container below the one it runs
        in, so two containers must not share one), and in the memory hierarchy when limited."""
        leaf = f"{self.name}-{os.getpid()}-{time.monotonic_ns()}"
        unified = unified_hierarchy()
        places = [unified]
        if self.memory is not None:
            mount, limit_file = memory_hierarchy()
            if mount != unified:
                places.append(mount)
        made = []
        for mount in places:
            parent = os.path.join(mount, CGROUP_PARENT)
            os.makedirs(parent, exist_ok=True)
            path = os.path.join(parent, leaf)
            os.mkdir(path)
            made.append(path)
        if self.memory is not None:
            mount, limit_file = memory_hierarchy()
            if mount == unified:  # pure cgroup v2: the controller must reach the container's cgroup
                for level in (unified, os.path.join(unified, CGROUP_PARENT)):
                    with open(os.path.join(level, "cgroup.subtree_control"), "w") as fh:
                        fh.write("+memory")
            target = next(p for p in made if p.startswith(mount + "/"))
            with open(os.path.join(target, limit_file), "w") as fh:
                fh.write(str(self.memory))
        return made

    def memory_cgroup(self) -> str:
        """The host path of the container's memory-limited cgroup."""
        mount, _ = memory_hierarchy()
        return next(p for p in self.cgroups if p.startswith(mount + "/"))

    def boot(self, timeout: float = 120) -> None:
        for sub in ("upper", "work", "merged"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={self.image},upperdir={self.workdir / 'upper'},workdir={self.workdir / 'work'}",
                        str(self.root)], check=True, capture_output=True)
        self.cgroups = self._make_cgroups()
        argv = ["systemd-nspawn", "-D", str(self.root), "--boot", "--register=no", "--keep-unit",
                f"--machine={self.name}", "--hostname=vhtest"]
        argv += [f"--bind={host}:{inside}" for host, inside in self.binds]
        argv += [f"--bind-ro={host}:{inside}" for host, inside in self.binds_ro]
        if self.private_network:
            argv.append("--private-network")
        if self.memory is not None:
            # Debian 13's tmp.mount: a tmpfs of half the RAM (here: of the memory limit)
            argv.append(f"--tmpfs=/tmp:mode=1777,nosuid,nodev,size={self.memory // 2}")
        # Enter the cgroups first, then become nspawn (which must not share its cgroup with another container).
        enter = " && ".join(f"echo $$ > {shlex.quote(path)}/cgroup.procs" for path in self.cgroups)
        env = {**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
        with open(self.log_path, "wb") as log:
            self.nspawn = subprocess.Popen(["/bin/sh", "-c", f'{enter} && exec "$@"', "sh", *argv],
                                           stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True, env=env)
        deadline = time.monotonic() + timeout
        self.leader = self._wait_for_leader(deadline)
        while time.monotonic() < deadline:
            result = self.run("systemctl", "is-system-running", check=False, timeout=15)
            self.state = result.stdout.strip()
            if self.state in ("running", "degraded"):
                return
            time.sleep(0.5)
        raise ContainerError(f"container {self.name} did not finish booting within {timeout:.0f} s "
                             f"(is-system-running: {self.state!r}); console: {self.console_tail()}")

    def _wait_for_leader(self, deadline: float) -> int:
        """PID 1 of the container: the systemd child of the nspawn process."""
        assert self.nspawn is not None
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise ContainerError(f"systemd-nspawn exited with {self.nspawn.returncode}: {self.console_tail()}")
            for pid in _children(self.nspawn.pid):
                try:
                    exe = os.readlink(f"/proc/{pid}/exe")
                except OSError:
                    continue
                if exe.endswith("/systemd"):
                    return pid
            time.sleep(0.1)
        raise ContainerError(f"no systemd process appeared under systemd-nspawn: {self.console_tail()}")

    def stop(self, timeout: float = 60) -> None:
        """Shut the container down (SIGTERM to nspawn: a clean poweroff), kill what is left, clean up."""
        if self.nspawn is not None and self.nspawn.poll() is None:
            self.nspawn.send_signal(signal.SIGTERM)
            try:
                self.nspawn.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                if self.leader is not None:  # SIGKILL to PID 1 of the namespace ends every process in it
                    _kill(self.leader)
                os.killpg(self.nspawn.pid, signal.SIGKILL)
                self.nspawn.wait(timeout=30)
        for path in self.cgroups:
            for dirpath, _, files in os.walk(path):
                if "cgroup.procs" in files:
                    with open(os.path.join(dirpath, "cgroup.procs")) as fh:
                        for pid in fh.read().split():
                            _kill(int(pid))
        self.nspawn = None
        self.leader = None
        if os.path.ismount(self.root):
            subprocess.run(["umount", str(self.root)], check=False, capture_output=True)
            if os.path.ismount(self.root):
                subprocess.run(["umount", "-l", str(self.root)], check=False, capture_output=True)
        for path in self.cgroups:
            remove_cgroup(path)
        self.cgroups = []

    def console_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no console log)"
        return " | ".join(text.strip().splitlines()[-lines:])

    # --- inside -------------------------------------------------------------

    def command(self, *argv: str, env: dict[str, str] | None = None) -> list[str]:
        """The host command line that runs argv inside the container as root, with a clean environment."""
        if self.leader is None:
            raise ContainerError(f"container {self.name} is not running")
        clean = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb",
                 "DEBIAN_FRONTEND": "noninteractive", **(env or {})}
        return ["nsenter", "-t", str(self.leader), "-a", "/usr/bin/env", "-i",
                *(f"{k}={v}" for k, v in clean.items()), *argv]

    def run(self, *argv: str, check: bool = True, timeout: float = 120, input: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run argv inside the container as root, with a clean environment."""
        full = self.command(*argv, env=env)
        try:
            result = subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=input,
                                    stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise ContainerError(f"in {self.name}: {shlex.join(argv)} did not finish within {timeout:.0f} s; "
                                 f"output so far: {exc.stdout!r} {exc.stderr!r}") from None
        if check and result.returncode != 0:
            raise ContainerError(f"in {self.name}: {shlex.join(argv)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def sh(self, script: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run("/bin/sh", "-ec", script, **kwargs)

    def path(self, inside: str) -> Path:
        """The host path of a file inside the container (through the overlay)."""
        return self.root / inside.lstrip("/")

    def put(self, inside: str, content: str | bytes, mode: int = 0o644) -> None:
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(target, mode)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run("systemctl", "show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def processes(self) -> list[list[str]]:
        """argv of every process in the container, read from the host's /proc."""
        return [argv for _, argv in self.process_ids()]

    def process_ids(self) -> list[tuple[int, list[str]]]:
        """(host pid, argv) of every process in the container, read from the host's /proc."""
        if self.leader is None:
            return []
        children = _process_tree()
        found, todo = [], [self.leader]
        while todo:
            pid = todo.pop()
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    argv = fh.read().split(b"\0")[:-1]
            except OSError:
                continue
            found.append((pid, [a.decode("utf-8", "replace") for a in argv]))
            todo.extend(children.get(pid, ()))
        return found

    def wait_for(self, what: str, predicate, timeout: float, interval: float = 0.3):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise ContainerError(f"in {self.name}: timed out after {timeout:.0f} s waiting for {what}")


def _process_tree() -> dict[int, list[int]]:
    """Parent pid -> child pids, for every process on the host."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _children(pid: int) -> list[int]:
    return _process_tree().get(pid, [])
