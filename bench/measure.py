"""Timing one whole process tree: wall clock, CPU, peak memory and scratch bytes.

* wall: monotonic clock from spawn to reap.
* cpu: user+sys of the process and every descendant it waited for, from
  ``os.wait4`` (the kernel's RUSAGE_CHILDREN accounting for that one child).
* tree_rss: the largest peak RSS of any process in the tree, usually restic's:
  ``VmHWM`` of ``/proc/PID/status`` sampled every 20 ms (a program that exits
  before the first sample shows none). Not ``wait4``'s ``ru_maxrss``: Linux
  carries the parent's peak across fork and exec, so every child would show
  at least the harness's own RSS.
* own_rss / own_cpu: the peak RSS and CPU of the top Python process alone
  (vhbackup or borgmatic), apart from restic's, borg's and the dump tools'.
  ``bench/rsshook/sitecustomize.py`` writes ``VmHWM`` (peak RSS since exec)
  and ``getrusage(RUSAGE_SELF)`` CPU at exit to the file named by ``VHBENCH_RSS_FILE``; the hook removes that
  variable from the environment first, so no child reports instead.
* scratch: bytes written to storage outside the repository, i.e. by every
  process in the tree that is not restic or borg (``write_bytes`` of
  ``/proc/PID/task/TID/io``, the kernel's count of bytes a thread sent
  towards storage, sampled every 20 ms while the tree runs; the last value
  seen per thread counts). A dump file written and deleted still counts:
  it needed the disk space.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

HOOK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rsshook")
ENGINES = ("restic", "borg")
POLL_SECONDS = 0.02


@dataclass
class Sample:
    wall: float
    cpu: float
    tree_rss: int | None
    own_rss: int | None = None
    own_cpu: float | None = None
    scratch: int | None = None
    extra: dict = field(default_factory=dict)


class CommandFailed(RuntimeError):
    pass


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids.extend(int(x) for x in fh.read().split())
        except OSError:
            pass
    return kids


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _cmdline_is_engine(pid: int) -> bool:
    """borg is a Python script: its comm is 'borg' on Debian, but check argv too."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return False
    return any(os.path.basename(a.decode(errors="replace")) in ENGINES for a in argv[:2])


def _vm_hwm(pid: int) -> int | None:
    """Peak RSS of the process's current program (since its exec), in bytes."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _write_bytes(pid: int) -> dict[int, int]:
    """write_bytes of each thread of ``pid``, from /proc/PID/task/TID/io.

    Per thread, not /proc/PID/io: the process-wide figure also adds in the
    I/O of every child it has reaped, which would count restic's writes
    against vhbackup.
    """
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/io") as fh:
                for line in fh:
                    if line.startswith("write_bytes:"):
                        out[int(tid)] = int(line.split()[1])
        except OSError:
            pass
    return out


class ScratchWatcher(threading.Thread):
    """Samples the process tree: peak RSS per process, and write_bytes of the non-engine ones."""

    def __init__(self, root_pid: int, watch_path: str | None = None):
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.watch_path = watch_path
        self.file_peak = 0
        self.hwm: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self.seen: dict[int, int] = {}
        self.engine: set[int] = set()
        self.stop = threading.Event()

    def sample(self) -> None:
        if self.watch_path:
            try:
                self.file_peak = max(self.file_peak, os.stat(self.watch_path).st_size)
            except OSError:
                pass
        for pid in _tree(self.root_pid):
            hwm = _vm_hwm(pid)
            if hwm:
                self.hwm[pid] = max(self.hwm.get(pid, 0), hwm)
            if pid in self.engine:
                continue
            if _comm(pid) in ENGINES or _cmdline_is_engine(pid):
                # Checked on every sample: a child seen between fork and exec still has its parent's name.
                self.engine.add(pid)
                for tid in _write_bytes(pid):
                    self.seen.pop(tid, None)
                continue
            self.names[pid] = _comm(pid)
            for tid, value in _write_bytes(pid).items():
                self.seen[tid] = max(self.seen.get(tid, 0), value)

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(POLL_SECONDS)

    @property
    def total(self) -> int:
        return sum(self.seen.values())


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None,
        own: bool = False, scratch: bool = False, log: str | None = None, stdin=subprocess.DEVNULL,
        ok: Sequence[int] = (0,), watch_path: str | None = None) -> Sample:
    """Run ``argv`` to completion and measure it; raise CommandFailed on an unexpected exit."""
    env = dict(os.environ if env is None else env)
    rss_file = None
    if own:
        fd, rss_file = tempfile.mkstemp(prefix="vhbench-rss-")
        os.close(fd)
        env["VHBENCH_RSS_FILE"] = rss_file
        env["PYTHONPATH"] = os.pathsep.join(p for p in (HOOK_DIR, env.get("PYTHONPATH")) if p)
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        if log:
            out.write(f"\n$ {' '.join(argv)}\n".encode())
            out.flush()
        start = time.monotonic()
        proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdin=stdin, stdout=out, stderr=out)
        watcher = ScratchWatcher(proc.pid, watch_path)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        watcher.stop.set()
        watcher.join()
    finally:
        if log:
            out.close()
    sample = Sample(wall=wall, cpu=usage.ru_utime + usage.ru_stime, tree_rss=max(watcher.hwm.values(), default=None),
                    scratch=watcher.total if scratch else None)
    if os.environ.get("BENCH_DEBUG_SCRATCH") and scratch:
        print("    scratch by process:", {f"{watcher.names.get(p)}[{p}]": b for p, b in watcher.seen.items()})
    if watch_path:
        sample.extra["file_peak"] = watcher.file_peak
        if sample.scratch is not None:
            sample.scratch = max(sample.scratch, watcher.file_peak)
    if rss_file:
        with open(rss_file) as fh:
            fields = fh.read().split()
        os.unlink(rss_file)
        if len(fields) == 2:
            sample.own_rss = int(fields[0]) * 1024
            sample.own_cpu = float(fields[1])
    if proc.returncode not in ok:
        raise CommandFailed(f"{' '.join(argv)} exited {proc.returncode}" + (f"; see {log}" if log else ""))
    return sample


def quiet(argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None,
          input: bytes | None = None, log: str | None = None) -> bytes:
    """Set-up and tear-down steps (not measured); fail loudly."""
    result = subprocess.run(list(argv), env=None if env is None else dict(env), cwd=cwd, input=input,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if log:
        with open(log, "ab") as fh:
            fh.write(f"\n$ {' '.join(argv)}\n".encode() + result.stdout[-4000:] + result.stderr[-4000:])
    if result.returncode != 0:
        raise CommandFailed(f"{' '.join(argv)} exited {result.returncode}: "
                            f"{result.stderr.decode(errors='replace').strip()[-500:]}")
    return result.stdout


@dataclass(frozen=True)
class Stat:
    median: float
    low: float
    high: float
    n: int


def stat(values: Sequence[float | None]) -> Stat | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return Stat(statistics.median(vals), min(vals), max(vals), len(vals))


def self_usage() -> tuple[int, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_maxrss, ru.ru_utime + ru.ru_stime
