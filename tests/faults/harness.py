"""The fault-injection harness (fixtures in conftest.py): a world to break, the faults, and the invariants checked after each one.

A *world* is one host's backup set-up: a file tree, a real PostgreSQL and a
real MariaDB database and a running "unit", all in one service, backed up by
a real restic (0.14 and 0.18) into a local repository (or that repository
served over REST). Each test module builds one seed world per restic
version (``init`` and one good backup, ~10 s) and every test gets a copy of
its repository and state (milliseconds), so a test starts from "a good
backup exists" and can destroy anything.

The live databases are created once per module with unique names
(``vhbt_<random>_...``), only read by the tests, and dropped afterwards;
restores go into new uniquely named databases, dropped too.

Units: the test host has no systemd (PID 1 is not systemd), so ``systemctl``
is a stand-in on ``PATH`` (``bin/systemctl``) whose units are real
processes: ``stop`` kills the unit's process, ``start`` starts a new one,
``is-active`` asks whether it runs. vhbackup's own logic (what it notes in
``stopped-units.json``, what it starts again, ``recover``) is the real one;
real units under a booted systemd are covered by ``tests/system``.

Faults are injected by real processes only: a dump tool on ``PATH`` that is
the real tool killed after N bytes, a ``restic_binary`` wrapper that runs
the real restic and kills it (SIGKILL) when it reaches a given point in the
repository (a new pack, a new snapshot, a removed snapshot, its lock), a
vhbackup process killed by the test, small tmpfs file systems, a real
restic holding a lock, a REST server that is killed, repository files that
are deleted or truncated.

``check_invariants`` is called after every fault:

a. every database snapshot in the repository (so every one that
   ``restore --list``/``--latest``, drill or retention could choose) is a
   complete dump: ``pg_restore`` reads it to the end, MariaDB's ends with
   ``-- Dump completed``;
b. ``status`` is not OK while an item's newest attempt failed and no good
   backup followed (and OK once one did);
c. the unit that was running runs again, nothing is left in ``stopped-units.json``;
d. no scratch database (``scratch.json``, the drill's ``<db>_vhdrill_<run>``
   names) and no scratch directory (``<cache_dir>/drill``, ``/verify``) is left;
e. the failure's record names the real cause (``error_kind``, exit code,
   a phrase of the error line).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import PYTHON, RESTIC_VERSIONS, ROOT, Env, free_port
from tests.servers import RestServer  # noqa: F401 (for conftest)

sys.path.insert(0, str(ROOT / "tests" / "integration" / "databases"))
from dbhelpers import MARIA, PG, Databases, maria, psql  # noqa: E402,F401 (MARIA, PG: for conftest)

# --- stand-ins on PATH ------------------------------------------------------------------------

SYSTEMCTL = r"""#!/bin/sh
# systemctl stand-in for the fault tests (the test host runs no systemd): a unit is a real process whose
# pid is in $VHBT_UNITS/<unit>.pid; stop kills it, start starts a new one, is-active asks whether it runs.
dir="${VHBT_UNITS:?}"
eval unit=\${$#}
pidfile="$dir/$unit.pid"
alive() {
    [ -s "$pidfile" ] || return 1
    state=$(sed -n 's/^[0-9]* ([^)]*) \(.\).*/\1/p' "/proc/$(cat "$pidfile")/stat" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ]
}
case "$1" in
    is-active) alive ;;
    stop) if alive; then kill "$(cat "$pidfile")"; fi; rm -f "$pidfile"; echo stop >>"$dir/$unit.log" ;;
    start)
        if ! alive; then
            setsid sh -c 'echo $$ >"$1.new" && mv "$1.new" "$1" && exec sleep 100000' sh "$pidfile" \
                </dev/null >/dev/null 2>&1 &
            while [ ! -s "$pidfile" ]; do sleep 0.01; done
        fi
        echo start >>"$dir/$unit.log" ;;
    *) echo "systemctl stand-in: $*: not supported" >&2; exit 1 ;;
esac
"""

#: A dump tool that is the real one, killed by signal SIG once it has written N bytes of the dump.
KILLED_TOOL = """#!/bin/sh
case " $* " in *" --version "*) exec {real} "$@";; esac
{real} "$@" | head -c {nbytes}
kill -{sig} $$
"""

#: A tool that touches FLAG and then waits (long enough for the test to kill vhbackup), at a stage:
#: "start": before it writes anything; "mid": after N bytes of the real output. The waiting is the tool's
#: own process (exec): a child left holding the tool's stdout would keep vhbackup waiting for end-of-file.
STALLED_TOOL = {
    "start": """#!/bin/sh
case " $* " in *" --version "*) exec {real} "$@";; esac
touch {flag}
exec sleep 120
""",
    "mid": """#!/bin/sh
case " $* " in *" --version "*) exec {real} "$@";; esac
{real} "$@" | head -c {nbytes}
touch {flag}
exec sleep 120
""",
    # the whole dump, with a pause of 2 s after N bytes
    "pause": """#!/bin/sh
case " $* " in *" --version "*) exec {real} "$@";; esac
out=$(mktemp)
{real} "$@" >"$out" || exit $?
head -c {nbytes} "$out"
touch {flag}
sleep 2
tail -c +$(({nbytes} + 1)) "$out"
rm -f "$out"
""",
}

#: restic_binary: the real restic, except for the first call whose argv holds every word of MATCH: that one
#: is stopped when TRIGGER happens in the repository. ACTION "kill": SIGKILL restic (and this wrapper dies
#: the same way); "stall": let restic finish, then touch FLAG and wait (vhbackup waits for us).
RESTIC_WRAPPER = r'''#!/usr/bin/python3
import os, signal, subprocess, sys, time
REAL, REPO, MATCH, TRIGGER, ACTION, FLAG = {real!r}, {repo!r}, {match!r}, {trigger!r}, {action!r}, {flag!r}
args = sys.argv[1:]
if os.path.exists(FLAG) or not all(word in args for word in MATCH):
    os.execv(REAL, [REAL, *args])
open(FLAG, "w").close()

def listing(sub):
    found = set()
    for top, dirs, files in os.walk(os.path.join(REPO, sub)):
        found.update(os.path.join(top, f) for f in files if "-tmp-" not in f)  # not a file being written
    return found

where, _, what = TRIGGER.partition(":")
before = listing(what) if where in ("new", "gone") else set()
child = subprocess.Popen([REAL, *args])
for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, lambda s, f: child.send_signal(s))
started = time.monotonic()
def reached():
    if where == "new":
        return bool(listing(what) - before)
    if where == "gone":
        return bool(before - listing(what))
    if where == "lock":
        return bool(listing("locks")) and time.monotonic() - started > float(what or 0)
    return time.monotonic() - started > float(what)
if ACTION == "kill":
    while child.poll() is None and not reached():
        time.sleep(0.002)
    if child.poll() is None:
        child.kill()
        child.wait()
        with open(FLAG, "w") as f:
            f.write("fired")
        os.kill(os.getpid(), signal.SIGKILL)
    with open(FLAG, "w") as f:
        f.write("missed: restic ended first")
else:
    child.wait()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    with open(FLAG, "w") as f:
        f.write("stalled")
    time.sleep(120)
code = child.returncode
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
'''


#: For faults whose course does not depend on restic's version (nothing of restic runs yet, or only
#: vhbackup and the database tools are involved): run them with the newest restic only, to save time.
ONE_RESTIC = pytest.mark.parametrize("seed", [RESTIC_VERSIONS[-1]], indirect=True,
                                     ids=lambda v: f"restic{v}")


def write_exe(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


# --- the world --------------------------------------------------------------------------------

@dataclass
class World:
    env: Env
    dbs: Databases
    pg_key: str  # the policy's names (also the snapshots' db:<key> tags)
    maria_key: str
    pg: str  # the live databases
    maria: str
    tree: Path
    unit: str
    bin: Path
    units: Path
    complete: set = field(default_factory=set)  # snapshot ids already proven complete (per seed)
    overrides: dict = field(default_factory=dict)

    @property
    def repo(self) -> Path:
        return self.env.dir / "repo"

    def run_env(self, **extra) -> dict:
        return {"PATH": f"{self.bin}:{os.environ['PATH']}", "VHBT_UNITS": str(self.units), **extra}

    def policy(self, **over) -> dict:
        hub = {"paths": [str(self.tree)], "databases": [self.pg_key, self.maria_key], "units": [self.unit]}
        sections = {
            "host": "faults",
            "services": {"hub": hub},
            "databases": {
                self.pg_key: {"type": "postgresql", "host": "127.0.0.1", "user": "postgres", "names": [self.pg]},
                self.maria_key: {"type": "mariadb", "host": "127.0.0.1", "port": 3306, "user": "root",
                                 "names": [self.maria]},
            },
            "checks": {"min_free_space": "1MB"},
            # restic 0.14 retries loading a lock file that another job's restic just removed, with backoff;
            # under load that exceeded 10 s and was taken for an unreachable repository (a flake, see the docs)
            "repository": {"timeout": "60s"},
            "retention": {"last": 3},
        }
        for key, value in {**self.overrides, **over}.items():
            if isinstance(value, dict) and isinstance(sections.get(key), dict):
                sections[key] = {**sections[key], **value}
            else:
                sections[key] = value
        return sections

    def write_policy(self, **over) -> None:
        self.overrides = {**self.overrides, **over}
        self.env.write_policy(**self.policy())

    def vh(self, *args, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.env.vh(*args, env=self.run_env(**(env or {})), timeout=timeout)

    def popen(self, *args, env: dict | None = None) -> subprocess.Popen:
        full = {k: v for k, v in os.environ.items() if k not in ("DRY_RUN", "VHBACKUP_CONFIG", "NOTIFY_SOCKET",
                                                                   "JOURNAL_STREAM", "CREDENTIALS_DIRECTORY")}
        full.update(PYTHONPATH=str(ROOT), **self.run_env(**(env or {})))
        return subprocess.Popen([PYTHON, "-m", "vhbackup", "-c", str(self.env.policy_file), *args], env=full,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # stand-ins

    def tool(self, name: str, text: str) -> None:
        """A dump or load tool on PATH in place of the real /usr/bin/NAME."""
        write_exe(self.bin / name, text.replace("{real}", f"/usr/bin/{name}"))

    def killed_tool(self, name: str, nbytes: int = 20000, sig: str = "KILL") -> None:
        self.tool(name, KILLED_TOOL.replace("{nbytes}", str(nbytes)).replace("{sig}", sig))

    def stalled_tool(self, name: str, stage: str, nbytes: int = 20000) -> Path:
        flag = self.env.dir / f"{name}.stalled"
        self.tool(name, STALLED_TOOL[stage].replace("{nbytes}", str(nbytes)).replace("{flag}", str(flag)))
        return flag

    def clear_tools(self) -> None:
        for path in self.bin.iterdir():
            if path.name != "systemctl":
                path.unlink()
        self.write_policy(restic_binary=self.env.restic)

    def restic_fault(self, match: tuple[str, ...], trigger: str, action: str = "kill") -> Path:
        """From now on restic_binary is the wrapper; returns its flag file (it says whether the fault fired)."""
        flag = self.env.dir / "restic-fault.flag"
        wrapper = write_exe(self.env.dir / "restic-wrapper", RESTIC_WRAPPER.format(
            real=self.env.restic, repo=str(self.repo), match=tuple(match), trigger=trigger, action=action,
            flag=str(flag)))
        self.write_policy(restic_binary=str(wrapper))
        return flag

    # units

    def unit_running(self) -> bool:
        return subprocess.run([str(self.bin / "systemctl"), "is-active", "--quiet", self.unit],
                              env={**os.environ, **self.run_env()}).returncode == 0

    def start_unit(self) -> None:
        subprocess.run([str(self.bin / "systemctl"), "start", self.unit], env={**os.environ, **self.run_env()},
                       check=True)

    def stop_unit(self) -> None:
        subprocess.run([str(self.bin / "systemctl"), "stop", self.unit], env={**os.environ, **self.run_env()})

    def unit_log(self) -> list[str]:
        path = self.units / f"{self.unit}.log"
        return path.read_text().split() if path.exists() else []

    # the repository, as restic itself sees it

    def restic(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.env.run_restic(*args, check=check)

    def snapshots(self) -> list[dict]:
        return json.loads(self.restic("--no-lock", "snapshots", "--json").stdout or "[]") or []

    def db_snapshots(self) -> list[dict]:
        return [s for s in self.snapshots() if any(t.startswith("db:") for t in s.get("tags") or [])]


def held(locks: Path) -> bool:
    """Whether the repository's locks/ holds a lock (not a lock file still being written)."""
    return any("-tmp-" not in p.name for p in locks.iterdir())


def wait_for(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def kill_when(world: World, proc: subprocess.Popen, predicate, what: str, signum=signal.SIGKILL,
              timeout: float = 60) -> subprocess.CompletedProcess:
    """Send ``signum`` to a running vhbackup once ``predicate()`` holds; its result."""
    try:
        wait_for(lambda: predicate() or proc.poll() is not None, what, timeout)
    except AssertionError:
        proc.kill()
        raise
    assert proc.poll() is None, f"vhbackup ended before {what}: {proc.communicate()}"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def scratch_databases(w: World) -> list[str]:
    """Databases on both servers named as the drill names scratch copies of this world's databases."""
    found = []
    for key in (w.pg_key, w.maria_key):
        found += psql(f"SELECT datname FROM pg_database WHERE datname LIKE '{key}\\_vhdrill\\_%'").split()
        found += maria(f"SELECT SCHEMA_NAME FROM information_schema.SCHEMATA "
                       f"WHERE SCHEMA_NAME LIKE '{key}\\_vhdrill\\_%'").split()
    return found


def fill(path: Path, leave: int = 0) -> None:
    """Fill the file system of ``path`` up, leaving about ``leave`` bytes."""
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize - leave
    if free > 0:
        with open(path / "filler", "wb") as f:
            try:
                f.write(b"\0" * free)
            except OSError:
                pass


# --- the invariants -----------------------------------------------------------------------------

def _dump_is_complete(w: World, snap: dict) -> str | None:
    """None if the snapshot's dump is whole, else why not."""
    [path] = snap["paths"]
    dumped = w.env.dir / "dump.check"
    with open(dumped, "wb") as out:
        result = subprocess.run([w.env.restic, "--no-lock", "dump", snap["id"], path], env=w.env.restic_env(), stdout=out,
                                stderr=subprocess.PIPE, text=True)
    try:
        if result.returncode != 0:
            return f"restic dump failed: {result.stderr.strip()[-300:]}"
        tags = snap.get("tags") or []
        if f"db:{w.pg_key}" in tags:
            check = subprocess.run(["pg_restore", "-f", "/dev/null", str(dumped)], capture_output=True, text=True)
            if check.returncode != 0:
                return f"pg_restore cannot read it to the end: {check.stderr.strip()[-300:]}"
            return None
        with open(dumped, "rb") as f:
            f.seek(max(0, dumped.stat().st_size - 200))
            tail = f.read().decode(errors="replace").strip().splitlines()
        if not tail or not tail[-1].startswith("-- Dump completed"):
            return f"the MariaDB dump does not end with '-- Dump completed' ({dumped.stat().st_size} bytes)"
        return None
    finally:
        dumped.unlink(missing_ok=True)


def status_json(w: World) -> tuple[int, dict]:
    result = w.vh("status", "--json")
    return result.returncode, json.loads(result.stdout) if result.stdout.strip() else {}


def check_invariants(w: World, *, failed: bool | None, result: subprocess.CompletedProcess | None = None,
                     kind: str | None = None, says: str | tuple[str, ...] = (), action: str = "backup",
                     exit_code: int | None = None, repository_readable: bool = True,
                     units: bool = True, trust_new: bool = False) -> None:
    """The five invariants after a fault (see the module's docstring).

    ``failed``: True if the fault made a run fail and no good backup followed (status must not be OK),
    False if everything since the last good backup succeeded (status must be OK), None: not judged.
    ``kind``/``says``/``exit_code``/``action``: what the failed run's record and error line must name.
    ``trust_new``: the snapshots not seen yet come from a clean backup after the fault (no fault was
    injected into it): take them as complete without dumping them (each check costs a second; clean
    backups are proven complete by tests/integration).
    """
    problems = []
    # (a) every database snapshot is a complete dump
    if repository_readable:
        for snap in w.db_snapshots():
            if snap["id"] in w.complete:
                continue
            if trust_new:
                w.complete.add(snap["id"])
                continue
            why = _dump_is_complete(w, snap)
            if why is None:
                w.complete.add(snap["id"])
            else:
                problems.append(f"snapshot {snap['id'][:8]} {snap.get('tags')} holds an incomplete dump: {why}")
    # (b) status
    code, facts = status_json(w)
    if failed is True and code == 0:
        problems.append(f"status is OK after a failure: {facts.get('summary')}")
    if failed is False and code != 0:
        problems.append(f"status is not OK although every run since the last good backup succeeded: "
                        f"{facts.get('summary')}")
    # (c) units
    if units and not w.unit_running():
        problems.append(f"the unit {w.unit} that was running is not running")
    left = w.env.state_dir / "stopped-units.json"
    if units and left.exists():
        problems.append(f"stopped-units.json is left: {left.read_text()}")
    # (d) scratch
    registry = w.env.state_dir / "scratch.json"
    if registry.exists() and json.loads(registry.read_text()).get("databases"):
        problems.append(f"scratch.json still lists {registry.read_text()}")
    if leftover := scratch_databases(w):
        problems.append(f"scratch databases left on the servers: {leftover}")
    for purpose in ("drill", "verify"):
        base = w.env.dir / "cache" / purpose
        if base.exists() and any(base.iterdir()):
            problems.append(f"scratch directories left: {sorted(p.name for p in base.iterdir())} in {base}")
    # (e) the error names the real cause
    if result is not None and exit_code is not None and result.returncode != exit_code:
        problems.append(f"exit {result.returncode}, expected {exit_code}: {result.stderr.strip()[-500:]}")
    if kind is not None or says:
        record_path = w.env.state_dir / f"last-{action}.json"
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        if kind is not None and (record.get("details") or {}).get("error_kind") != kind:
            problems.append(f"error_kind {(record.get('details') or {}).get('error_kind')!r}, expected {kind!r}: "
                            f"{record.get('error')}")
        text = (record.get("error") or "") + "\n" + (result.stderr if result is not None else "")
        for phrase in (says,) if isinstance(says, str) else says:
            if phrase.lower() not in text.lower():
                problems.append(f"the error does not say {phrase!r}: {text.strip()[-600:]}")
    assert not problems, "\n".join(problems)


def recover_and_back_up(w: World) -> None:
    """What an admin (or ExecStopPost= and the next timer) does after a fault; then everything must be good."""
    w.clear_tools()
    recovered = w.vh("recover")
    assert recovered.returncode == 0, recovered.stderr
    again = w.vh("backup")
    assert again.returncode == 0, again.stderr
    check_invariants(w, failed=False, trust_new=True)
