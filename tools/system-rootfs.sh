#!/bin/sh
# Build (once) and print the cached Debian 12 root that the system test boots
# with systemd-nspawn. The cache folder's name carries a hash of this script,
# so changing the package list or any build step builds a new root; older
# roots are removed after a successful build.
#
# The heavy packages a vhbackup host needs (PostgreSQL, restic, the python3
# modules, the database clients) are installed here, so that each test run
# only installs the vhbackup .deb with apt, which then finds its
# dependencies already satisfied exactly as a user's apt would.
set -eu

BASE_PACKAGES="systemd,systemd-sysv,dbus,libpam-systemd"
EXTRA_PACKAGES="ca-certificates postgresql postgresql-client mariadb-client restic \
python3 python3-yaml python3-jinja2 python3-systemd python3-sdnotify bash-completion"
MIRROR=http://deb.debian.org/debian

cache=${VHBACKUP_ROOTFS_CACHE:-/var/cache/vhbackup-tests}
key=$(sha256sum "$0" | cut -c1-12)
root="$cache/rootfs-$key"

if [ -f "$root/.complete" ]; then
    echo "$root"
    exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/rootfs.lock"
flock 9
if [ -f "$root/.complete" ]; then
    echo "$root"
    exit 0
fi

build="$root.build"
rm -rf "$build"
echo "building the system-test root in $root (debootstrap, a few minutes)" >&2
debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$build" "$MIRROR" >"$cache/debootstrap.log" 2>&1 || {
    tail -20 "$cache/debootstrap.log" >&2
    echo "debootstrap failed; full log in $cache/debootstrap.log" >&2
    exit 1
}

cat >"$build/etc/apt/sources.list" <<SRC
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SRC
echo vhtest >"$build/etc/hostname"

systemd-nspawn -q -D "$build" --register=no --keep-unit --setenv=DEBIAN_FRONTEND=noninteractive /bin/sh -ec "
    apt-get update -q
    apt-get install -y -q --no-install-recommends $EXTRA_PACKAGES
    apt-get clean
" >"$cache/rootfs-packages.log" 2>&1 || {
    tail -20 "$cache/rootfs-packages.log" >&2
    echo "installing packages into the root failed; full log in $cache/rootfs-packages.log" >&2
    exit 1
}

# The containers share the host's network namespace, where the host's own
# PostgreSQL already holds 127.0.0.1:5432: the container's cluster listens on
# its Unix socket only.
echo "listen_addresses = ''" >"$build/etc/postgresql/15/main/conf.d/vhtest-no-tcp.conf"

touch "$build/.complete"
mv "$build" "$root"
for old in "$cache"/rootfs-*; do
    if [ "$old" != "$root" ] && [ -d "$old" ]; then
        rm -rf "$old"
    fi
done
echo "$root"
