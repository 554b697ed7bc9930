# vhbackup: `make demo` and `make test` set up everything on a fresh Debian 12 machine (as root).
PYTHON := /usr/bin/python3
RUNTIME_DEPS := restic python3-yaml python3-jinja2 python3-systemd python3-sdnotify
TEST_DEPS := python3-pytest python3-aiosmtpd rclone postgresql-client mariadb-client postgresql-contrib mariadb-server \
	debootstrap systemd-container lintian debhelper dh-python python3-setuptools python3-all \
	bash-completion dpkg-dev man-db podman runc podman-docker
DEB_BUILD_DEPS := debhelper dh-python python3-setuptools python3-all bash-completion dpkg-dev
# Benchmark-only: borg for borgmatic (itself pip-installed into a venv by bench/, a contender,
# not a dependency), the venv module, pgbench and the database clients.
BENCH_DEPS := borgbackup python3-venv postgresql-client postgresql-contrib mariadb-client
PYTEST := $(PYTHON) -m pytest -p no:cacheprovider

.PHONY: demo test unit integration system-test system-rootfs deps test-deps services restic-0.18 clean deb bench

demo: deps
	$(PYTHON) tools/demo.py

test: test-deps services restic-0.18 system-rootfs
	$(PYTEST) tests

unit:
	$(PYTEST) tests/unit

integration: services restic-0.18
	$(PYTEST) tests/integration

# Boots Debian 12 containers (systemd-nspawn) from the cached root and installs `make deb`'s
# package in them with apt (the fixtures in tests/system build both when missing).
system-test: test-deps system-rootfs
	$(PYTEST) tests/system

# The Debian 12 root the system test boots, cached under /var/cache/vhbackup-tests/.
system-rootfs: test-deps
	@tools/system-rootfs.sh >/dev/null

deps:
	@tools/apt-install.sh $(RUNTIME_DEPS)

test-deps:
	@tools/apt-install.sh $(RUNTIME_DEPS) $(TEST_DEPS)

services:
	tools/start-services.sh

restic-0.18:
	tools/fetch-restic-0.18.sh

# docs/benchmarks.md: vhbackup vs bare restic, dump-then-backup scripts and borgmatic
# (SCALE=large writes docs/benchmarks-large.md instead: the full sizes, ~22 min on 2 cores)
# (SCALE=tiny|small|large, default small; see bench/run.py for SEED, RESTIC, RUNS).
bench: services
	@tools/apt-install.sh $(RUNTIME_DEPS) $(BENCH_DEPS)
	$(PYTHON) bench/run.py

# build/deb/vhbackup_<version>_all.deb, built from a copy of the tree (dpkg-buildpackage
# writes into the parent directory) and moved into place in one rename.
deb:
	@tools/apt-install.sh $(DEB_BUILD_DEPS)
	@set -eu; mkdir -p build/deb; work=$$(mktemp -d build/deb-build.XXXXXX); \
	trap 'rm -rf "$$work"' EXIT; mkdir "$$work/vhbackup"; \
	tar -c --exclude-vcs --exclude=./build --exclude=./demo --exclude=./bench --exclude=./tests \
	    --exclude=__pycache__ --exclude=.pytest_cache --exclude='*.egg-info' . | tar -x -C "$$work/vhbackup"; \
	(cd "$$work/vhbackup" && dpkg-buildpackage -us -uc -b >../build.log 2>&1) || { cat "$$work/build.log"; exit 1; }; \
	for f in "$$work"/vhbackup_*_all.deb; do mv -f "$$f" build/deb/; echo "build/deb/$${f##*/}"; done

clean:
	rm -rf demo build dist *.egg-info .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
