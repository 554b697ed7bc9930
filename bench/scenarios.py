"""The scenarios of issue 14's targets, each filling one ``Scenario`` side by side.

The hand-made contenders are built from what vhbackup really runs: one
untimed *recording run* of vhbackup goes through shims (restic, pg_dump,
mariadb-dump) that log each process's argv and environment before they
exec the real program. The scripts below replay exactly those processes
(same programs, arguments and environment; each contender's own repository
and cache), so "vhbackup against the same restic calls by hand" compares
like with like, and the report quotes the scripts it ran.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from bench import datasets
from bench.measure import Sample, quiet, run
from bench.results import Scenario, interleave, once
from bench.setup import HOST, PYTHON, ROOT, World

TOOL_ENGINE = {"pg_dump": "postgresql", "pg_dumpall": "postgresql", "mariadb-dump": "mariadb",
               "mysqldump": "mariadb"}
#: Environment variables a recorded process keeps (secrets are never recorded: these databases need none).
RECORDED_ENV = ("RESTIC_", "PG", "MYSQL_", "TMPDIR", "LC_ALL", "LANG", "GO")
SECRET_ENV = ("RESTIC_PASSWORD", "PGPASSWORD", "MYSQL_PWD")

SHIM = '''#!{python}
import json, os, sys, time
rec = {{"t": time.time(), "tool": {tool!r}, "argv": sys.argv[1:],
        "env": {{k: v for k, v in os.environ.items() if k.startswith({keep!r}) and k not in {secret!r}}}}}
with open({log!r}, "a") as fh:
    fh.write(json.dumps(rec) + "\\n")
os.execv({real!r}, [{real!r}] + sys.argv[1:])
'''


# --- what vhbackup ran ------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    binary: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]

    def shell(self, subs: dict[str, str]) -> str:
        """This process as a shell command: its environment as assignments, then the program and arguments."""
        def sub(text: str) -> str:
            for old, new in subs.items():
                text = text.replace(old, new)
            return text
        assigns = [f"{k}={shlex.quote(sub(v))}" for k, v in self.env]
        return " ".join([*assigns, shlex.quote(self.binary), *(shlex.quote(sub(a)) for a in self.argv)])


@dataclass
class Job:
    name: str  # "files" or "db:NAME", as vhbackup names its jobs
    restic: Proc
    dump: Proc | None = None


@dataclass
class Recording:
    """The restic and dump processes of one vhbackup backup run."""
    jobs: dict[str, Job] = field(default_factory=dict)
    others: list[Proc] = field(default_factory=list)
    run_id: str = ""
    repo: str = ""
    cache: str = ""

    def subs(self, repo: str, cache: str, tag: str) -> dict[str, str]:
        return {self.repo: repo, self.cache: cache, f"run:{self.run_id}": f"run:{tag}"}


def _subcommand(argv: list[str]) -> str:
    args = list(argv)
    while args and args[0].startswith("-"):
        args = args[2:] if args[0] in ("--compression",) else args[1:]
    return args[0] if args else ""


def install_shims(world: World, name: str) -> tuple[str, str]:
    """A directory of shims (restic and the dump tools) and the log they write."""
    shim_dir = world.path("shims", name)
    log = world.path("shims", f"{name}.jsonl")
    os.makedirs(shim_dir, exist_ok=True)
    for tool, real in (("restic", world.restic), *((t, shutil.which(t)) for t in TOOL_ENGINE)):
        if not real:
            continue
        path = os.path.join(shim_dir, tool)
        with open(path, "w") as fh:
            fh.write(SHIM.format(python=PYTHON, tool=tool, keep=RECORDED_ENV, secret=SECRET_ENV, log=log,
                                 real=os.path.realpath(real) if tool == "restic" else real))
        os.chmod(path, 0o755)
    return shim_dir, log


def read_recording(log: str, engines: dict[str, str], real: dict[str, str], repo: str, cache: str) -> Recording:
    """The jobs of the recorded run: the files backup, and per database its dump piped into restic."""
    entries = []
    with open(log) as fh:
        for line in fh:
            entries.append(json.loads(line))
    entries.sort(key=lambda e: e["t"])
    rec = Recording(repo=repo, cache=cache)
    dumps: dict[str, Proc] = {}
    for e in entries:
        proc = Proc(real[e["tool"]], tuple(e["argv"]), tuple(sorted(e["env"].items())))
        if e["tool"] == "restic" and _subcommand(e["argv"]) == "backup":
            tags = [a.split("=", 1)[1] for a in e["argv"] if a.startswith("--tag=")]
            rec.run_id = next(t[4:] for t in tags if t.startswith("run:"))
            db = next((t[3:] for t in tags if t.startswith("db:")), None)
            name = f"db:{db}" if db else "files"
            rec.jobs[name] = Job(name, proc)
        elif e["tool"] in TOOL_ENGINE:
            db = next(n for n, eng in engines.items() if eng == TOOL_ENGINE[e["tool"]])
            dumps[f"db:{db}"] = proc
        else:
            rec.others.append(proc)
    for name, proc in dumps.items():
        rec.jobs[name].dump = proc
    return rec


def job_order(rec: Recording, state_dir: str, file_items: list[str], databases: list[str]) -> list[str]:
    """The order vhbackup's backup gives its jobs: longest first by the durations in items.json.

    Ties keep vhbackup's own order: the files first, then the databases in the policy's order.
    """
    try:
        with open(os.path.join(state_dir, "items.json")) as fh:
            items = json.load(fh)
    except (OSError, ValueError):
        items = {}

    def last(name: str) -> float:
        names = file_items if name == "files" else [name]
        return max((float(((items.get(n) or {}).get("last") or {}).get("duration") or 0) for n in names),
                   default=0.0)
    names = [n for n in ("files", *(f"db:{d}" for d in databases)) if n in rec.jobs]
    return sorted(names, key=last, reverse=True)


def pool_script(rec: Recording, order: list[str], concurrency: int, subs: dict[str, str], log: str,
                then: list[str] = ()) -> str:
    """The jobs in ``order``, ``concurrency`` at a time (a new one starts when any ends), then ``then``.

    Each job reports its exit status as a line on a pipe (fd 3) when it
    ends; the script blocks on that pipe for a free slot (not on ``wait -n``,
    which can miss a job that ended together with another).
    """
    lines = ["set -o pipefail",
             'fifo=$(mktemp -u) && mkfifo "$fifo" && exec 3<>"$fifo" && rm -f "$fifo" || exit 1',
             "fail=0 running=0"]
    ended = 'read -r st <&3; [ "$st" = 0 ] || fail=1; running=$((running - 1))'
    for name in order:
        job = rec.jobs[name]
        restic = f"{job.restic.shell(subs)} >>{shlex.quote(log)} 2>&1"
        pipeline = f"{job.dump.shell(subs)} 2>>{shlex.quote(log)} | {restic}" if job.dump else restic
        lines.append(f"{{ {pipeline}; echo $? >&3; }} &")
        lines.append("running=$((running + 1))")
        lines.append(f"if [ $running -ge {concurrency} ]; then {ended}; fi")
    lines.append(f"while [ $running -gt 0 ]; do {ended}; done")
    lines.append("wait")
    lines.append('[ "$fail" = 0 ] || exit 1')
    lines += [f"{cmd} >>{shlex.quote(log)} 2>&1" for cmd in then]
    return "\n".join(lines) + "\n"


def sequential_script(rec: Recording, subs: dict[str, str], log: str, scratch: str) -> str:
    """Dump each database to a file, one restic backup over the files and the dumps, delete the dumps."""
    lines = ["set -e -o pipefail"]
    files: list[str] = []
    for name in sorted(rec.jobs):
        job = rec.jobs[name]
        if job.dump is None:
            continue
        path = os.path.join(scratch, name.replace(":", "-") + ".dump")
        files.append(path)
        lines.append(f"{job.dump.shell(subs)} >{shlex.quote(path)} 2>>{shlex.quote(log)}")
    fjob = rec.jobs["files"]
    backup = Proc(fjob.restic.binary, fjob.restic.argv + tuple(files), fjob.restic.env)
    lines.append(f"{backup.shell(subs)} >>{shlex.quote(log)} 2>&1")
    lines.append("rm -f " + " ".join(shlex.quote(f) for f in files))
    return "\n".join(lines) + "\n"


def snapshots_command(rec: Recording, subs: dict[str, str], tag: str) -> str:
    r = rec.jobs["files"].restic
    return Proc(r.binary, ("snapshots", "--json", f"--tag=run:{tag}"), r.env).shell(subs)


def _pipe_size() -> int:
    from vhbackup.proc import CHUNK
    return CHUNK


def shown(text: str, world: World) -> str:
    """A script as the report shows it: the work directory as $WORK."""
    return text.replace(world.work, "$WORK")


# --- the scenarios ----------------------------------------------------------------------


class Nightly:
    """The full nightly run of the reference layout, and the same runs without databases (no change)."""

    VH = "vhbackup backup"
    SCRIPT = "sequential script"
    PARALLEL = "hand-made parallel pipeline"
    REPLAY = "vhbackup's processes by hand"
    VH_NC = "vhbackup backup (10 services)"
    VH_NV = "vhbackup backup --no-verify (10 services)"
    BARE = "bare restic backup"

    def __init__(self, world: World, tree: datasets.Tree, pg_name: str, my_name: str):
        self.w = world
        self.tree = tree
        self.services = {s: [tree.service_path(s)] for s in tree.services}
        self.databases = {
            "pgdb": {"type": "postgresql", "host": "127.0.0.1", "port": 5432, "user": "postgres", "names": [pg_name]},
            "mydb": {"type": "mariadb", "host": "127.0.0.1", "port": 3306, "user": "root", "names": [my_name]},
        }
        self.engines = {"pgdb": "postgresql", "mydb": "mariadb"}
        self.real = {"restic": world.restic, **{t: shutil.which(t) or t for t in TOOL_ENGINE}}
        self.rec: Recording | None = None
        self.vh_policy = ""
        self.vh_state = ""
        self.concurrency = 0

    def _vh(self, policy: str, *args: str) -> Sample:
        return run(self.w.vh(policy, "backup", *args), env=self.w.vh_env(), cwd=ROOT, own=True, log=self.w.log)

    def _bash(self, script: str) -> Sample:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "PG", "MYSQL"))}
        return run(["bash", "-c", script], env=env, log=self.w.log)

    def record(self) -> None:
        """vhbackup's first backup (untimed), through the shims: what its runs execute."""
        w = self.w
        repo, cache = w.new_repo("nightly-vh")
        shim_dir, log = install_shims(w, "nightly")
        recording_policy = w.write_policy("nightly-vh-recording", repo, cache, self.services, self.databases,
                                          restic_binary=os.path.join(shim_dir, "restic"),
                                          state_dir=w.path("state", "nightly-vh"))
        env = w.vh_env()
        env["PATH"] = f"{shim_dir}:{env.get('PATH', os.defpath)}"
        print("bench: recording run (vhbackup through shims, untimed)", flush=True)
        quiet(w.vh(recording_policy, "backup"), env=env, cwd=ROOT, log=w.log)
        self.rec = read_recording(log, self.engines, self.real, repo, cache)
        missing = {"files", *(f"db:{n}" for n in self.databases)} - set(self.rec.jobs)
        if missing or any(self.rec.jobs[f"db:{n}"].dump is None for n in self.databases):
            raise RuntimeError(f"the recording run lacks jobs {sorted(missing)}; see {log}")
        self.vh_policy = w.write_policy("nightly-vh", repo, cache, self.services, self.databases,
                                        state_dir=w.path("state", "nightly-vh"))
        self.vh_state = w.path("state", "nightly-vh")
        from vhbackup.policy import load_policy
        self.concurrency = load_policy(self.vh_policy).concurrency

    def file_items(self) -> list[str]:
        return [f"files:{s}" for s in self.tree.services]

    def nightly(self, results: dict[str, Scenario]) -> None:
        w, rec = self.w, self.rec
        scratch = w.path("scratch")
        os.makedirs(scratch, exist_ok=True)
        repos = {key: w.new_repo(f"nightly-{key}") for key in ("script", "parallel", "replay")}
        for _, cache in repos.values():
            os.makedirs(os.path.join(cache, "tmp"), exist_ok=True)
        every = [n for n in ("files", *sorted(n for n in rec.jobs if n != "files"))]

        def subs(key: str, tag: str) -> dict[str, str]:
            return rec.subs(*repos[key], tag)

        def script(i: int | str) -> str:
            return sequential_script(rec, subs("script", f"script-{i}"), w.log, scratch)

        def parallel(i: int | str) -> str:
            s = subs("parallel", f"parallel-{i}")
            return pool_script(rec, every, len(every), s, w.log,
                               then=[snapshots_command(rec, s, f"parallel-{i}")])

        def replay(i: int | str, order: list[str] | None = None) -> str:
            order = order or job_order(rec, self.vh_state, self.file_items(), list(self.databases))
            return pool_script(rec, order, self.concurrency, subs("replay", f"replay-{i}"), w.log)

        scen = results["nightly"] = Scenario("nightly", "Full nightly run of the reference layout")
        scen.commands = {
            self.VH: shown(" ".join(w.vh(self.vh_policy, "backup")), w),
            self.SCRIPT: shown(script("N"), w),
            self.PARALLEL: shown(parallel("N"), w),
            self.REPLAY: shown(replay("N", job_order(rec, self.vh_state, self.file_items(), list(self.databases))), w)
            + "# job order: vhbackup's (longest first by the durations in its items.json), read before each run\n",
        }
        scen.method = [
            f"One untimed recording run of `vhbackup backup` went through shims that logged each restic, "
            f"pg_dump and mariadb-dump process (argv and environment) before running the real program; "
            f"the hand-made contenders below run exactly those processes ({len(rec.jobs)} jobs: "
            f"{', '.join(sorted(rec.jobs))}), with their own repository, cache and run tag.",
            f"vhbackup ran {len(rec.others)} other restic process(es) in the recording run "
            f"({', '.join(sorted({_subcommand(list(p.argv)) for p in rec.others})) or 'none'}); "
            f"`restic version` is cached per binary (in the cache dir), and a local repository is probed and its "
            f"snapshots proven without restic, so the timed runs run none of them.",
            f"vhbackup's policy: the 10 services' paths and the two databases, `concurrency` "
            f"{self.concurrency} (the default); it verifies the run's snapshots (`backend.prove`).",
            f"Each contender has its own repository and cache, seeded by one untimed run of its own; before each "
            f"round, {w.scale.change_fraction:.0%} of the files get new content (from the seed); the databases "
            f"do not change.",
            f"**{self.SCRIPT}**: each database dumped to a file in turn, one `restic backup` of the files and the "
            f"dumps (vhbackup's argv for its files backup, plus the dump files), the dumps deleted.",
            f"**{self.PARALLEL}**: every job at once (`dump | restic backup --stdin` per database, `restic backup` "
            f"of the files), then `restic snapshots` of the run (the verification a script can do).",
            f"**{self.REPLAY}**: the same processes in vhbackup's order, {self.concurrency} at a time, and no "
            f"verification: the floor for vhbackup's own overhead.",
            f"The scripts' pipes are the shell's (64 KiB); vhbackup enlarges each of its pipes to "
            f"{_pipe_size() // 1024} KiB and relays the dump through its own buffer, which decouples dump and "
            f"restic more: on a loaded machine vhbackup can be faster than its processes by hand (a negative "
            f"overhead is that, not an error).",
        ]
        for key, make in (("script", script), ("parallel", parallel), ("replay", replay)):
            label = {"script": self.SCRIPT, "parallel": self.PARALLEL, "replay": self.REPLAY}[key]
            print(f"bench: seeding {label}", flush=True)
            once(scen, label, lambda make=make: self._bash(make("seed")))
        self._vh(self.vh_policy)  # the first run with the real restic (caches `restic version`)

        def change(i: int) -> None:
            datasets.change_files(self.tree, w.scale.change_fraction, w.seed * 1000 + i)

        print("scenario: full nightly run", flush=True)
        interleave(scen, [(self.VH, lambda i: self._vh(self.vh_policy)),
                          (self.SCRIPT, lambda i: self._bash(script(i))),
                          (self.PARALLEL, lambda i: self._bash(parallel(i))),
                          (self.REPLAY, lambda i: self._bash(replay(i)))],
                   w.scale.runs, before_round=change)

    def nochange(self, results: dict[str, Scenario]) -> None:
        w, rec = self.w, self.rec
        repo, cache = w.new_repo("nochange-vh")
        policy = w.write_policy("nochange-vh", repo, cache, self.services)
        bare_repo, bare_cache = w.new_repo("nochange-bare")
        os.makedirs(os.path.join(bare_cache, "tmp"), exist_ok=True)
        files = rec.jobs["files"].restic

        def bare(i: int | str) -> str:
            return f"{files.shell(rec.subs(bare_repo, bare_cache, f'bare-{i}'))} >>{shlex.quote(w.log)} 2>&1\n"

        scen = results["nochange"] = Scenario("nochange", "No-change backup of the 10 services")
        scen.commands = {self.VH_NC: shown(" ".join(w.vh(policy, "backup")), w),
                         self.VH_NV: shown(" ".join(w.vh(policy, "backup", "--no-verify")), w),
                         self.BARE: shown(bare("N"), w)}
        scen.method = [
            "The 10 services' paths only (a policy without databases); nothing changes between runs.",
            f"**{self.BARE}**: the process vhbackup runs for its files backup, as recorded (same argv and "
            f"environment), into its own repository; vhbackup's two contenders share one repository.",
            "Each repository is seeded by one untimed run (the first backup).",
        ]
        print("bench: seeding the no-change repositories", flush=True)
        self._vh(policy)
        once(scen, self.BARE, lambda: self._bash(bare("seed")))
        print("scenario: no-change backup", flush=True)
        interleave(scen, [(self.VH_NC, lambda i: self._vh(policy)),
                          (self.BARE, lambda i: self._bash(bare(i))),
                          (self.VH_NV, lambda i: self._vh(policy, "--no-verify"))], w.scale.runs)


def status(world: World, results: dict[str, Scenario], nightly: Nightly) -> None:
    """`vhbackup status` with a history of N recorded runs, and with one."""
    from vhbackup import state
    w = world
    n = w.scale.status_history
    scen = results["status"] = Scenario("status", f"`vhbackup status` with {n:,} recorded runs")
    policies = {}
    for label, history in ((f"vhbackup status ({n:,} runs)", n), ("vhbackup status (1 run)", 1)):
        state_dir = w.path("state", f"status-{history}")
        shutil.rmtree(state_dir, ignore_errors=True)
        os.makedirs(state_dir, mode=0o700)
        for name in os.listdir(nightly.vh_state):
            if name.endswith(".json") and not name.startswith("running-"):
                shutil.copy2(os.path.join(nightly.vh_state, name), state_dir)
        sizes = state.run_sizes(state_dir)
        real = sorted(sizes.items())[-1:] if history == 1 else sorted(sizes.items())
        start = datetime(2000, 1, 1, 2, tzinfo=timezone.utc)
        synthetic = {(start + timedelta(days=d)).strftime("%Y%m%d-%H%M%S-0000"): 10**9 + d
                     for d in range(max(0, history - len(real)))}
        state.write_json_atomic(os.path.join(state_dir, "run-sizes.json"), {**synthetic, **dict(real)})
        repo, cache = nightly.rec.repo, nightly.rec.cache
        policies[label] = w.write_policy(f"status-{history}", repo, cache, nightly.services, nightly.databases,
                                         state_dir=state_dir)
    floor = "python3 -m vhbackup --version"
    scen.commands = {label: shown(" ".join(w.vh(p, "status")), w) for label, p in policies.items()}
    scen.commands[floor] = f"{PYTHON} -m vhbackup --version"
    scen.method = [
        "Each state_dir holds the records of the nightly scenario's vhbackup runs (last run, last success, "
        "items, metrics); the history a run leaves that grows with the number of runs is `run-sizes.json` "
        f"(vhbackup keeps at most 10,000 entries): filled to {n:,} runs with `vhbackup.state.write_json_atomic`, "
        "or cut to one.",
        f"`{floor}` is Python's start-up plus vhbackup's command-line module: the floor of any command.",
    ]
    print("scenario: status", flush=True)
    contenders = [(label, lambda i, p=p: run(w.vh(p, "status"), env=w.vh_env(), cwd=ROOT, own=True, log=w.log))
                  for label, p in policies.items()]
    contenders.append((floor, lambda i: run([PYTHON, "-m", "vhbackup", "--version"], env=w.vh_env(), cwd=ROOT,
                                            log=w.log)))
    interleave(scen, contenders, w.scale.status_runs)


#: The policy template's retention (etc/vhbackup/policy.yml).
RETENTION = {"last": 7, "daily": 30, "weekly": 52, "monthly": 36, "yearly": 5}


def synthetic_snapshots(runs: int, groups: int, now: datetime, seed: int) -> list[dict]:
    """What `restic snapshots --json` prints for ``runs`` daily vhbackup runs of ``groups`` snapshots each."""
    import random
    rng = random.Random(seed)
    out = []
    for day in range(runs):
        at = (now - timedelta(days=runs - day)).replace(hour=2, minute=0, second=0, microsecond=0)
        run_id = at.strftime("%Y%m%d-%H%M%S-") + f"{rng.getrandbits(16):04x}"
        for g in range(groups):
            t = at + timedelta(seconds=rng.randint(0, 900), microseconds=rng.randint(0, 999999))
            tags = ["vhbackup", f"run:{run_id}"]
            if g == 0:
                tags += [f"service:svc{s:02d}" for s in range(10)]
                paths = [f"/srv/svc{s:02d}" for s in range(10)]
            else:
                tags += [f"db:db{g:02d}", f"service:svc{g % 10:02d}"]
                paths = [f"/postgresql-db{g:02d}.dump"]
            snap_id = f"{rng.getrandbits(256):064x}"
            out.append({"time": t.isoformat(timespec="microseconds"), "tree": f"{rng.getrandbits(256):064x}",
                        "paths": paths, "hostname": HOST, "username": "root", "uid": 0, "gid": 0,
                        "tags": tags, "program_version": "restic 0.18.0", "id": snap_id, "short_id": snap_id[:8],
                        "summary": {"files_new": 0, "files_changed": 1, "files_unmodified": 2000,
                                    "data_added": rng.randint(0, 10**7), "total_bytes_processed": 10**9}})
    return out


def retention(world: World, results: dict[str, Scenario]) -> None:
    """vhbackup.retention.plan on a synthetic snapshot list, in a subprocess of its own (time and peak RSS)."""
    w, sc = world, world.scale
    now = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
    snaps = synthetic_snapshots(sc.retention_runs, sc.retention_groups, now, w.seed)
    listing = w.path("retention-snapshots.json")
    with open(listing, "w") as fh:
        json.dump(snaps, fh)
    label = f"retention plan ({sc.retention_runs:,} runs × {sc.retention_groups} groups)"
    scen = results["retention"] = Scenario("retention", f"Retention planning: {label}")
    probe = os.path.join(ROOT, "bench", "retention_probe.py")
    argv = [PYTHON, probe, listing, json.dumps(RETENTION), now.isoformat()]
    scen.commands = {label: shown(" ".join(shlex.quote(a) for a in argv), w)}
    scen.method = [
        f"A `restic snapshots --json` listing of {len(snaps):,} snapshots ({sc.retention_runs:,} daily runs × "
        f"{sc.retention_groups} groups: one files snapshot of 10 services and {sc.retention_groups - 1} databases; "
        f"{os.path.getsize(listing) / 2**20:.1f} MiB of JSON) is written beforehand.",
        "`bench/retention_probe.py` (a process of its own) reads it, turns it into snapshots with "
        "`vhbackup.restic.parse_snapshots` (what `prune` does with restic's output) and runs "
        f"`vhbackup.retention.plan` with the policy template's retention ({RETENTION}).",
        "**plan time**: `time.perf_counter()` around parsing and planning; **peak RSS**: the process's `VmHWM` "
        "(`/proc/self/status`) at the end, interpreter and imports included.",
    ]
    print("scenario: retention planning", flush=True)

    def one(i: int) -> Sample:
        import subprocess
        import time
        start = time.monotonic()
        out = subprocess.run(argv, env=w.vh_env(), cwd=ROOT, capture_output=True, text=True)
        wall = time.monotonic() - start
        if out.returncode != 0:
            from bench.measure import CommandFailed
            raise CommandFailed(f"{probe} exited {out.returncode}: {out.stderr.strip()[-500:]}")
        facts = json.loads(out.stdout)
        return Sample(wall=wall, cpu=facts["cpu"], own_rss=facts["vmhwm"], extra=facts)

    interleave(scen, [(label, one)], sc.retention_samples)
    if scen.samples.get(label):
        facts = scen.samples[label][0].extra
        scen.notes.append(f"{facts['groups']} groups; kept {facts['kept']:,} snapshots, removed "
                          f"{facts['removed']:,}")


def dump_sizes(nightly: Nightly) -> dict[str, int]:
    """Bytes each recorded dump writes (untimed; for the report's data section)."""
    import subprocess
    out = {}
    for name, job in sorted(nightly.rec.jobs.items()):
        if job.dump is None:
            continue
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "PG", "MYSQL"))}
        env.update(dict(job.dump.env))
        proc = subprocess.Popen([job.dump.binary, *job.dump.argv], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=env)
        total = 0
        while chunk := proc.stdout.read(1 << 20):
            total += len(chunk)
        proc.wait()
        out[name] = total
    return out


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run bench/run.py")
