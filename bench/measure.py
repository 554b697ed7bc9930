"""Timing one whole process tree: wall clock, CPU and the vhbackup process's own peak memory.

* wall: monotonic clock from spawn to reap.
* cpu: user+sys of the process and every descendant it waited for, from
  ``os.wait4`` (the kernel's RUSAGE_CHILDREN accounting for that one child).
* own_rss / own_cpu: the peak RSS and CPU of the top Python process alone
  (vhbackup), apart from restic's and the dump tools'.
  ``bench/rsshook/sitecustomize.py`` writes ``VmHWM`` (peak RSS since exec)
  and ``getrusage(RUSAGE_SELF)`` CPU at exit to the file named by
  ``VHBENCH_RSS_FILE``; the hook removes that variable from the environment
  first, so no child reports instead.

Every contender's standard output and standard error are appended to the
benchmark's log (``OUTPUT``), the same for vhbackup, restic and the scripts;
nothing is sampled while a contender runs.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

HOOK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rsshook")
#: Where every timed command's stdout and stderr go (the method text quotes this).
OUTPUT = "appended to the benchmark log (WORK/bench.log), for every contender alike"


@dataclass
class Sample:
    wall: float
    cpu: float
    round: int = -1
    own_rss: int | None = None
    own_cpu: float | None = None
    extra: dict = field(default_factory=dict)


class CommandFailed(RuntimeError):
    pass


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None,
        own: bool = False, log: str | None = None, ok: Sequence[int] = (0,)) -> Sample:
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
        proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log:
            out.close()
    sample = Sample(wall=wall, cpu=usage.ru_utime + usage.ru_stime)
    if rss_file:
        with open(rss_file) as fh:
            fields = fh.read().split()
        os.unlink(rss_file)
        if len(fields) == 2:
            sample.own_rss = int(fields[0]) * 1024
            sample.own_cpu = float(fields[1])
    if proc.returncode not in ok:
        raise CommandFailed(f"{' '.join(argv)[:300]} exited {proc.returncode}" + (f"; see {log}" if log else ""))
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
        raise CommandFailed(f"{' '.join(argv)[:300]} exited {result.returncode}: "
                            f"{result.stderr.decode(errors='replace').strip()[-500:]}")
    return result.stdout
