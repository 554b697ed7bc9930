#!/bin/sh
# Download Debian 13's restic .deb with apt (a temporary trixie source that
# touches none of the system's apt configuration) and unpack it into a cache
# folder. The binary is static apart from libc6, so it runs on Debian 12.
set -eu
cache=${RESTIC_018_CACHE:-/var/cache/vhbackup-tests/restic-0.18}
bin="$cache/usr/bin/restic"
if [ -x "$bin" ] && "$bin" version | grep -q 'restic 0\.18\.'; then
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial"
cat > "$work/trixie.sources" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt_opts="-o Dir::Etc::SourceList=$work/trixie.sources -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=$work/lists -o APT::Sandbox::User=root"
apt-get $apt_opts update -q >/dev/null
(cd "$work" && apt-get $apt_opts download -q 'restic/trixie' >/dev/null)
mkdir -p "$cache"
dpkg-deb -x "$work"/restic_*.deb "$cache"
"$bin" version
