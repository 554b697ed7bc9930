"""tools/debian_mirror.py: the Debian mirror that the test roots and restic downloads come from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import debian_mirror  # noqa: E402


def apt_etc(tmp_path: Path, files: dict[str, str]) -> Path:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (etc / name).write_text(text)
    return etc


DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example.org/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example.org/debian-security
Suites: bookworm-security
Components: main
"""


def run(etc: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools/debian_mirror.py"), "--apt-etc", str(etc),
                           "--codename", "bookworm", *args], capture_output=True, text=True, timeout=30)


def test_deb822_sources_give_the_archive_and_the_security_mirror(tmp_path):
    etc = apt_etc(tmp_path, {"sources.list.d/debian.sources": DEB822,
                             "sources.list.d/other.sources": "Types: deb\nURIs: https://deb.nodesource.com/node\n"
                                                             "Suites: nodistro\nComponents: main\n"})
    assert run(etc).stdout == "http://mirror.example.org/debian\n"
    assert run(etc, "--security").stdout == "http://security.example.org/debian-security\n"


def test_one_line_sources_disabled_stanzas_and_options(tmp_path):
    etc = apt_etc(tmp_path, {
        "sources.list": "# deb http://old.example.org/debian bookworm main\n"
                        "deb-src http://src.example.org/debian bookworm main\n"
                        "deb [arch=amd64 signed-by=/k.gpg] http://one.example.org/debian bookworm main # note\n",
        "sources.list.d/a.sources": "Enabled: no\nTypes: deb\nURIs: http://disabled.example.org/debian\n"
                                    "Suites: bookworm\nComponents: main\n",
    })
    assert run(etc).stdout == "http://one.example.org/debian\n"
    assert debian_mirror.mirror_for("bookworm-security", etc) is None
    result = run(etc, "--security")
    assert (result.returncode, result.stdout) == (0, "")


def test_no_source_for_the_release_is_one_line_and_exit_1(tmp_path):
    etc = apt_etc(tmp_path, {"sources.list.d/x.list": "deb http://x.example.org/debian trixie main\n"})
    result = run(etc)
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "bookworm" in result.stderr


def test_codename_comes_from_os_release(tmp_path):
    (tmp_path / "os-release").write_text('PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nVERSION_CODENAME=trixie\n')
    assert debian_mirror.codename(tmp_path / "os-release") == "trixie"
