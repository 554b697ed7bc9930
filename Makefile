# vhbackup: `make demo` and `make test` set up everything on a fresh Debian 12 machine (as root).
PYTHON := /usr/bin/python3
RUNTIME_DEPS := restic python3-yaml python3-jinja2 python3-systemd python3-sdnotify
TEST_DEPS := python3-pytest python3-aiosmtpd rclone postgresql-client mariadb-client postgresql-contrib mariadb-server \
	debootstrap systemd-container lintian debhelper dh-python python3-setuptools python3-all \
	bash-completion dpkg-dev man-db
# Build-Depends of debian/control, with those of the build-time unit tests (<!nocheck>).
DEB_BUILD_DEPS := debhelper dh-python pybuild-plugin-pyproject python3-setuptools python3-all bash-completion \
	dpkg-dev man-db python3-aiosmtpd python3-jinja2 python3-pytest python3-sdnotify python3-systemd python3-yaml \
	systemd
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

# $(DEB_DIR)/vhbackup_<version>_all.deb (and the source package: .dsc, .tar.xz, .changes; build.log), built
# from a copy of the tree (dpkg-buildpackage writes into the parent directory) and moved into
# place file by file, the .deb last, each in one rename. DEB_BUILD_OPTIONS=nocheck skips the unit
# tests that the build runs. The build sees only the system's PATH (no python3 from elsewhere).
DEB_DIR ?= build/deb
deb:
	@tools/apt-install.sh $(DEB_BUILD_DEPS)
	@set -eu; mkdir -p build "$(DEB_DIR)"; work=$$(mktemp -d build/deb-build.XXXXXX); \
	trap 'rm -rf "$$work"' EXIT; mkdir "$$work/vhbackup"; \
	tar -c --exclude-vcs --exclude=./build --exclude=./demo \
	    --exclude=__pycache__ --exclude=.pytest_cache --exclude='*.egg-info' . | tar -x -C "$$work/vhbackup"; \
	(cd "$$work/vhbackup" && PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -us -uc >../build.log 2>&1) || { cat "$$work/build.log"; exit 1; }; \
	mv -f "$$work/build.log" "$(DEB_DIR)/build.log"; \
	for f in "$$work"/vhbackup_*.tar.* "$$work"/vhbackup_*.dsc "$$work"/vhbackup_*.buildinfo \
	         "$$work"/vhbackup_*.changes "$$work"/vhbackup_*_all.deb; do \
	    mv -f "$$f" "$(DEB_DIR)/"; echo "$(DEB_DIR)/$${f##*/}"; done

clean:
	rm -rf demo build dist *.egg-info .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
