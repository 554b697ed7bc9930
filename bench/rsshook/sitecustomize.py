"""Benchmark hook: report this Python process's own peak RSS and CPU at exit.

Put on PYTHONPATH by bench/measure.py for vhbackup and borgmatic runs. It
writes "<VmHWM KiB> <user+sys seconds>" of this process only (not restic,
borg or the dump tools it starts) to $VHBENCH_RSS_FILE, and removes the
variable so that child Python processes (borg) stay silent. VmHWM, not
ru_maxrss: the latter keeps the spawning harness's peak across fork+exec.
"""

import atexit
import os

_target = os.environ.pop("VHBENCH_RSS_FILE", None)

if _target:
    def _report(path=_target):
        import resource
        ru = resource.getrusage(resource.RUSAGE_SELF)
        hwm = ru.ru_maxrss
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        with open(path, "w") as fh:
            fh.write(f"{hwm} {ru.ru_utime + ru.ru_stime:.4f}\n")

    atexit.register(_report)
