"""vhbackup config check: validate the policy and credentials, print a summary."""

from __future__ import annotations

from vhbackup import container_check, files
from vhbackup.context import Context
from vhbackup.policy import is_template, not_configured_message, overlaps
from vhbackup.urls import display_url

NAME = "config"


def add_arguments(parser) -> list:
    sub = parser.add_subparsers(dest="config_command", metavar="check", required=True)
    check = sub.add_parser("check", help="validate the policy and credentials and print a short summary")
    check.add_argument("--if-configured", action="store_true",
                       help="only tell whether the policy is configured: exit 0 if it sets anything, 1 while "
                            "it is still the commented-out template (the units' ExecCondition=)")
    return [check]


def before_policy(path: str, args) -> int | None:
    """``--if-configured`` answers before (and without) loading the policy.

    The units run it as ``ExecCondition=``: exit 1 skips the run without a
    failure while the policy is still the template; a configured policy exits
    0 even when it is broken, so that the run itself fails on it, loudly.
    """
    if not args.if_configured:
        return None
    if is_template(path):
        print(not_configured_message(path))
        return 1
    return 0


def run(ctx: Context, args) -> int:
    p = ctx.policy
    print(f"policy {p.source}: valid")
    if len(p.repositories) == 1:
        print(f"  repository: {display_url(p.repository.url)} (password file {p.repository.password_file})")
    for repo in p.repositories if len(p.repositories) > 1 else ():
        extra = ", append-only from this host" if repo.append_only else ""
        print(f"  repository {repo.name} ({repo.role}{extra}): {display_url(repo.url)} "
              f"(password file {repo.password_file})")
    print(f"  host: {p.host}; state: {p.state_dir}; cache: {p.repository.cache_dir}")
    if p.paths:
        print(f"  system paths: {', '.join(p.paths)}")
    for svc in p.services:
        parts = [", ".join(svc.paths) or "no paths"]
        if svc.databases:
            parts.append("databases " + ", ".join(svc.databases))
        if svc.units:
            parts.append(("stops " if svc.stop else "units ") + ", ".join(svc.units))
        parts += container_check.describe_service(svc)
        print(f"  service {svc.name}: {'; '.join(parts)}")
    for db in p.databases:
        names = "all" if db.names is None else ", ".join(db.names)
        print(f"  database {db.name}: {db.type} {names} (service {db.service})")
    rules = p.retention.rules()
    keep = ", ".join(f"{k} {v}" for k, v in rules.items())
    if p.retention.within:
        keep = ", ".join(filter(None, [keep, f"within {p.retention.within}"]))
    print(f"  retention: {keep or 'none (prune keeps everything)'}")
    print(f"  concurrency: {p.concurrency} job(s) at once (the files backup and each database dump)")
    if p.verify.spot:
        v = p.verify
        print(f"  verify: with the spot check (tolerance files {v.spot_files_tolerance:g}%, size "
              f"{v.spot_size_tolerance:g}%, changed {v.spot_changed_tolerance:g}%; sample {v.spot_sample})")
    for ping in p.monitor.pings:
        from vhbackup.notifiers.ping import describe

        print(f"  monitor: {describe(ping)} ({', '.join(ping.actions)}; timeout {ping.timeout:g} s, "
              f"{ping.retries} retries)")
    warnings = list(p.warnings)
    for fs in p.file_sets():
        for path in fs.paths:
            problem = files.path_problem(path, p.exclude)
            if problem and path not in fs.optional_paths:
                warnings.append(f"{problem}: a backup now would be partial (mark it 'optional: true' if "
                                f"it may be absent)")
    warnings += overlaps(p)
    warnings += container_check.problems(p)
    for warning in warnings:
        print(f"  warning: {warning}")
    return 0
