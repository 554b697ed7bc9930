"""The Debian package: `make deb` builds it, lintian passes it, and it holds what an admin needs.

This runs with the release's own tools: on the Debian 12 host, and inside
Debian 13 (tools/integration-in-release.py), where `make deb` builds the
package with trixie's debhelper and lintian checks it. Installing it into a
booted Debian 12 and 13 (apt, timers, a real backup, upgrade, purge) and
trixie's lintian on the package built here are the system tests' job
(tests/system/); this checks the built artifact.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from vhbackup import __version__

ROOT = Path(__file__).resolve().parent.parent.parent
UNITS = sorted(p.name for p in (ROOT / "systemd").iterdir() if p.suffix in (".service", ".timer"))
#: The package's version: vhbackup.__version__ in Debian's spelling (PEP 440's "0.2.0.dev1" is "0.2.0~dev1").
VERSION = __version__.replace(".dev", "~dev")


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    """`make deb`'s package, copied at once (another `make deb` may replace build/deb/ meanwhile)."""
    started = time.time()
    result = subprocess.run(["make", "-s", "deb"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    path = ROOT / "build" / "deb" / f"vhbackup_{VERSION}_all.deb"
    assert result.stdout.strip().splitlines()[-1] == f"build/deb/{path.name}"
    assert path.is_file() and path.stat().st_mtime >= started - 1, "make deb did not (re)build the package"
    copy = tmp_path_factory.mktemp("deb") / path.name
    shutil.copy2(path, copy)
    for name in (f"vhbackup_{VERSION}.dsc", f"vhbackup_{VERSION}.tar.xz", "build.log"):
        shutil.copy2(path.parent / name, copy.parent / name)
    return copy


def dpkg_deb(*args: str) -> str:
    return subprocess.run(["dpkg-deb", *args], capture_output=True, text=True, check=True, timeout=60).stdout


def test_changelog_version_is_the_python_version():
    first = (ROOT / "debian" / "changelog").read_text().splitlines()[0]
    assert re.match(rf"^vhbackup \({re.escape(VERSION)}\) ", first), first


def test_build_leaves_the_checkout_clean(deb):
    assert not (ROOT / "debian" / "vhbackup").exists()
    assert not (ROOT / "debian" / "files").exists()
    assert not list(ROOT.parent.glob("vhbackup_*")), "dpkg-buildpackage wrote into the checkout's parent"


def test_lintian_reports_nothing_even_pedantic_on_binary_and_source(deb):
    """This release's lintian, no overrides: not one tag (errors, warnings, pedantic) on the .deb or the .dsc."""
    assert not list((ROOT / "debian").glob("*lintian-overrides*")) and not (ROOT / "debian/source/lintian-overrides").exists()
    dsc = deb.parent / f"vhbackup_{VERSION}.dsc"
    result = subprocess.run(["lintian", "--pedantic", "--fail-on", "error,warning,pedantic", "--tag-display-limit", "0",
                             str(deb), str(dsc)], capture_output=True, text=True, timeout=600)
    tags = [line for line in result.stdout.splitlines() if re.match(r"^[A-Z]: ", line)]
    assert result.returncode == 0 and tags == [], result.stdout + result.stderr


def test_the_build_runs_the_unit_tests_unless_nocheck(deb, tmp_path):
    """override_dh_auto_test: the unit tests ran in this build; DEB_BUILD_OPTIONS=nocheck skips them."""
    log = (deb.parent / "build.log").read_text()
    ran = re.search(r"^=+ (\d+) passed in [\d.]+s\b.*=+$", log, re.M)  # "in 82.06s (0:01:22) ==="
    assert ran and int(ran.group(1)) > 300 and "tests/unit" in log, log[-3000:]
    assert not re.search(r"^=+ .*\b(failed|error)", log, re.M)
    shutil.copytree(ROOT / "debian", tmp_path / "debian")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)

    def dh_auto_test(**env: str) -> str:
        result = subprocess.run(["debian/rules", "override_dh_auto_test"], cwd=tmp_path, capture_output=True,
                                text=True, env={"PATH": "/usr/bin:/bin", "DH_VERBOSE": "1", **env}, timeout=120)
        return result.stdout + result.stderr

    assert "pybuild --test --test-pytest" in dh_auto_test()  # (and fails: nothing is built in this scratch copy)
    assert "pybuild --test" not in dh_auto_test(DEB_BUILD_OPTIONS="nocheck")


def test_package_holds_units_man_page_completion_catalog_and_policy(deb):
    files = {line.split()[-1].removeprefix(".") for line in dpkg_deb("-c", str(deb)).splitlines()}
    expected = {f"/usr/lib/systemd/system/{name}" for name in UNITS} | {
        "/usr/bin/vhbackup",
        "/usr/share/man/man8/vhbackup.8.gz",
        "/usr/share/bash-completion/completions/vhbackup",
        "/usr/lib/systemd/catalog/vhbackup.catalog",
        "/etc/vhbackup/policy.yml",
        "/usr/lib/python3/dist-packages/vhbackup/cli.py",
        "/usr/share/doc/vhbackup/copyright",
        "/usr/share/doc/vhbackup/systemd.md",  # the units' Documentation=file:, not compressed
        "/usr/share/doc/vhbackup/examples/policy.yml",
    }
    assert expected <= files, sorted(expected - files)
    assert "/usr/lib/python3/dist-packages/vhbackup/templates/" in files, "Jinja2 templates are package data"
    assert not [f for f in files if f.startswith(("/etc/vhbackup/credentials", "/var/"))], "no secrets or state"
    assert not [f for f in files if "/tests/" in f or "/bench/" in f]
    assert not [f for f in files if f.startswith(("/lib/", "/bin/", "/sbin/"))], "DEP17: nothing in aliased dirs"


def test_policy_is_the_only_conffile_and_identical_to_the_source(deb, tmp_path):
    dpkg_deb("-e", str(deb), str(tmp_path / "DEBIAN"))
    assert (tmp_path / "DEBIAN" / "conffiles").read_text().split() == ["/etc/vhbackup/policy.yml"]
    dpkg_deb("-x", str(deb), str(tmp_path / "root"))
    assert (tmp_path / "root/etc/vhbackup/policy.yml").read_bytes() == (ROOT / "etc/vhbackup/policy.yml").read_bytes()


def test_relations(deb):
    fields = {name: dpkg_deb("-f", str(deb), name).strip() for name in
              ("Depends", "Recommends", "Suggests", "Pre-Depends", "Architecture", "Package", "Version")}
    assert (fields["Package"], fields["Version"], fields["Architecture"]) == ("vhbackup", VERSION, "all")
    depends = {d.strip().split()[0] for d in fields["Depends"].split(",")}
    assert {"restic", "python3-yaml", "python3-jinja2", "python3-systemd", "python3-sdnotify"} <= depends
    # TLS for S3/REST/webhooks and ssh for SFTP: most hosts want them; the database clients only some
    assert [r.strip() for r in fields["Recommends"].split(",")] == ["ca-certificates", "openssh-client"]
    assert [r.strip() for r in fields["Suggests"].split(",")] == [
        "default-mysql-client | virtual-mysql-client", "postgresql-client"]
    info = dpkg_deb("-I", str(deb))
    assert not re.search(r"mongo", " ".join(fields.values()), re.I)
    relation_lines = [line for line in info.splitlines()
                      if re.match(r"^ (Pre-Depends|Depends|Recommends|Suggests|Enhances|Breaks|Conflicts):", line)]
    assert relation_lines and not [line for line in relation_lines if "mongo" in line.lower()]


DISABLED_TIMER = "vhbackup-maintenance.timer"


def test_upgrades_never_start_stop_or_restart_a_service(deb, tmp_path):
    """Only the timers are handled by the maintainer scripts; a running backup survives an upgrade."""
    dpkg_deb("-e", str(deb), str(tmp_path))
    scripts = {name: (tmp_path / name).read_text() for name in ("postinst", "prerm", "postrm")
               if (tmp_path / name).exists()}
    invoked = [line for text in scripts.values() for line in text.splitlines()
               if re.search(r"deb-systemd-invoke|systemctl (start|stop|restart|try-restart)", line)]
    assert invoked, "the timers are started"
    for line in invoked:
        assert ".service" not in line, line
    postinst = scripts["postinst"]
    for timer in (u for u in UNITS if u.endswith(".timer") and u != DISABLED_TIMER):
        assert f"deb-systemd-helper enable '{timer}'" in postinst
        assert timer in " ".join(invoked)
    # The maintenance role belongs on a trusted machine: shipped, never started by the package, and enabled
    # only again on upgrade where the admin enabled it (dh_installsystemd --no-enable: "was-enabled").
    lines = postinst.splitlines()
    enables = [i for i, line in enumerate(lines) if f"deb-systemd-helper enable '{DISABLED_TIMER}'" in line]
    assert enables
    for i in enables:
        assert any(f"was-enabled '{DISABLED_TIMER}'" in line for line in lines[max(0, i - 3):i]), lines[i - 3:i + 1]
    assert DISABLED_TIMER not in " ".join(invoked)
    code = "\n".join(line for line in postinst.splitlines() if not line.lstrip().startswith("#"))
    assert "restic" not in code.replace("/etc/vhbackup/credentials/restic-password", ""), "postinst never runs restic"
    assert not re.search(r"\b(curl|wget|apt-get|pip)\b", code)


def test_purge_keeps_a_non_empty_credentials_directory(deb, tmp_path):
    """postrm purge, run against a scratch root: state, cache and stamps go; the password stays."""
    dpkg_deb("-e", str(deb), str(tmp_path / "DEBIAN"))
    text = (tmp_path / "DEBIAN" / "postrm").read_text()
    root = tmp_path / "root"
    for directory in ("etc/vhbackup/credentials", "var/lib/vhbackup/reports", "var/cache/vhbackup/x",
                      "var/lib/systemd/timers"):
        (root / directory).mkdir(parents=True)
    (root / "etc/vhbackup/credentials/restic-password").write_text("secret\n")
    (root / "etc/vhbackup/policy.yml.dpkg-old").write_text("old\n")
    (root / "var/lib/systemd/timers/stamp-vhbackup-backup.timer").write_text("")
    (root / "var/lib/systemd/timers/stamp-other.timer").write_text("")
    script = tmp_path / "postrm"
    # the package's own purge block, with its absolute paths moved under the scratch root
    block = re.search(r'^if \[ "\$1" = purge \]; then\n.*?^fi$', text, re.M | re.S).group(0)
    rooted = re.sub(r"(?<=[\s\"])/(etc/vhbackup|var/)", lambda m: f"{root}/{m.group(1)}", block)
    script.write_text(f"#!/bin/sh\nset -e\n{rooted}\n")
    result = subprocess.run(["sh", str(script), "purge"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert not (root / "var/lib/vhbackup").exists() and not (root / "var/cache/vhbackup").exists()
    assert not (root / "var/lib/systemd/timers/stamp-vhbackup-backup.timer").exists()
    assert (root / "var/lib/systemd/timers/stamp-other.timer").exists()
    assert not (root / "etc/vhbackup/policy.yml.dpkg-old").exists()
    assert (root / "etc/vhbackup/credentials/restic-password").read_text() == "secret\n"
    assert f"{root}/etc/vhbackup/credentials" in result.stdout and "password" in result.stdout

    (root / "etc/vhbackup/credentials/restic-password").unlink()
    result = subprocess.run(["sh", str(script), "purge"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout == ""
    assert not (root / "etc/vhbackup").exists(), "an empty credentials directory and /etc/vhbackup are removed"
