# vhbackup: `make demo` and `make test` set up everything on a fresh Debian 12 machine (as root).
PYTHON := /usr/bin/python3
RUNTIME_DEPS := restic python3-yaml python3-jinja2 python3-systemd python3-sdnotify
TEST_DEPS := python3-pytest python3-aiosmtpd rclone postgresql-client mariadb-client postgresql-contrib mariadb-server \
	debootstrap systemd-container lintian debhelper dh-python python3-setuptools python3-all \
	bash-completion dpkg-dev man-db autopkgtest openssh-client podman runc podman-docker \
	openssh-server python3-venv
# Build-Depends of debian/control, with those of the build-time unit tests (<!nocheck>).
DEB_BUILD_DEPS := build-essential debhelper dh-python pybuild-plugin-pyproject python3-setuptools python3-all bash-completion \
	dpkg-dev man-db python3-aiosmtpd python3-jinja2 python3-pytest python3-sdnotify python3-systemd python3-yaml \
	systemd
# Benchmark-only: pgbench, the database clients, git (the report names the commit it measured).
BENCH_DEPS := postgresql-client postgresql-contrib mariadb-client git
PYTEST := $(PYTHON) -m pytest -p no:cacheprovider
# The Debian releases whose booted systems the system tests run on (one pytest each, in parallel).
RELEASES := bookworm trixie
# The package the system tests install, built once per run (its unit tests run in `make unit`).
SYSTEM_DEB := build/system-deb

.PHONY: demo test test-host test-host-a test-host-b integration-trixie-a integration-trixie-b unit integration faults integration-trixie system-test $(RELEASES:%=system-test-%) \
	system-rootfs $(RELEASES:%=system-rootfs-%) system-deb deps test-deps services restic restic-0.14 \
	restic-0.18 clean deb bench bench-readme

demo: deps
	$(PYTHON) tools/demo.py

# Everything at once, in six parts (CI has 2 cores and 90 minutes; each part is one serial pytest,
# much of it waiting for restic's servers, the databases or a booted systemd, so running them side
# by side is what keeps the whole inside the budget): the host's tests in two halves, the
# integration tests in Debian 13's userland in two halves (two containers, each with its own
# database servers), and the system tests on booted Debian 12 and Debian 13.
test: test-deps services restic system-rootfs system-deb
	$(MAKE) --no-print-directory -j6 -Otarget test-host-a test-host-b integration-trixie-a integration-trixie-b \
		$(RELEASES:%=system-test-%)

# The host's share: unit tests, the fault suite and the database and container tests; then the rest.
HOST_A := tests/unit tests/faults tests/integration/databases tests/integration/containers
HOST_B := tests/integration --ignore=tests/integration/databases --ignore=tests/integration/containers

test-host: test-host-a test-host-b

test-host-a:
	$(PYTEST) $(HOST_A)

test-host-b:
	$(PYTEST) $(HOST_B)

# The fault-injection suite (docs/guarantees.md): kills, full disks, locks, damage, both restic versions.
faults: services restic
	$(PYTEST) tests/faults

unit:
	$(PYTEST) tests/unit

integration: services restic
	$(PYTEST) tests/integration

# tests/integration inside a booted Debian 13 (its Python, PostgreSQL, MariaDB, restic 0.18 as
# /usr/bin/restic, debhelper and lintian; restic 0.14 bound in), with its own database servers.
# The container tests run on the host only: podman cannot run inside that nspawn container.
integration-trixie: restic system-rootfs-trixie
	tools/integration-in-release.py trixie tests/integration --ignore=tests/integration/containers

# The same in two containers at once (make test): the database tests, then everything else.
integration-trixie-a: restic system-rootfs-trixie
	tools/integration-in-release.py trixie tests/integration/databases

integration-trixie-b: restic system-rootfs-trixie
	tools/integration-in-release.py trixie tests/integration --ignore=tests/integration/containers \
		--ignore=tests/integration/databases

# tests/system on booted Debian 12 and 13 (systemd-nspawn, the cached roots), the .deb installed
# with apt; also the upgrade from 0.1.0, the small-memory hosts, lintian and the autopkgtest.
system-test: test-deps system-rootfs system-deb
	$(MAKE) --no-print-directory -j2 -Otarget $(RELEASES:%=system-test-%)

$(RELEASES:%=system-test-%): system-test-%:
	VHBACKUP_TEST_RELEASES=$* VHBACKUP_DEB_DIR=$(SYSTEM_DEB) $(PYTEST) tests/system

system-deb:
	@DEB_BUILD_OPTIONS=nocheck $(MAKE) --no-print-directory -s deb DEB_DIR=$(SYSTEM_DEB)

# The roots the tests boot, cached under /var/cache/vhbackup-tests/roots/ (built in parallel).
system-rootfs: test-deps
	@$(MAKE) --no-print-directory -j2 $(RELEASES:%=system-rootfs-%)

system-rootfs-bookworm:
	@tools/system-rootfs.sh bookworm host >/dev/null

system-rootfs-trixie:
	@tools/system-rootfs.sh trixie host >/dev/null
	@tools/system-rootfs.sh trixie dev >/dev/null

deps:
	@tools/apt-install.sh $(RUNTIME_DEPS)

test-deps:
	@tools/apt-install.sh $(RUNTIME_DEPS) $(TEST_DEPS)

# The database servers, and the test-only S3 server's venv (moto from PyPI, tools/test-venv.sh); the
# S3, SSH and REST servers themselves are started by the tests' fixtures (tests/servers.py).
services:
	tools/start-services.sh
	@tools/test-venv.sh

# Both restic versions that vhbackup supports, for both userlands (/usr/bin/restic is one of them).
restic: restic-0.14 restic-0.18

restic-0.14:
	@tools/fetch-restic.sh bookworm >/dev/null

restic-0.18:
	@tools/fetch-restic.sh trixie >/dev/null

# docs/benchmarks.md: issue 14's targets (vhbackup against a sequential dump-then-backup script, a
# hand-made parallel pipeline, its own restic processes run by hand, bare restic; status; retention),
# side by side, with spreads and paired verdicts. Refuses a tree with uncommitted changes (ALLOW_DIRTY=1
# measures anyway and records the diff's SHA-256). The reference scale took 6.3-8.4 minutes on 2 busy cores
# (well under the 15-minute budget; the report states its own time per phase); SCALE=tiny is a smoke test
# of about a minute (its report stays in the work directory). RUNS=, STATUS_RUNS=, RETENTION_RUNS= give
# the verdicts more values; see bench/run.py.
bench: services
	@tools/apt-install.sh $(RUNTIME_DEPS) $(BENCH_DEPS)
	$(PYTHON) bench/run.py

# README.md's "What it costs": figures quoted from docs/benchmarks.md with its run id, commit and scale.
bench-readme:
	$(PYTHON) bench/run.py --readme

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
