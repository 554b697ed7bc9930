#!/usr/bin/python3
"""One retention planning, measured from inside its own process (bench/scenarios.py runs it).

argv: LISTING (a `restic snapshots --json` output), RETENTION (JSON of the
policy's retention counts), NOW (ISO time). Prints JSON: plan_seconds (parsing
and planning, as `vhbackup prune` does after restic answers), cpu, vmhwm
(peak RSS of this whole process, interpreter and imports included, bytes),
groups, kept, removed.
"""

import json
import os
import resource
import sys
import time
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vhbackup import restic, retention  # noqa: E402
from vhbackup.policy import Retention  # noqa: E402


def vmhwm() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> int:
    listing, counts, now = sys.argv[1], json.loads(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
    policy = Retention(**counts)
    with open(listing) as fh:
        text = fh.read()
    start = time.perf_counter()
    snapshots = [s for s in restic.parse_snapshots(text) if s.host == "bench"]
    decisions = retention.plan(snapshots, policy, now=now)
    seconds = time.perf_counter() - start
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"plan_seconds": seconds, "cpu": ru.ru_utime + ru.ru_stime, "vmhwm": vmhwm(),
                      "groups": len(decisions), "kept": sum(len(d.keep) for d in decisions),
                      "removed": sum(len(d.remove) for d in decisions), "snapshots": len(snapshots)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
