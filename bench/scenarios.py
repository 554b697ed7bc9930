"""The scenarios of issue 6, each filling one or more ``Scenario`` objects."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess

from bench import datasets
from bench.measure import Sample, quiet, run
from bench.results import Scenario, alternate, once
from bench.setup import HOST, PYTHON, ROOT, World, borgmatic_env, write_borgmatic_config

try:
    from vhbackup.databases.mariadb import DUMP_ARGS as MY_DUMP_ARGS
except ImportError:
    MY_DUMP_ARGS = ("--single-transaction", "--routines", "--events", "--triggers", "--hex-blob",
                    "--skip-dump-date")
try:
    from vhbackup.databases.postgresql import DUMP_FORMAT_ARGS as PG_FORMAT
except ImportError:
    PG_FORMAT = ("-Fc", "-Z0")


def repo_bytes(path: str) -> int:
    total = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def stream_bytes(argv: list[str]) -> int:
    """Bytes a dump command writes to stdout (untimed; for the report's sizes)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    total = 0
    while chunk := proc.stdout.read(1 << 20):
        total += len(chunk)
    proc.wait()
    return total


def backup_args(run_tag: str, services: list[str]) -> list[str]:
    """The flags vhbackup gives restic backup, so that bare restic gets the same ones."""
    args = ["backup", "--json", "--host", HOST, "--tag", "vhbackup", "--tag", f"run:{run_tag}"]
    for svc in services:
        args += ["--tag", f"service:{svc}"]
    return args


class Files:
    """Scenarios 1, 2, 5 (files) and 7: the tree over 10 services."""

    def __init__(self, world: World, tree: datasets.Tree, borgmatic: str | None):
        self.w = world
        self.tree = tree
        self.borgmatic = borgmatic
        self.paths = [tree.service_path(s) for s in tree.services]
        self.services = {s: [tree.service_path(s)] for s in tree.services}
        self.state: dict[str, tuple] = {}

    def _replace(self, label: str, value: tuple) -> None:
        old = self.state.get(label)
        if old:
            shutil.rmtree(old[0], ignore_errors=True)
        self.state[label] = value

    # --- the contenders --------------------------------------------------------

    def vh_backup(self, *extra: str) -> Sample:
        _, _, policy = self.state["vhbackup"]
        return run(self.w.vh(policy, "backup", *extra), env=self.w.vh_env(), cwd=ROOT, own=True,
                   scratch=True, log=self.w.log)

    def bare_backup(self, i: int) -> Sample:
        repo, cache = self.state["restic"]
        argv = [self.w.restic, *backup_args(f"bare-{i}", list(self.tree.services)), "--", *self.paths]
        return run(argv, env=self.w.restic_env(repo, cache), scratch=True, log=self.w.log)

    def borg_backup(self) -> Sample:
        _, config, env = self.state["borgmatic"]
        return run([self.borgmatic, "-c", config, "create"], env=env, own=True, scratch=True, log=self.w.log)

    def first_vh(self, i: int) -> Sample:
        repo, cache = self.w.new_repo(f"files-vh-{i}")
        policy = self.w.write_policy(f"files-vh-{i}", repo, cache, self.services)
        self._replace("vhbackup", (repo, cache, policy))
        return self.vh_backup()

    def first_bare(self, i: int) -> Sample:
        self._replace("restic", self.w.new_repo(f"files-restic-{i}"))
        return self.bare_backup(i)

    def first_borg(self, i: int) -> Sample:
        name = f"files-borg-{i}"
        repo = self.w.path("repos", name)
        config = write_borgmatic_config(self.w, name, repo, self.paths)
        env = borgmatic_env(self.w, self.w.path("borg", name, "home"))
        self._replace("borgmatic", (repo, config, env))
        quiet([self.borgmatic, "-c", config, "repo-create", "--encryption", "repokey"], env=env, log=self.w.log)
        return self.borg_backup()

    # --- the scenarios ---------------------------------------------------------

    def run_all(self, results: dict[str, Scenario]) -> None:
        w, n = self.w, self.w.scale.runs
        borg = [("borgmatic + borg", self.first_borg)] if self.borgmatic else []
        first = results["first"] = Scenario(
            "first", "1. First backup of the tree (10 services)",
            "A fresh repository and an empty cache for every run.")
        print("scenario 1: first backup", flush=True)
        alternate(first, [("vhbackup backup", self.first_vh), ("bare restic backup", self.first_bare), *borg], n)

        nochange = results["nochange"] = Scenario(
            "nochange", "2a. Second backup, nothing changed",
            "Into the repository of the last first-backup run; every run finds the tree unchanged.")
        print("scenario 2a: no-change backup", flush=True)
        contenders = [("vhbackup backup", lambda i: self.vh_backup()),
                      ("bare restic backup", self.bare_backup),
                      ("vhbackup backup --no-verify", lambda i: self.vh_backup("--no-verify"))]
        if self.borgmatic and "borgmatic + borg" not in first.errors:
            contenders.append(("borgmatic + borg", lambda i: self.borg_backup()))
        alternate(nochange, contenders, n)

        changed = results["changed"] = Scenario(
            "changed", "2b. Second backup, 1% of the files changed",
            "Before each round, 1% of the files (chosen from the seed) get new content of the same size; "
            "every contender then backs up the same change into its own repository.")
        print("scenario 2b: 1% changed", flush=True)

        def change(i: int) -> None:
            datasets.change_files(self.tree, 0.01, w.seed * 1000 + i)

        contenders = [("vhbackup backup", lambda i: self.vh_backup()), ("bare restic backup", self.bare_backup)]
        if self.borgmatic and "borgmatic + borg" not in first.errors:
            contenders.append(("borgmatic + borg", lambda i: self.borg_backup()))
        alternate(changed, contenders, n, before_round=change)

        self.restore(results)

    def restore(self, results: dict[str, Scenario]) -> None:
        w, n = self.w, self.w.scale.runs
        scen = results["restore_files"] = Scenario(
            "restore_files", "5a. Restore the latest run's files to a new directory",
            "vhbackup and bare restic restore the same snapshot of the same repository; the target is "
            "removed (untimed) before each run.")
        print("scenario 5a: restore files", flush=True)
        repo, cache, policy = self.state["vhbackup"]
        target = w.path("restore-target")

        def fresh() -> str:
            shutil.rmtree(target, ignore_errors=True)
            return target

        def vh(i: int) -> Sample:
            return run(w.vh(policy, "restore", "--latest", "--files-only", "--target", fresh()),
                       env=w.vh_env(), cwd=ROOT, own=True, log=w.log)

        def bare(i: int) -> Sample:
            return run([w.restic, "restore", "latest", "--host", HOST, "--target", fresh()],
                       env=w.restic_env(repo, cache), log=w.log)

        contenders = [("vhbackup restore", vh), ("bare restic restore", bare)]
        if self.borgmatic and "borgmatic" in self.state:
            _, config, env = self.state["borgmatic"]

            def borg(i: int) -> Sample:
                os.makedirs(fresh())
                return run([self.borgmatic, "-c", config, "extract", "--archive", "latest",
                            "--destination", target], env=env, own=True, log=w.log)
            contenders.append(("borgmatic extract", borg))
        alternate(scen, contenders, n)
        shutil.rmtree(target, ignore_errors=True)

    def latency(self, results: dict[str, Scenario]) -> None:
        w = self.w
        scen = results["latency"] = Scenario(
            "latency", "6. Start-up latency",
            "`vhbackup status` reads the state files of the file scenarios' policy (no restic call); "
            "`--help` builds the whole argument parser. Python start-up included; no hook on PYTHONPATH.")
        print("scenario 6: latency", flush=True)
        policy = self.state["vhbackup"][2]
        env = w.vh_env()
        contenders = [
            ("vhbackup status", lambda i: run(w.vh(policy, "status"), env=env, cwd=ROOT, log=w.log,
                                                         ok=(0, 1, 2, 3))),
            ("vhbackup --help", lambda i: run([PYTHON, "-m", "vhbackup", "--help"], env=env, cwd=ROOT)),
            ("restic version", lambda i: run([w.restic, "version"])),
            ("python3 -c pass", lambda i: run([PYTHON, "-c", "pass"])),
        ]
        alternate(scen, contenders, w.scale.latency_runs)

    def fixed_costs(self, results: dict[str, Scenario]) -> None:
        """The calls a vhbackup run makes besides `restic backup`, timed alone, to explain its overhead."""
        w = self.w
        scen = results["fixed"] = Scenario(
            "fixed", "Per-run fixed costs (for explaining ratios)",
            "Each of the calls a vhbackup backup run makes besides `restic backup`, timed alone on the "
            "no-change repository.")
        print("fixed costs", flush=True)
        repo, cache, policy = self.state["vhbackup"]
        env = w.restic_env(repo, cache)
        contenders = [
            ("restic version", lambda i: run([w.restic, "version"])),
            ("restic cat config (pre-check)", lambda i: run([w.restic, "cat", "config"], env=env, log=w.log)),
            ("restic snapshots --tag run:ID (verification)",
             lambda i: run([w.restic, "snapshots", "--json", "--tag", "run:none"], env=env, log=w.log)),
            ("python3 -m vhbackup --version (start-up and imports)",
             lambda i: run([PYTHON, "-m", "vhbackup", "--version"], env=w.vh_env(), cwd=ROOT)),
        ]
        alternate(scen, contenders, w.scale.runs)


BASELINE_RESTORE = {"postgresql": "bare restic dump | pg_restore", "mariadb": "bare restic dump | mariadb"}


class Databases:
    """Scenarios 3, 4 and 5b (and the borgmatic database backup of 7)."""

    def __init__(self, world: World, pg_name: str, my_name: str, borgmatic: str | None):
        self.w = world
        self.pg_name = pg_name
        self.my_name = my_name
        self.borgmatic = borgmatic

    def pg_dump_argv(self, name: str, fmt: tuple[str, ...] = PG_FORMAT) -> list[str]:
        return ["pg_dump", *datasets.PG, *fmt, name]

    def my_dump_argv(self, name: str) -> list[str]:
        """vhbackup's own mariadb-dump argv for one database (no --databases: loadable under another name)."""
        return ["mariadb-dump", *datasets.MY, "--default-character-set=utf8mb4", *MY_DUMP_ARGS, name]

    def db_policy(self, label: str, repo: str, cache: str, kind: str, name: str) -> str:
        if kind == "postgresql":
            spec = {"type": "postgresql", "host": "127.0.0.1", "port": 5432, "user": "postgres", "names": [name]}
        else:
            spec = {"type": "mariadb", "host": "127.0.0.1", "port": 3306, "user": "root", "names": [name]}
        return self.w.write_policy(label, repo, cache, databases={"pgdb" if kind == "postgresql" else "mydb": spec})

    def backup(self, results: dict[str, Scenario], kind: str) -> None:
        """Scenario 3 for one engine: vhbackup streamed vs dump-to-file script vs the floors."""
        w, n = self.w, self.w.scale.runs
        pg = kind == "postgresql"
        name = self.pg_name if pg else self.my_name
        dump = self.pg_dump_argv(name) if pg else self.my_dump_argv(name)
        key = "db_pg" if pg else "db_my"
        size = stream_bytes(dump)
        scen = results[key] = Scenario(
            key, f"3{'a' if pg else 'b'}. Database backup: {'PostgreSQL (pgbench)' if pg else 'MariaDB'}",
            f"Dump: `{' '.join(shlex.quote(a) for a in dump[:1] + dump[len(datasets.PG) + 1:])}`, "
            f"{size / 2**20:.1f} MiB. Each contender has its own repository, which already holds one "
            f"earlier (untimed) backup of the unchanged database: the nightly steady state.")
        scen.notes.append(f"dump size: {size} bytes")
        print(f"scenario 3: {kind} backup ({size / 2**20:.1f} MiB dump)", flush=True)
        scratch_dir = w.path("scratch")
        os.makedirs(scratch_dir, exist_ok=True)
        dump_file = os.path.join(scratch_dir, f"{name}.dump")
        repos = {label: w.new_repo(f"{key}-{label}") for label in ("vh", "script", "pipe", "file")}
        policy = self.db_policy(f"{key}-vh", *repos["vh"], kind, name)
        tags = backup_args(f"script", [])
        q = shlex.quote
        dump_sh = " ".join(q(a) for a in dump)
        restic = q(w.restic)
        script = (f"set -e; {dump_sh} > {q(dump_file)}; "
                  f"{restic} {' '.join(tags)} {q(dump_file)} > /dev/null; rm -f {q(dump_file)}")
        stdin_name = f"{'postgresql' if pg else 'mariadb'}/{name}.{'dump' if pg else 'sql'}"
        pipe = (f"set -eo pipefail; {dump_sh} | {restic} {' '.join(tags)} --stdin --stdin-filename "
                f"{q(stdin_name)} > /dev/null")
        fixed_file = os.path.join(scratch_dir, f"{name}.finished")

        contenders = {
            "vhbackup backup --databases-only": lambda i: run(
                w.vh(policy, "backup", "--databases-only"), env=w.vh_env(), cwd=ROOT, own=True, scratch=True,
                log=w.log),
            "script: dump > file && restic backup file && rm": lambda i: run(
                ["bash", "-c", script], env=w.restic_env(*repos["script"]), scratch=True, log=w.log,
                watch_path=dump_file),
            "bare pipe: dump | restic backup --stdin": lambda i: run(
                ["bash", "-c", pipe], env=w.restic_env(*repos["pipe"]), scratch=True, log=w.log),
            "floor: dump > /dev/null": lambda i: run(
                ["bash", "-c", f"{dump_sh} > /dev/null"], scratch=True, log=w.log),
            "floor: restic backup of the finished dump": lambda i: run(
                [w.restic, *tags, "--force", fixed_file], env=w.restic_env(*repos["file"]), scratch=True,
                log=w.log),
        }
        if pg and self.borgmatic:
            contenders["borgmatic create (postgresql_databases)"] = self.borgmatic_db()
        quiet(["bash", "-c", f"{dump_sh} > {q(fixed_file)}"])
        for label, fn in contenders.items():
            if not label.startswith("floor: dump"):
                once(scen, label, lambda fn=fn: fn(-1))
        alternate(scen, list(contenders.items()), n)
        os.unlink(fixed_file)
        self.state = getattr(self, "state", {})
        self.state[key] = (repos["vh"], policy)

    def rss_flat(self, results: dict[str, Scenario], names: dict[int, str]) -> None:
        w = self.w
        scen = results["rss"] = Scenario(
            "rss", "3c. vhbackup's own peak RSS against dump size (PostgreSQL)",
            "vhbackup's own process only (its VmHWM at exit), not restic's or pg_dump's.")
        print("scenario 3c: RSS against dump size", flush=True)
        contenders = []
        for scale, name in names.items():
            size = stream_bytes(self.pg_dump_argv(name))
            repo, cache = w.new_repo(f"rss-{scale}")
            policy = self.db_policy(f"rss-{scale}", repo, cache, "postgresql", name)
            label = f"pgbench -s {scale}: {size / 2**20:.0f} MiB dump"
            contenders.append((label, lambda i, policy=policy: run(
                w.vh(policy, "backup", "--databases-only"), env=w.vh_env(), cwd=ROOT, own=True, log=w.log)))
        alternate(scen, contenders, max(2, w.scale.runs - 1))

    GROWTH_FORMATS = {"-Fc (pg_dump's default compression)": ("-Fc",), "-Fc -Z0": ("-Fc", "-Z0"),
                      "plain SQL (-Fp)": ("-Fp",)}
    GROWTH_STEPS = (("first", "first backup", None),
                    ("update", "1% of pgbench_accounts rows updated (scattered)", "update"),
                    ("append", "1% new rows appended to events", "append"))

    def growth(self, results: dict[str, Scenario], name: str) -> None:
        """Scenario 4: repository growth per dump format for two change patterns, plus dump and restore time.

        One database (pgbench + events) and one repository per format. Backups: the
        first; then after 1% of pgbench_accounts rows are updated (scattered, as
        pgbench does); then after 1% new rows are appended to events. All formats
        back up the same database state at each step.
        """
        w = self.w
        scen = results["growth"] = Scenario(
            "growth", "4. Repository growth per dump format (PostgreSQL: scattered updates, appends)",
            "Each format streams `pg_dump | restic backup --stdin` into a repository of its own. Backup 1 is "
            "the first; before backup 2, 1% of `pgbench_accounts` rows get UPDATEd (every 100th `aid`: "
            "pgbench-style scattered updates); before backup 3, 1% new rows are appended to `events` (an "
            "activity log). Growth is the repository's size on disk after a backup minus before it "
            "(restic's default compression, repository format 2). Dump time: `pg_dump FORMAT > /dev/null`; "
            "restore time: the finished dump file loaded into an empty database with the options vhbackup "
            "uses (`pg_restore --clean --if-exists --single-transaction --exit-on-error`, or `psql "
            "--single-transaction -v ON_ERROR_STOP=1` for plain SQL).")
        print("scenario 4: repository growth", flush=True)
        formats = self.GROWTH_FORMATS
        vh_fmt = next((label for label, fmt in formats.items() if fmt == PG_FORMAT), None)
        if vh_fmt:
            scen.notes.append(f"vhbackup's format: {vh_fmt}")
        rows: dict[str, dict] = {}
        repos = {}
        for label, fmt in formats.items():
            repos[label] = w.new_repo(f"growth-{len(repos)}")
            rows[label] = {"dump": stream_bytes(self.pg_dump_argv(name, fmt)), "init_size": repo_bytes(repos[label][0])}
        vh_label = "vhbackup backup --databases-only"
        repos[vh_label] = w.new_repo("growth-vh")
        rows[vh_label] = {"dump": stream_bytes(self.pg_dump_argv(name)), "init_size": repo_bytes(repos[vh_label][0])}
        policy = self.db_policy("growth-vh", *repos[vh_label], "postgresql", name)

        def backup(label: str) -> Sample:
            if label.startswith("vhbackup"):
                return run(w.vh(policy, "backup", "--databases-only"), env=w.vh_env(), cwd=ROOT, log=w.log)
            fmt = formats[label]
            pipe = (f"set -eo pipefail; {' '.join(shlex.quote(a) for a in self.pg_dump_argv(name, fmt))} | "
                    f"{shlex.quote(w.restic)} backup --json --host {HOST} --stdin --stdin-filename db > /dev/null")
            return run(["bash", "-c", pipe], env=w.restic_env(*repos[label]), log=w.log)

        for step, _, change in self.GROWTH_STEPS:
            if change == "update":
                datasets.pg_change_rows(name, 0.01, w.seed)
            elif change == "append":
                rows[vh_label]["appended"] = datasets.pg_append_events(name, 0.01)
            for label in rows:
                if label in scen.errors:
                    continue
                try:
                    sample = backup(label)
                except Exception as exc:  # noqa: BLE001 - one format failing must not stop the others
                    scen.fail(label, str(exc))
                    continue
                rows[label][f"{step}_wall"] = sample.wall
                rows[label][f"{step}_cpu"] = sample.cpu
                rows[label][f"{step}_size"] = repo_bytes(repos[label][0])
                rows[label][f"{step}_dump"] = stream_bytes(self.pg_dump_argv(name, formats.get(label, PG_FORMAT)))
        scen.notes.append(rows)  # type: ignore[arg-type]
        for label, _ in repos.items():
            shutil.rmtree(repos[label][0], ignore_errors=True)
        self.dump_restore_times(results, name)

    def dump_restore_times(self, results: dict[str, Scenario], name: str) -> None:
        """Scenario 4, second table: how long each format takes to dump and to load into an empty database."""
        w = self.w
        scen = results["formats"] = Scenario(
            "formats", "4b. Dump and restore time per format (PostgreSQL, the database of 4 after its changes)",
            "Dump: `pg_dump FORMAT DB > /dev/null`. Restore: the dump file (written untimed beforehand) loaded "
            "into an empty database created (untimed) before each run, with vhbackup's restore options.")
        print("scenario 4b: dump and restore time per format", flush=True)
        scratch = w.path("scratch")
        os.makedirs(scratch, exist_ok=True)
        target = datasets.unique_name("vhbench_fmt")
        files = {}
        contenders = []
        for label, fmt in self.GROWTH_FORMATS.items():
            dump = self.pg_dump_argv(name, fmt)
            files[label] = os.path.join(scratch, f"format-{len(files)}")
            quiet(["bash", "-c", f"{' '.join(shlex.quote(a) for a in dump)} > {shlex.quote(files[label])}"])
            contenders.append((f"dump {label}", lambda i, dump=dump: run(
                ["bash", "-c", f"{' '.join(shlex.quote(a) for a in dump)} > /dev/null"], log=w.log)))
        for label, fmt in self.GROWTH_FORMATS.items():
            if fmt == ("-Fp",):
                load = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", *datasets.PG,
                        "-d", target, "-f", files[label]]
            else:
                load = ["pg_restore", *datasets.PG, "--clean", "--if-exists", "--single-transaction",
                        "--exit-on-error", "-d", target, files[label]]

            def restore(i: int, load=load) -> Sample:
                datasets.pg_drop(target)
                quiet(["createdb", *datasets.PG, "-T", "template0", target])
                return run(load, log=w.log)
            contenders.append((f"restore {label}", restore))
        try:
            alternate(scen, contenders, w.scale.runs)
        finally:
            datasets.pg_drop(target)
            for path in files.values():
                os.unlink(path)

    def restore(self, results: dict[str, Scenario], kind: str = "postgresql") -> None:
        """Scenario 5b: one database into a new database, vhbackup vs `restic dump | pg_restore` (or `| mariadb`)."""
        w, n = self.w, self.w.scale.runs
        pg = kind == "postgresql"
        key, state_key = ("restore_db", "db_pg") if pg else ("restore_my", "db_my")
        loader = ("pg_restore " + " ".join(datasets.PG) + " --clean --if-exists --single-transaction "
                  "--exit-on-error -d NEW") if pg else ("mariadb " + " ".join(datasets.MY)
                                                       + " --default-character-set=utf8mb4 NEW")
        scen = results[key] = Scenario(
            key, f"5{'b' if pg else 'c'}. Restore the {'PostgreSQL' if pg else 'MariaDB'} database into a new database",
            "Both load the same snapshot of vhbackup's repository into an empty database created "
            f"(untimed) before each run and dropped after it. Bare: `restic dump latest FILE | {loader}`, "
            "the tool and options vhbackup uses.")
        print(f"scenario 5b: restore {kind} database", flush=True)
        vh_label = "vhbackup restore --into-database"
        bare_label = BASELINE_RESTORE[kind]
        if state_key not in getattr(self, "state", {}):
            scen.fail(vh_label, f"no {kind} backup to restore")
            return
        (repo, cache), policy = self.state[state_key]
        target = datasets.unique_name("vhbench_restore")
        listing = quiet([w.restic, "ls", "--json", "latest"], env=w.restic_env(repo, cache)).decode()
        path = next(json.loads(line)["path"] for line in listing.splitlines()
                    if line.startswith("{") and json.loads(line).get("type") == "file")
        load = loader.replace("NEW", target)

        def drop() -> None:
            if pg:
                datasets.pg_drop(target)
            else:
                datasets.my_drop(target)

        def fresh() -> None:
            drop()
            if pg:
                quiet(["createdb", *datasets.PG, "-T", "template0", target])
            else:
                datasets.my_sql(f"CREATE DATABASE `{target}` CHARACTER SET utf8mb4")

        def vh(i: int) -> Sample:
            fresh()
            return run(w.vh(policy, "restore", "--latest", "--database", "pgdb" if pg else "mydb",
                            "--into-database", target), env=w.vh_env(), cwd=ROOT, own=True, log=w.log)

        def bare(i: int) -> Sample:
            fresh()
            pipe = f"set -eo pipefail; {shlex.quote(w.restic)} dump latest {path} | {load}"
            return run(["bash", "-c", pipe], env=w.restic_env(repo, cache), log=w.log)

        try:
            alternate(scen, [(vh_label, vh), (bare_label, bare)], n)
        finally:
            drop()

    def borgmatic_db(self):
        """borgmatic streams pg_dump through a named pipe into borg; same format options as vhbackup."""
        w = self.w
        name = "db-borg"
        repo = w.path("repos", name)
        pg = [{"name": self.pg_name, "hostname": "127.0.0.1", "port": 5432, "username": "postgres",
               "format": "custom", "options": " ".join(a for a in PG_FORMAT if a != "-Fc")}]
        config = write_borgmatic_config(w, name, repo, [], postgresql=pg)
        env = borgmatic_env(w, w.path("borg", name, "home"))
        quiet([self.borgmatic, "-c", config, "repo-create", "--encryption", "repokey"], env=env, log=w.log)
        return lambda i: run([self.borgmatic, "-c", config, "create"], env=env, own=i >= 0, scratch=True,
                             log=w.log)
