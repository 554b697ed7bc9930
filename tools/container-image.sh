#!/bin/sh
# Build (once) the Debian 12 image the container tests run, and print the
# podman settings to use with it: the path of a folder holding
# containers.conf and storage.conf (export CONTAINERS_CONF and
# CONTAINERS_STORAGE_CONF from it) and the image's name, on one line each.
#
# Nothing can be pulled from a registry here, so the image is a debootstrapped
# root imported with `podman import`. The root's tarball, the podman storage
# it is imported into and the image tag all carry a hash of this script:
# changing the package list or a start script builds a new image, reruns
# reuse the cached one (about 90 s to build, 10 s to import, then nothing).
#
# The image holds MariaDB, PostgreSQL 15 and busybox, and three start
# scripts (vh-mariadb, vh-postgres, vh-web) that a test runs as the
# container's command with PORT=... : with `--network host` every server
# listens on 127.0.0.1:$PORT only, never on the host's 3306/5432.
set -eu

PACKAGES="mariadb-server,mariadb-client,postgresql-15,postgresql-client-15,busybox,procps"
MIRROR=http://deb.debian.org/debian

cache=${VHBACKUP_ROOTFS_CACHE:-/var/cache/vhbackup-tests}
key=$(sha256sum "$0" | cut -c1-12)
tarball="$cache/container-image-$key.tar"
podman_dir="$cache/podman"
image="localhost/vhbackup-test:$key"

mkdir -p "$cache" "$podman_dir"
exec 9>"$cache/container-image.lock"
flock 9

# podman's settings for these machines (see docs/containers.md, "Tested engines"):
# runc (crun refuses hybrid cgroups), cgroupfs (systemd is not PID 1), a file
# event log, ulimits root may set without CAP_SYS_RESOURCE; storage kept here.
cat >"$podman_dir/containers.conf.new" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
CONF
cat >"$podman_dir/storage.conf.new" <<CONF
[storage]
driver = "overlay"
graphroot = "$podman_dir/storage"
runroot = "/run/vhbackup-tests-podman"
CONF
mv "$podman_dir/containers.conf.new" "$podman_dir/containers.conf"
mv "$podman_dir/storage.conf.new" "$podman_dir/storage.conf"
export CONTAINERS_CONF="$podman_dir/containers.conf" CONTAINERS_STORAGE_CONF="$podman_dir/storage.conf"

if podman image exists "$image" 2>/dev/null; then
    echo "$podman_dir"
    echo "$image"
    exit 0
fi

if [ ! -f "$tarball" ]; then
    build="$cache/container-root.build"
    rm -rf "$build"
    echo "building the container-test image root in $build (debootstrap, about 2 minutes)" >&2
    debootstrap --variant=minbase --include="$PACKAGES" bookworm "$build" "$MIRROR" \
        >"$cache/container-debootstrap.log" 2>&1 || {
        tail -20 "$cache/container-debootstrap.log" >&2
        echo "debootstrap failed; full log in $cache/container-debootstrap.log" >&2
        rm -rf "$build"
        exit 1
    }
    rm -rf "$build/var/cache/apt/archives/"*.deb "$build/var/lib/apt/lists/"*_Packages \
        "$build/var/lib/postgresql/15/main"
    cat >"$build/usr/local/bin/vh-mariadb" <<'SH'
#!/bin/sh
# MariaDB on 127.0.0.1:$PORT and /run/mysqld/mysqld.sock; a new data folder on first start.
set -eu
mkdir -p /run/mysqld /var/lib/mysql
chown mysql:mysql /run/mysqld /var/lib/mysql
if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql --auth-root-authentication-method=socket >/dev/null
fi
exec mariadbd --user=mysql --datadir=/var/lib/mysql --bind-address=127.0.0.1 --port="$PORT" \
    --socket=/run/mysqld/mysqld.sock --skip-log-bin --innodb-buffer-pool-size=32M --skip-name-resolve
SH
    cat >"$build/usr/local/bin/vh-postgres" <<'SH'
#!/bin/sh
# PostgreSQL 15 on 127.0.0.1:$PORT and /run/postgresql; local connections trusted; a new cluster on first start.
set -eu
data=/var/lib/postgresql/data
mkdir -p /run/postgresql "$data"
chown postgres:postgres /run/postgresql "$data"
if [ ! -f "$data/PG_VERSION" ]; then
    su postgres -s /bin/sh -c "/usr/lib/postgresql/15/bin/initdb -A trust -U postgres -E UTF8 --locale=C.UTF-8 -D $data" >/dev/null
fi
exec su postgres -s /bin/sh -c "exec /usr/lib/postgresql/15/bin/postgres -D $data -c listen_addresses=127.0.0.1 \
    -c port=$PORT -c unix_socket_directories=/run/postgresql -c shared_buffers=16MB -c fsync=off"
SH
    cat >"$build/usr/local/bin/vh-web" <<'SH'
#!/bin/sh
# A web service: serves /srv/www on 127.0.0.1:$PORT; ends on SIGTERM (a PID 1 has no default handler).
set -eu
mkdir -p /srv/www
trap 'kill $pid 2>/dev/null; exit 0' TERM INT
busybox httpd -f -p "127.0.0.1:$PORT" -h /srv/www &
pid=$!
wait $pid
SH
    chmod 755 "$build/usr/local/bin/vh-mariadb" "$build/usr/local/bin/vh-postgres" "$build/usr/local/bin/vh-web"
    tar -C "$build" -cf "$tarball.new" .
    mv "$tarball.new" "$tarball"
    rm -rf "$build"
fi

echo "importing $tarball as $image" >&2
podman import --change 'CMD ["/bin/sh"]' "$tarball" "$image" >/dev/null
for old in "$cache"/container-image-*.tar; do
    if [ "$old" != "$tarball" ]; then
        rm -f "$old"
    fi
done
echo "$podman_dir"
echo "$image"
