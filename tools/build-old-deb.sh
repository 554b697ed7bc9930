#!/bin/sh
# tools/build-old-deb.sh COMMIT: build the package of a past commit once and print the cached .deb.
#
# The upgrade test installs vhbackup 0.1.0 (commit 5e49a99) and then this tree's package over it. The old
# package is built from `git archive COMMIT` with this machine's debhelper (as 0.1.0 itself was) into
# /var/cache/vhbackup-tests/debs/COMMIT/ (VHBACKUP_DEB_CACHE), so later runs need neither a build nor
# the git history.
set -eu
commit=${1:?usage: tools/build-old-deb.sh COMMIT}
case "$commit" in
    *[!0-9a-f]*) echo "build-old-deb: '$commit' is not a commit id (hex digits)" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${VHBACKUP_DEB_CACHE:-/var/cache/vhbackup-tests/debs}/$commit

found() {
    for deb in "$cache"/vhbackup_*_all.deb; do
        [ -f "$deb" ] && echo "$deb" && return 0
    done
    return 1
}

found && exit 0
mkdir -p "$cache"
exec 9>"$cache.lock"
flock 9
found && exit 0
git -C "$root" cat-file -e "$commit^{commit}" 2>/dev/null || {
    echo "build-old-deb: commit $commit is not in $root (a full clone is needed the first time)" >&2
    exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/vhbackup"
git -C "$root" archive --format=tar "$commit" | tar -x -C "$work/vhbackup"
(cd "$work/vhbackup" && PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) || {
    tail -30 "$work/build.log" >&2
    echo "build-old-deb: building $commit failed" >&2
    exit 1
}
for deb in "$work"/vhbackup_*_all.deb; do
    cp "$deb" "$cache/.new.deb"
    mv "$cache/.new.deb" "$cache/${deb##*/}"
done
found
