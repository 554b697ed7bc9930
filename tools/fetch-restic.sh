#!/bin/sh
# Download the restic .deb of another Debian release with apt and unpack it
# into a cache folder, so that the tests can run both restic versions that
# vhbackup supports on either release:
#
#   tools/fetch-restic.sh bookworm   -> $CACHE/restic-0.14/usr/bin/restic (Debian 12)
#   tools/fetch-restic.sh trixie     -> $CACHE/restic-0.18/usr/bin/restic (Debian 13)
#
# (CACHE is /var/cache/vhbackup-tests unless VHBACKUP_RESTIC_CACHE says
# otherwise.) apt uses a temporary source for that suite on the mirror of
# this machine's own apt sources (tools/debian_mirror.py) and touches none of
# the system's apt configuration. restic is a Go binary that needs nothing
# but libc6, so either one runs on Debian 12 and 13.
set -eu
suite=${1:-}
case "$suite" in
    bookworm) version=0.14 ;;
    trixie) version=0.18 ;;
    *) echo "usage: tools/fetch-restic.sh bookworm|trixie" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
cache=${VHBACKUP_RESTIC_CACHE:-/var/cache/vhbackup-tests}/restic-$version
bin="$cache/usr/bin/restic"
if [ -x "$bin" ] && "$bin" version | grep -q "restic $version\."; then
    exit 0
fi
mirror=$("$here/debian_mirror.py")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial"
cat > "$work/$suite.sources" <<SRC
Types: deb
URIs: $mirror
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt_opts="-o Dir::Etc::SourceList=$work/$suite.sources -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=$work/lists -o APT::Sandbox::User=root"
apt-get $apt_opts update -q >/dev/null
(cd "$work" && apt-get $apt_opts download -q "restic/$suite" >/dev/null)
rm -rf "$cache.new"
mkdir -p "$cache.new"
dpkg-deb -x "$work"/restic_*.deb "$cache.new"
"$cache.new/usr/bin/restic" version | grep -q "restic $version\." || {
    echo "fetch-restic: restic/$suite is not restic $version: $("$cache.new/usr/bin/restic" version)" >&2
    exit 1
}
rm -rf "$cache"
mv "$cache.new" "$cache"
"$bin" version
