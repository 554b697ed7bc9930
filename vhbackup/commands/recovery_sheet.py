"""vhbackup recovery-sheet: what a new server needs to restore from the repository, and the commands.

The sheet names the repository (URL in display form, its id), the host,
where each credential lives (paths only: no secret is read into it), the
restic versions and the exact commands that bring a new Debian server back:
install the packages, put the password file in place, fetch the policy from
the newest files snapshot with ``restic dump`` (every files snapshot holds
it), check it, restore. The commands sit between marker lines, so that
docs/disaster-recovery.md can run them as they are. Takes the repository as
the ``Restic`` it is given (``ctx.restic`` today).

With several repositories (``repositories:``) the sheet lists each one (name,
role, URL, id, append-only) and, for each copy, the same two parts reading
from that copy (``get-policy@NAME``, ``restore@NAME``: ``restore
--repository NAME``), for when the primary is lost with the server. A copy
that cannot be opened while the sheet is printed is listed without its id,
with a note (the sheet is still printed: it is needed most when something
is already wrong); the primary must open.
"""

from __future__ import annotations

import json
import os
import shlex
from datetime import datetime, timezone

from vhbackup import __version__, credentials
from vhbackup.context import Context
from vhbackup.errors import ResticError
from vhbackup.policy import Policy, Repository
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
    sheet = build(ctx.policy, ctx.restic, ctx.restic_for)
    print(json.dumps(sheet, indent=2) if args.json else render(sheet))
    return 0


def _password_source(repo: Repository) -> str:
    """The password file as the admin keeps it: under a unit, the source of systemd's credential."""
    path = repo.password_file
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


def _is_local(url: str) -> bool:
    return url.startswith("local:") or ("://" not in url and ":" not in url.split("/", 1)[0])


def _recovery_name(repo: Repository, primary: Repository) -> str:
    """The name under RECOVERY_DIR of ``repo``'s password file: ``restic-password`` for the primary's file."""
    if _password_source(repo) == _password_source(primary):
        return "restic-password"
    return f"restic-password-{repo.name}"


def _install_credentials(policy: Policy) -> list[str]:
    """Put every repository's password file (and env file) in place from RECOVERY_DIR.

    All of them, whichever repository the commands read: ``vhbackup config check`` refuses a policy that
    names a missing credential file.
    """
    q = shlex.quote
    primary = policy.primary
    out = [f"install -d -m 0700 {q(os.path.dirname(credentials.SYSTEMD_CREDENTIAL_SOURCE))}"]
    for repo in policy.repositories:
        source = f"{RECOVERY_DIR}/{_recovery_name(repo, primary)}"
        targets = [_password_source(repo)]
        if repo.name == primary.name:
            targets.insert(0, credentials.SYSTEMD_CREDENTIAL_SOURCE)
        for target in targets:
            out += [f"install -d -m 0700 {q(os.path.dirname(target))}", f"install -m 0600 {source} {q(target)}"]
        if repo.env_file:
            out += [f"install -d -m 0700 {q(os.path.dirname(repo.env_file))}",
                    f"install -m 0600 {RECOVERY_DIR}/{q(os.path.basename(repo.env_file))} {q(repo.env_file)}"]
    return out


def _commands(policy: Policy, repo: Repository, policy_path: str, filter_path: str) -> dict[str, list[str]]:
    """get-policy and restore, reading from ``repo`` (``--repository NAME`` for a copy)."""
    q = shlex.quote
    get_policy = ["apt-get update", f"apt-get install -y {' '.join(_packages(policy))}",
                  *_install_credentials(policy)]
    dump = (f"RESTIC_REPOSITORY={q(display_url(repo.url))} RESTIC_PASSWORD_FILE={q(_password_source(repo))} "
            f"restic dump --host {q(policy.host)} --tag vhbackup --path {q(filter_path)} latest {q(policy_path)} "
            f"> {q(policy_path)}.restored")
    if repo.env_file:
        dump = f"(set -a; . {q(repo.env_file)}; set +a; {dump})"
    get_policy += [f"install -d -m 0755 {q(os.path.dirname(policy_path))}", dump,
                   f"mv {q(policy_path)}.restored {q(policy_path)}"]
    config_arg = "" if policy_path == "/etc/vhbackup/policy.yml" else f" -c {q(policy_path)}"
    which = f" --repository {q(repo.name)}" if repo.is_copy else ""
    get_policy += [f"vhbackup{config_arg} config check", f"vhbackup{config_arg} restore --list{which}"]
    return {"get-policy": list(dict.fromkeys(get_policy)),
            "restore": [f"vhbackup{config_arg} restore --latest{which} --yes"]}


def build(policy: Policy, restic: Restic, restic_for=None) -> dict:
    """The sheet; ``restic_for(name)`` opens the other repositories (None: only ``restic``'s is listed)."""
    repo = policy.repository
    config = restic.config()
    password_file = _password_source(repo)
    policy_path, filter_path = _policy_filter_path(policy)
    several = restic_for is not None and len(policy.repositories) > 1
    repos = policy.repositories if several else (repo,)
    primary = policy.primary if several else repo
    creds = []
    for r in repos:
        label = "" if not several else f" ({r.name})"
        if r is primary or _password_source(r) != _password_source(primary):
            creds.append({"what": f"restic repository password{label}", "path": _password_source(r),
                          "recovery_name": _recovery_name(r, primary) if several else "restic-password"})
        if r.env_file:
            creds.append({"what": f"repository environment (backend keys){label}", "path": r.env_file,
                          "recovery_name": os.path.basename(r.env_file)})
        if url_password(r.url) is not None:
            creds.append({"what": f"password in the repository URL{label} (shown as ***)", "path": policy.source})
    creds += [{"what": f"database {db.name} password", "path": db.password_file}
              for db in policy.databases if db.password_file]
    if policy.notify.email and policy.notify.email.password_file:
        creds.append({"what": "SMTP password", "path": policy.notify.email.password_file})

    notes = []
    listed = []
    for r in repos:
        if r.name == repo.name:
            cfg = config
        else:
            try:
                cfg = restic_for(r.name).config()
            except ResticError as exc:
                cfg = {}
                notes.append(f"repository {r.name} could not be opened now ({exc}): its id is not on this sheet")
        listed.append({"name": r.name, "role": r.role, "url": display_url(r.url), "id": cfg.get("id"),
                       "format": cfg.get("version"), "append_only": r.append_only,
                       "password_file": _password_source(r), "env_file": r.env_file})
        if url_password(r.url) is not None:
            notes.append(f"the URL of repository {r.name} shows its password as ***: put it back in the dump "
                         f"command")
        if _is_local(r.url):
            notes.append(f"repository {r.name} is a local path: mount its disk at {r.url} first"
                         if several else f"the repository is a local path: mount its disk at {r.url} first")
    if any(db.type == "mongodb" for db in policy.databases):
        notes.append("install the MongoDB server and tools from MongoDB's own apt source before 'restore'")
    commands = _commands(policy, primary, policy_path, filter_path)
    if several:
        for r in policy.copies:
            for part, lines in _commands(policy, r, policy_path, filter_path).items():
                commands[f"{part}@{r.name}"] = lines
    return {
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "vhbackup": __version__,
        "host": policy.host,
        "repository": {"url": display_url(repo.url), "id": config.get("id"), "format": config.get("version"),
                       "password_file": password_file, "env_file": repo.env_file},
        "repositories": listed,
        "policy": policy_path,
        "restic": {"binary": restic.binary, "version": str(restic.version)},
        "credentials": creds,
        "notes": notes,
        "commands": commands,
    }


def _part_title(part: str) -> str:
    return part.replace("@", " from copy ") if "@" in part else part


def render(sheet: dict) -> str:
    repo = sheet["repository"]
    several = len(sheet.get("repositories", ())) > 1
    lines = [
        f"vhbackup recovery sheet for host {sheet['host']} (written {sheet['written']} by vhbackup "
        f"{sheet['vhbackup']})",
        "It holds no secret. Keep it off-site, beside a copy of each credential file named below.",
        "",
    ]
    if several:
        for r in sheet["repositories"]:
            append_only = ", append-only from the host" if r["append_only"] else ""
            lines += [f"repository {r['name']} ({r['role']}{append_only}):  {r['url']}",
                      f"  id:        {r['id'] or 'unknown (could not be opened when the sheet was printed)'}",
                      f"  format:    version {r['format']}"]
    else:
        lines += [f"repository:  {repo['url']}", f"  id:        {repo['id']}", f"  format:    version {repo['format']}"]
    lines += [
        f"host:        {sheet['host']} (restore looks for this host's snapshots)",
        f"policy:      {sheet['policy']} (in every files snapshot; the commands below fetch it)",
        f"restic:      {sheet['restic']['version']} ({sheet['restic']['binary']} on this host; any restic >= "
        f"0.14 reads the repository)",
        "credentials (not in the repository; copy each to the new server's "
        f"{RECOVERY_DIR}/ before you start):",
    ]
    for c in sheet["credentials"]:
        named = c.get("recovery_name")
        lines.append(f"  {c['what']}: {c['path']}" + (f" (as {RECOVERY_DIR}/{named})" if several and named else ""))
    lines += [f"note: {n}" for n in sheet["notes"]]
    lines += ["", f"On a new Debian server, as root, with the password file copied to {RECOVERY_DIR}/restic-password "
              f"(docs/disaster-recovery.md):", ""]
    for part, commands in sheet["commands"].items():
        if part.startswith("get-policy@"):
            name = part.partition("@")[2]
            lines += [f"If the primary repository is lost too, the same from copy {name} instead "
                      f"(restore --repository {name}):", ""]
        lines.append(BEGIN.format(part=_part_title(part)))
        lines += commands
        lines.append(END.format(part=_part_title(part)))
        if part.startswith("get-policy"):
            lines += ["", "(start the database servers and create the roles vhbackup connects as; then:)", ""]
        else:
            lines.append("")
    return "\n".join(lines).rstrip("\n")
