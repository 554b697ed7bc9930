# vhbackup: `make demo` and `make test` set up everything on a fresh Debian 12 machine (as root).
PYTHON := /usr/bin/python3
RUNTIME_DEPS := restic python3-yaml python3-jinja2 python3-systemd python3-sdnotify
TEST_DEPS := python3-pytest python3-aiosmtpd rclone postgresql-client mariadb-client postgresql-contrib \
	debootstrap systemd-container lintian debhelper dh-python python3-setuptools python3-all \
	bash-completion
PYTEST := $(PYTHON) -m pytest -p no:cacheprovider

.PHONY: demo test unit integration system-test deps test-deps services restic-0.18 clean

demo: deps
	$(PYTHON) tools/demo.py

test: test-deps services restic-0.18
	$(PYTEST) tests

unit:
	$(PYTEST) tests/unit

integration: services restic-0.18
	$(PYTEST) tests/integration

deps:
	@tools/apt-install.sh $(RUNTIME_DEPS)

test-deps:
	@tools/apt-install.sh $(RUNTIME_DEPS) $(TEST_DEPS)

services:
	tools/start-services.sh

restic-0.18:
	tools/fetch-restic-0.18.sh

clean:
	rm -rf demo build dist *.egg-info .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
