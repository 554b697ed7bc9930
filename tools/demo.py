#!/usr/bin/python3
"""make demo: back up a small sample tree to a local repository and restore it.

Everything lives under demo/ in the source tree: the policy, a generated
password file (mode 600), the repository, the sample data and the restore.
"""

import os
import secrets
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from vhbackup import treediff  # noqa: E402

DEMO = os.path.join(ROOT, "demo")
DATA = os.path.join(DEMO, "data")


def vhbackup(*args: str) -> None:
    argv = ["/usr/bin/python3", "-m", "vhbackup", "-c", os.path.join(DEMO, "policy.yml"), *args]
    print(f"\n$ vhbackup {' '.join(args)}", flush=True)
    subprocess.run(argv, cwd=ROOT, check=True)


def make_sample() -> None:
    shutil.rmtree(DEMO, ignore_errors=True)
    for sub in ("etc/app", "srv/web/html", "srv/web/uploads/empty", "srv/api/data"):
        os.makedirs(os.path.join(DATA, sub))
    with open(os.path.join(DATA, "etc/app/app.conf"), "w") as fh:
        fh.write("listen = 8080\nworkers = 4\n")
    with open(os.path.join(DATA, "srv/web/html/index.html"), "w") as fh:
        fh.write("<h1>It works</h1>\n")
    with open(os.path.join(DATA, "srv/web/html/a file with spaces.txt"), "w") as fh:
        fh.write("spaces\n")
    with open(os.path.join(DATA, "srv/api/data/état-ünïcode.json"), "w") as fh:
        fh.write('{"ok": true}\n')
    with open(os.path.join(DATA, "srv/api/data/blob.bin"), "wb") as fh:
        fh.write(secrets.token_bytes(2 * 1024 * 1024))
    os.symlink("index.html", os.path.join(DATA, "srv/web/html/home.html"))
    os.chmod(os.path.join(DATA, "etc/app/app.conf"), 0o640)
    password = os.path.join(DEMO, "restic-password")
    fd = os.open(password, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (secrets.token_urlsafe(33) + "\n").encode())
    os.close(fd)
    with open(os.path.join(DEMO, "policy.yml"), "w") as fh:
        fh.write(f"""# Demo policy written by `make demo`; see etc/vhbackup/policy.yml for every key.
repository:
  url: {DEMO}/repo
  password_file: {password}
  cache_dir: {DEMO}/cache
state_dir: {DEMO}/state
paths:
  - {DATA}/etc/app
exclude:
  - "*.tmp"
services:
  web:
    paths: [{DATA}/srv/web]
  api:
    paths: [{DATA}/srv/api]
""")


def main() -> int:
    make_sample()
    vhbackup("config", "check")
    vhbackup("init")
    vhbackup("backup")
    vhbackup("restore", "--list")
    vhbackup("restore", "--latest", "--target", os.path.join(DEMO, "restore"))
    restored = os.path.join(DEMO, "restore") + DATA
    problems = treediff.differences(treediff.describe(DATA), treediff.describe(restored))
    if problems:
        print("\ndemo FAILED: the restore differs from the original:", *problems[:20], sep="\n  ")
        return 1
    print(f"\ndemo OK: {restored} matches {DATA} exactly (content, modes, mtimes, symlinks, empty dirs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
