"""Each release's lintian on the package that `make deb` built here (Debian 12): nothing to report.

Debian 12's lintian is the host's own; Debian 13's runs in the trixie dev root (tools/system-rootfs.sh
trixie dev, started read-only with systemd-nspawn, not booted). Both check the binary and the source
package with --pedantic and no overrides. (Info-level tags are not asked for: Debian 13's lintian notes
that Standards-Version 4.6.2 is out of date, and 4.6.2 is the newest that Debian 12's lintian knows; a
newer one is a warning there. See docs/packaging.md.)
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.system.conftest import rootfs_of

ROOT = Path(__file__).resolve().parents[2]


def host_codename() -> str:
    return re.search(r"^VERSION_CODENAME=(\S+)", Path("/etc/os-release").read_text(), re.M).group(1)


def test_lintian_of_the_release_reports_nothing(release, package_dir, deb):
    [dsc] = package_dir.glob("vhbackup_*.dsc")
    args = ["lintian", "--pedantic", "--fail-on", "error,warning,pedantic", "--tag-display-limit", "0"]
    if release == host_codename():
        argv = [*args, str(deb), str(dsc)]
    else:
        root = rootfs_of(release, "dev")
        argv = [str(ROOT / "tools/in-cgroup.sh"), f"lintian-{release}", "systemd-nspawn", "-q", "-D", str(root),
                "--read-only", "--register=no", "--keep-unit", f"--bind-ro={package_dir}:/mnt",
                *args, f"/mnt/{deb.name}", f"/mnt/{dsc.name}"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    tags = [line for line in result.stdout.splitlines() if re.match(r"^[A-Z]: ", line)]
    assert result.returncode == 0 and tags == [], result.stdout + result.stderr
    assert "aliased-location" not in result.stdout
