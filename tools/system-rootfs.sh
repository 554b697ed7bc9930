#!/bin/sh
# Build (once) and print a cached Debian root that the tests boot with
# systemd-nspawn:
#
#   tools/system-rootfs.sh [SUITE [FLAVOUR]]
#
# SUITE is bookworm (Debian 12, the default) or trixie (Debian 13). FLAVOUR:
#
#   host  (default) a vhbackup host: what the package needs (restic, the
#         python3 modules), a PostgreSQL server and client to back up, the
#         Recommends, and what an autopkgtest testbed needs (sshd, started
#         per connection by the runner, and dpkg-dev); tests/system boots it
#         and installs the .deb with apt, which then finds its dependencies
#         already satisfied exactly as a user's apt would.
#   dev   the host root plus what tests/integration needs (MariaDB server,
#         pytest, rclone, the package build tools, lintian), with both
#         database servers open to root on 127.0.0.1 without a password; the
#         integration tests run in it under its own network namespace
#         (tools/integration-in-release.py).
#
# Roots live in $VHBACKUP_ROOTFS_CACHE (default /var/cache/vhbackup-tests)
# under roots/<suite>-<flavour>-<hash of this script>, so changing a package
# list or a build step builds a new root; older roots of the same suite and
# flavour are removed after a successful build unless a test has one mounted.
# Packages come from the mirror in this machine's apt sources
# (tools/debian_mirror.py).
set -eu

suite=${1:-bookworm}
flavour=${2:-host}
here=$(cd "$(dirname "$0")" && pwd)

case "$suite" in
    bookworm|trixie) ;;
    *) echo "system-rootfs: unknown suite '$suite' (bookworm or trixie)" >&2; exit 2 ;;
esac
case "$flavour" in
    host|dev) ;;
    *) echo "system-rootfs: unknown flavour '$flavour' (host or dev)" >&2; exit 2 ;;
esac

BASE_PACKAGES="systemd,systemd-sysv,dbus,libpam-systemd"
HOST_PACKAGES="ca-certificates openssh-client postgresql postgresql-client mariadb-client restic \
python3 python3-yaml python3-jinja2 python3-systemd python3-sdnotify bash-completion openssh-server dpkg-dev"
DEV_PACKAGES="mariadb-server postgresql-contrib python3-pytest python3-aiosmtpd rclone make build-essential \
debhelper dh-python pybuild-plugin-pyproject python3-setuptools python3-all dpkg-dev man-db lintian"

cache=${VHBACKUP_ROOTFS_CACHE:-/var/cache/vhbackup-tests}
key=$(sha256sum "$0" | cut -c1-12)
name="$suite-$flavour"
root="$cache/roots/$name-$key"

if [ -f "$root/.complete" ]; then
    echo "$root"
    exit 0
fi

mkdir -p "$cache/roots"
exec 9>"$cache/roots/$name.lock"
flock 9
if [ -f "$root/.complete" ]; then
    echo "$root"
    exit 0
fi

log="$cache/roots/$name.log"
build="$root.build"
rm -rf "$build"
: >"$log"

# in_root SCRIPT: run SCRIPT with /bin/sh in the root being built (not booted).
in_root() {
    "$here/in-cgroup.sh" "rootfs-$name" systemd-nspawn -q -D "$build" --register=no --keep-unit \
        --setenv=DEBIAN_FRONTEND=noninteractive /bin/sh -ec "$1" >>"$log" 2>&1
}

fail() {
    tail -20 "$log" >&2
    echo "system-rootfs: $1; full log in $log" >&2
    rm -rf "$build"
    exit 1
}

if [ "$flavour" = host ]; then
    mirror=$("$here/debian_mirror.py")
    security=$("$here/debian_mirror.py" --security)
    echo "building the $suite root in $root from $mirror (debootstrap, a few minutes)" >&2
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$suite" "$build" "$mirror" >>"$log" 2>&1 ||
        fail "debootstrap $suite failed"
    {
        echo "deb $mirror $suite main"
        echo "deb $mirror $suite-updates main"
        [ -z "$security" ] || echo "deb $security $suite-security main"
    } >"$build/etc/apt/sources.list"
    echo vhtest >"$build/etc/hostname"
    in_root "
        apt-get update -q
        apt-get install -y -q --no-install-recommends $HOST_PACKAGES
        apt-get clean
    " || fail "installing packages into the $suite root failed"
    # The booted hosts share the host's network namespace, where the host's own
    # PostgreSQL already holds 127.0.0.1:5432: the root's cluster (whatever
    # version the suite has) listens on its Unix socket only.
    versions=$(ls "$build/etc/postgresql")
    [ "$(echo "$versions" | wc -w)" = 1 ] || fail "expected one PostgreSQL cluster in the $suite root, found: $versions"
    echo "listen_addresses = ''" >"$build/etc/postgresql/$versions/main/conf.d/vhtest-no-tcp.conf"
    # pg_createcluster took the first port free on the host (5433 when the host's
    # own PostgreSQL runs): the usual one, whatever the host runs.
    sed -i 's/^port = [0-9]*/port = 5432/' "$build/etc/postgresql/$versions/main/postgresql.conf"
    # Nor may its sshd listen on port 22 there: the autopkgtest runner starts
    # \`sshd -i\` inside the container for each connection (ssh ProxyCommand).
    in_root "systemctl mask ssh.service ssh.socket" || fail "masking ssh in the $suite root failed"
    echo 'd /run/sshd 0755 root root -' >"$build/etc/tmpfiles.d/vhtest-sshd.conf"
else
    host=$("$0" "$suite" host)
    echo "building the $suite dev root in $root from $host" >&2
    cp -a "$host" "$build"
    rm -f "$build/.complete"
    in_root "
        apt-get update -q
        apt-get install -y -q --no-install-recommends $DEV_PACKAGES
        apt-get clean
    " || fail "installing packages into the $suite dev root failed"
    # Runs in its own network namespace: the database servers listen on
    # 127.0.0.1 and trust root there, as the integration tests expect of a CI
    # machine (tools/start-services.sh, tests/integration/databases).
    version=$(ls "$build/etc/postgresql")
    rm -f "$build/etc/postgresql/$version/main/conf.d/vhtest-no-tcp.conf"
    cat >"$build/etc/postgresql/$version/main/pg_hba.conf" <<HBA
local all all trust
host all all 127.0.0.1/32 trust
HBA
    cat >"$build/etc/mysql/mariadb.conf.d/99-vhtest.cnf" <<CNF
[mariadbd]
bind-address = 127.0.0.1
skip-name-resolve
init-file = /etc/mysql/vhtest-init.sql
CNF
    cat >"$build/etc/mysql/vhtest-init.sql" <<SQL
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING '';
GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
SQL
fi

touch "$build/.complete"
mv "$build" "$root"
for old in "$cache/roots/$name"-*; do
    case "$old" in *.lock|*.log|*.build) continue ;; esac
    if [ "$old" != "$root" ] && [ -d "$old" ] && ! grep -qF "$old" /proc/mounts; then
        rm -rf "$old"
    fi
done
echo "$root"
