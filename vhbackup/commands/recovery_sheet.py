"""vhbackup recovery-sheet: what a new server needs to restore from the repository, and the commands.

The sheet names the repository (URL in display form, its id), the host,
where each credential lives (paths only: no secret is read into it), the
restic versions and the exact commands that bring a new Debian server back:
install the packages, put the password file in place, fetch the policy from
the newest files snapshot with ``restic dump`` (every files snapshot holds
it), check it, restore. The commands sit between marker lines, so that
docs/disaster-recovery.md can run them as they are. Takes the repository as
the ``Restic`` it is given (``ctx.restic`` today).
"""

from __future__ import annotations

import json
import os
import shlex
from datetime import datetime, timezone

from vhbackup import __version__, credentials
from vhbackup.context import Context
from vhbackup.policy import Policy
from vhbackup.restic import Restic
from vhbackup.urls import display_url, url_password

NAME = "recovery-sheet"
#: Where the runbook (docs/disaster-recovery.md) has the admin put the off-site files on the new server.
RECOVERY_DIR = "/root/recovery"
BEGIN = "# --- vhbackup recovery: {part} ---"
END = "# --- end of {part} ---"
PARTS = ("get-policy", "restore")


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the sheet as JSON")


def run(ctx: Context, args) -> int:
    sheet = build(ctx.policy, ctx.restic)
    print(json.dumps(sheet, indent=2) if args.json else render(sheet))
    return 0


def _password_source(policy: Policy) -> str:
    """The password file as the admin keeps it: under a unit, the source of systemd's credential."""
    path = policy.repository.password_file
    return credentials.SYSTEMD_CREDENTIAL_SOURCE if credentials.from_systemd(path) else path


def _packages(policy: Policy) -> list[str]:
    """Debian packages for the new server: vhbackup, restic, and the servers of databases on this host."""
    wanted = ["vhbackup", "restic"]
    for db in policy.databases:
        local = db.container is None and db.compose is None and db.host in (None, "localhost", "127.0.0.1", "::1")
        package = {"postgresql": "postgresql", "mariadb": "mariadb-server"}.get(db.type)
        if local and package and package not in wanted:
            wanted.append(package)
    return wanted


def _policy_filter_path(policy: Policy) -> tuple[str, str]:
    """(the policy's path in the snapshots, the snapshot path that holds it: ``restic dump --path``)."""
    path = os.path.realpath(policy.source)
    for fs in policy.file_sets():
        for saved in fs.paths:
            if path == saved or path.startswith(saved.rstrip("/") + "/"):
                return path, saved
    return path, path


def build(policy: Policy, restic: Restic) -> dict:
    repo = policy.repository
    config = restic.config()
    password_file = _password_source(policy)
    unit_file = credentials.SYSTEMD_CREDENTIAL_SOURCE
    policy_path, filter_path = _policy_filter_path(policy)
    creds = [{"what": "restic repository password", "path": password_file}]
    if repo.env_file:
        creds.append({"what": "repository environment (backend keys)", "path": repo.env_file})
    if url_password(repo.url) is not None:
        creds.append({"what": "password in the repository URL (shown as ***)", "path": policy.source})
    creds += [{"what": f"database {db.name} password", "path": db.password_file}
              for db in policy.databases if db.password_file]
    if policy.notify.email and policy.notify.email.password_file:
        creds.append({"what": "SMTP password", "path": policy.notify.email.password_file})

    q = shlex.quote
    get_policy = ["apt-get update", f"apt-get install -y {' '.join(_packages(policy))}",
                  f"install -d -m 0700 {q(os.path.dirname(unit_file))}"]
    for target in dict.fromkeys([unit_file, password_file]):
        get_policy += [f"install -d -m 0700 {q(os.path.dirname(target))}",
                       f"install -m 0600 {RECOVERY_DIR}/restic-password {q(target)}"]
    if repo.env_file:
        get_policy += [f"install -d -m 0700 {q(os.path.dirname(repo.env_file))}",
                       f"install -m 0600 {RECOVERY_DIR}/{q(os.path.basename(repo.env_file))} {q(repo.env_file)}"]
    dump = (f"RESTIC_REPOSITORY={q(display_url(repo.url))} RESTIC_PASSWORD_FILE={q(password_file)} "
            f"restic dump --host {q(policy.host)} --tag vhbackup --path {q(filter_path)} latest {q(policy_path)} "
            f"> {q(policy_path)}.restored")
    if repo.env_file:
        dump = f"(set -a; . {q(repo.env_file)}; set +a; {dump})"
    get_policy += [f"install -d -m 0755 {q(os.path.dirname(policy_path))}", dump,
                   f"mv {q(policy_path)}.restored {q(policy_path)}"]
    config_arg = "" if policy_path == "/etc/vhbackup/policy.yml" else f" -c {q(policy_path)}"
    get_policy += [f"vhbackup{config_arg} config check", f"vhbackup{config_arg} restore --list"]
    get_policy = list(dict.fromkeys(get_policy))
    restore = [f"vhbackup{config_arg} restore --latest --yes"]
    notes = []
    if url_password(repo.url) is not None:
        notes.append("the repository URL's password is shown as ***: put it back in the dump command")
    if repo.url.startswith("local:") or ("://" not in repo.url and ":" not in repo.url.split("/", 1)[0]):
        notes.append(f"the repository is a local path: mount its disk at {repo.url} first")
    if any(db.type == "mongodb" for db in policy.databases):
        notes.append("install the MongoDB server and tools from MongoDB's own apt source before 'restore'")
    return {
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "vhbackup": __version__,
        "host": policy.host,
        "repository": {"url": display_url(repo.url), "id": config.get("id"), "format": config.get("version"),
                       "password_file": password_file, "env_file": repo.env_file},
        "policy": policy_path,
        "restic": {"binary": restic.binary, "version": str(restic.version)},
        "credentials": creds,
        "notes": notes,
        "commands": {"get-policy": get_policy, "restore": restore},
    }


def render(sheet: dict) -> str:
    repo = sheet["repository"]
    lines = [
        f"vhbackup recovery sheet for host {sheet['host']} (written {sheet['written']} by vhbackup "
        f"{sheet['vhbackup']})",
        "It holds no secret. Keep it off-site, beside a copy of each credential file named below.",
        "",
        f"repository:  {repo['url']}",
        f"  id:        {repo['id']}",
        f"  format:    version {repo['format']}",
        f"host:        {sheet['host']} (restore looks for this host's snapshots)",
        f"policy:      {sheet['policy']} (in every files snapshot; the commands below fetch it)",
        f"restic:      {sheet['restic']['version']} ({sheet['restic']['binary']} on this host; any restic >= "
        f"0.14 reads the repository)",
        "credentials (not in the repository; copy each to the new server's "
        f"{RECOVERY_DIR}/ before you start):",
    ]
    lines += [f"  {c['what']}: {c['path']}" for c in sheet["credentials"]]
    lines += [f"note: {n}" for n in sheet["notes"]]
    lines += ["", f"On a new Debian server, as root, with the password file copied to {RECOVERY_DIR}/restic-password "
              f"(docs/disaster-recovery.md):", ""]
    for part in PARTS:
        lines.append(BEGIN.format(part=part))
        lines += sheet["commands"][part]
        lines.append(END.format(part=part))
        if part == "get-policy":
            lines += ["", "(start the database servers and create the roles vhbackup connects as; then:)", ""]
    return "\n".join(lines)
