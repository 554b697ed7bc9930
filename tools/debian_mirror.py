#!/usr/bin/python3
"""Print the Debian mirror this machine's apt uses, for scripts that fetch Debian packages.

    tools/debian_mirror.py              the archive mirror, e.g. http://deb.debian.org/debian
    tools/debian_mirror.py --security   the security archive, e.g. http://deb.debian.org/debian-security
                                        (nothing, exit 0, when apt has no security source)

The tests' roots (tools/system-rootfs.sh) and the restic binaries of other
releases (tools/fetch-restic.sh) come from whatever mirror the machine is
set up with, instead of a host name written into the scripts. The archive
mirror is the first enabled ``deb`` source whose suites include this
machine's codename (VERSION_CODENAME in /etc/os-release); the security one
is the first whose suites include ``<codename>-security``. Both deb822 files
(``*.sources``) and one-line files (``sources.list``, ``*.list``) are read,
in apt's order. Exit 1 with one line on stderr when no source matches.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

APT_ETC = Path("/etc/apt")


def source_files(apt_etc: Path = APT_ETC) -> list[Path]:
    """sources.list first, then sources.list.d/*.list and *.sources in name order (apt reads them so)."""
    files = [apt_etc / "sources.list"] if (apt_etc / "sources.list").is_file() else []
    parts = apt_etc / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.is_file() and p.suffix in (".list", ".sources"))
    return files


def deb822_entries(text: str) -> list[tuple[list[str], list[str], list[str]]]:
    """(types, uris, suites) of every enabled stanza of a deb822 .sources file."""
    entries = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key is not None:  # a continuation line
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if not fields or fields.get("enabled", "yes").lower() == "no":
            continue
        entries.append((fields.get("types", "").split(), fields.get("uris", "").split(),
                        fields.get("suites", "").split()))
    return entries


def one_line_entries(text: str) -> list[tuple[list[str], list[str], list[str]]]:
    """(types, uris, suites) of every ``deb [options] uri suite component...`` line."""
    entries = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        line = re.sub(r"\[[^\]]*\]", " ", line)  # [signed-by=... arch=...]
        words = line.split()
        if len(words) >= 3 and words[0] in ("deb", "deb-src"):
            entries.append(([words[0]], [words[1]], [words[2]]))
    return entries


def entries(apt_etc: Path = APT_ETC) -> list[tuple[list[str], list[str], list[str]]]:
    found = []
    for path in source_files(apt_etc):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found += deb822_entries(text) if path.suffix == ".sources" else one_line_entries(text)
    return found


def mirror_for(suite: str, apt_etc: Path = APT_ETC) -> str | None:
    """The first usable URI of an enabled binary source that carries ``suite``, without a trailing slash."""
    for types, uris, suites in entries(apt_etc):
        if "deb" in types and suite in suites:
            for uri in uris:
                if not uri.startswith("cdrom:"):
                    return uri.rstrip("/")
    return None


def codename(os_release: Path = Path("/etc/os-release")) -> str:
    for line in os_release.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME" and value.strip('"'):
            return value.strip('"')
    raise ValueError(f"{os_release} names no VERSION_CODENAME")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the Debian mirror URI from this machine's apt sources.")
    parser.add_argument("--security", action="store_true", help="the security archive instead")
    parser.add_argument("--apt-etc", default=str(APT_ETC), help=argparse.SUPPRESS)
    parser.add_argument("--codename", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        name = args.codename or codename()
    except (OSError, ValueError) as exc:
        print(f"debian_mirror: cannot tell this machine's release: {exc}", file=sys.stderr)
        return 1
    suite = f"{name}-security" if args.security else name
    uri = mirror_for(suite, Path(args.apt_etc))
    if uri is None:
        if args.security:
            return 0
        print(f"debian_mirror: no enabled 'deb' source for suite {suite} in {args.apt_etc}/sources.list "
              f"or {args.apt_etc}/sources.list.d/", file=sys.stderr)
        return 1
    print(uri)
    return 0


if __name__ == "__main__":
    sys.exit(main())
