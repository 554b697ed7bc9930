"""Benchmark hook: report this Python process's own peak RSS and CPU at exit.

Put on PYTHONPATH by bench/measure.py for vhbackup and borgmatic runs. It
writes "<ru_maxrss KiB> <user+sys seconds>" of RUSAGE_SELF (this process
only, not restic, borg or the dump tools it starts) to $VHBENCH_RSS_FILE,
and removes the variable so that child Python processes (borg) stay silent.
"""

import atexit
import os

_target = os.environ.pop("VHBENCH_RSS_FILE", None)

if _target:
    def _report(path=_target):
        import resource
        ru = resource.getrusage(resource.RUSAGE_SELF)
        with open(path, "w") as fh:
            fh.write(f"{ru.ru_maxrss} {ru.ru_utime + ru.ru_stime:.4f}\n")

    atexit.register(_report)
