"""What a command is about: which file sets, databases and units, from the policy and the command line.

Built once per command and used by backup, restore and drill alike, so
that "``--service hub``" means the same thing everywhere. A file set is a
``Service`` (the top-level paths are the service ``system``); its paths are
literal file names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from vhbackup.browse import below
from vhbackup.containers import Ref
from vhbackup.errors import UsageError
from vhbackup.policy import DB_NAME, IDENTIFIER, SYSTEM_DATABASES, SYSTEM_SERVICE, Database, Policy, Service


@dataclass(frozen=True)
class Selection:
    file_sets: tuple[Service, ...] = ()
    databases: tuple[Database, ...] = ()
    #: systemd units to stop around the work (services with ``stop: true``), in policy order.
    units: tuple[str, ...] = ()
    #: containers to stop after the units (services with ``stop: true``), in policy order.
    containers: tuple[Ref, ...] = ()

    @property
    def services(self) -> tuple[str, ...]:
        """The names of the selected file sets (``system`` for the top-level paths)."""
        return tuple(fs.name for fs in self.file_sets)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for fs in self.file_sets for p in fs.paths))

    @property
    def optional_paths(self) -> frozenset[str]:
        return frozenset(p for fs in self.file_sets for p in fs.optional_paths)

    @property
    def items(self) -> tuple[str, ...]:
        return tuple(fs.item for fs in self.file_sets) + tuple(db.item for db in self.databases)

    def __bool__(self) -> bool:
        return bool(self.file_sets or self.databases)

    def describe(self) -> list[str]:
        lines = []
        if self.file_sets:
            lines.append(f"files of {', '.join(self.services)}: {' '.join(self.paths)}")
        for db in self.databases:
            names = "all databases" if db.names is None else ", ".join(db.names)
            lines.append(f"database {db.name} ({db.type}: {names}) of service {db.service}")
        if self.units:
            lines.append(f"stopping and restarting: {', '.join(self.units)}")
        return lines

    @property
    def database_containers(self) -> tuple[Ref, ...]:
        """The containers the selected databases run in (they must keep running)."""
        refs = []
        for db in self.databases:
            if db.container:
                refs.append(Ref(name=db.container))
            elif db.compose:
                refs.append(Ref(project=db.compose[0], service=db.compose[1]))
        return tuple(dict.fromkeys(refs))


def service_names(policy: Policy, names: Sequence[str]) -> list[str]:
    """Validate ``--service`` arguments against the policy (exit 2 on a bad one)."""
    known = [s.name for s in policy.services]
    for name in names:
        if not IDENTIFIER.match(name):
            raise UsageError(f"not a service name: {name!r}")
        if name not in known:
            raise UsageError(f"unknown service {name!r}; the policy defines: {', '.join(known) or 'none'}")
    return list(dict.fromkeys(names))


def database_names(policy: Policy, names: Sequence[str]) -> list[str]:
    """Validate ``--database`` arguments against the policy (exit 2 on a bad one)."""
    known = [db.name for db in policy.databases]
    for name in names:
        if not IDENTIFIER.match(name):
            raise UsageError(f"not a database name: {name!r}")
        if name not in known:
            raise UsageError(f"unknown database {name!r}; the policy defines: {', '.join(known) or 'none'}")
    return list(dict.fromkeys(names))


def _containers(policy: Policy, names: Sequence[str]) -> tuple[Ref, ...]:
    refs: list[Ref] = []
    for name in names:
        if name == SYSTEM_SERVICE:
            continue
        svc = policy.service(name)
        if svc.stop:
            refs += [Ref(name=c) for c in svc.containers] + [Ref(project=p, service=s) for p, s in svc.compose]
    return tuple(dict.fromkeys(refs))


def _units(policy: Policy, names: Sequence[str]) -> tuple[str, ...]:
    units: list[str] = []
    for name in names:
        if name == SYSTEM_SERVICE:
            continue
        svc = policy.service(name)
        if svc.stop:
            units.extend(u for u in svc.units if u not in units)
    return tuple(units)


def for_backup(policy: Policy, services: Sequence[str] = (), files: bool = True, dbs: bool = True) -> Selection:
    """Everything, or only the named services (their paths and databases; top-level paths left out)."""
    names = service_names(policy, services)
    if names:
        chosen = [policy.service(n) for n in names]
        file_sets = tuple(s for s in chosen if s.paths)
        wanted = {db for s in chosen for db in s.databases}
        databases = tuple(db for db in policy.databases if db.name in wanted)
    else:
        chosen = list(policy.services)
        file_sets = tuple(policy.file_sets())
        databases = policy.databases
    return Selection(file_sets=file_sets if files else (), databases=databases if dbs else (),
                     units=_units(policy, [s.name for s in chosen]),
                     containers=_containers(policy, [s.name for s in chosen]))


def _check_into(policy: Policy, db: Database, into: str, same_server: bool) -> None:
    """``--into-database`` is a new or scratch database beside the original: never a server's own database,
    and (on the same server) never one the policy backs up, whose service's units would keep running while
    it is replaced."""
    if into.lower() in SYSTEM_DATABASES.get(db.type, ()):
        raise UsageError(f"--into-database {into}: that is the {db.type} server's own database; choose a new name")
    if not same_server:
        return
    for other in policy.databases:
        if other.type == db.type and other.names and into in other.names:
            how = (f"restore it in place with --database {other.name} --yes, which stops its service's units"
                   if other.name == db.name else f"it belongs to service {other.service}")
            raise UsageError(f"--into-database {into}: that is database {other.name} of the policy, not a new one; "
                             f"{how}; or choose a new name")


def for_restore(policy: Policy, services: Sequence[str] = (), databases: Sequence[str] = (),
                files_only: bool = False, databases_only: bool = False, into_database: str | None = None,
                files_in_place: bool = True, databases_in_place: bool = True) -> Selection:
    """The file sets and databases a restore (or drill) is about.

    No ``--service``: every file set and database. ``--database`` alone:
    only those databases. Units are stopped for an in-place restore: those
    of the services whose files are restored, and those of the services
    owning the databases restored over the original (not ``--into-database``).
    """
    names = service_names(policy, services)
    db_names = database_names(policy, databases)
    if into_database is not None and not DB_NAME.match(into_database):
        raise UsageError(f"not a database name: {into_database!r}")
    if names:
        file_sets = tuple(policy.service(n) for n in names if policy.service(n).paths)
        dbs = [db for n in names for db in policy.service(n).databases]
    else:
        file_sets = tuple(policy.file_sets())
        dbs = [db.name for db in policy.databases]
    if db_names:
        dbs = db_names
        file_sets = file_sets if names else ()
    if databases_only:
        file_sets = ()
    if files_only:
        dbs = []
    chosen_dbs = tuple(policy.database(d) for d in dict.fromkeys(dbs))
    if into_database and len(chosen_dbs) != 1:
        raise UsageError("--into-database needs exactly one database; choose it with --database NAME")
    if into_database:
        _check_into(policy, chosen_dbs[0], into_database, databases_in_place)
    if not file_sets and not chosen_dbs:
        raise UsageError("nothing to restore: the selection holds no files and no databases")
    owners = [fs.name for fs in file_sets] if files_in_place else []
    if databases_in_place and not into_database:
        owners += [db.service for db in chosen_dbs]
    owners = list(dict.fromkeys(owners))
    return Selection(file_sets=file_sets, databases=chosen_dbs, units=_units(policy, owners),
                     containers=_containers(policy, owners))


def for_paths(policy: Policy, paths: Sequence[str], services: Sequence[str] = (),
              in_place: bool = True) -> Selection:
    """The file sets that hold (or lie below) the literal ``paths`` of ``restore --path``.

    Each path must lie within a file set of the policy (of ``services`` when
    given), or contain some; the units stopped for an in-place restore are
    those of the file sets it touches.
    """
    service_names(policy, [s for s in services if s != SYSTEM_SERVICE])
    sets = [fs for fs in policy.file_sets() if not services or fs.name in services]
    owners: list[Service] = []
    for path in paths:
        mine = [fs for fs in sets if any(below(path, p) or below(p, path) for p in fs.paths)]
        if not mine:
            where = f"service {', '.join(services)}" if services else "any file set of the policy"
            raise UsageError(f"--path {path} is not within the paths of {where}")
        owners += [fs for fs in mine if fs not in owners]
    touched = [fs.name for fs in owners] if in_place else []
    return Selection(file_sets=tuple(owners), units=_units(policy, touched), containers=_containers(policy, touched))
