#!/bin/sh
# Start the PostgreSQL and MariaDB servers the tests use, when they are not
# running (CI and fresh machines), and wait until both answer on 127.0.0.1.
set -eu
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    for version in $(ls /etc/postgresql); do
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
fi
if ! mariadb-admin --protocol=tcp -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
fi
for i in $(seq 60); do
    if pg_isready -q -h 127.0.0.1 -p 5432 && mariadb-admin --protocol=tcp -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
        exit 0
    fi
    sleep 1
done
echo "start-services: PostgreSQL or MariaDB did not come up on 127.0.0.1 within 60 s" >&2
exit 1
