"""Fixtures for the notifier tests: real SMTP and HTTP receivers on 127.0.0.1 and a policy that uses them."""

from __future__ import annotations

import logging
import secrets

import pytest

from tests.conftest import write_secret
from vhbackup.policy import load_policy


@pytest.fixture
def policy_factory(tmp_path, secret):
    """make(notify=...) -> Policy: a minimal valid policy with the given notify section (YAML text)."""
    write_secret(tmp_path / "restic-password", secrets.token_urlsafe(33))
    write_secret(tmp_path / "smtp-password", secret)

    def make(notify: str, host: str = "web01"):
        path = tmp_path / "policy.yml"
        path.write_text(
            f"host: {host}\n"
            f"repository:\n  url: {tmp_path}/repo\n  password_file: {tmp_path}/restic-password\n"
            f"  cache_dir: {tmp_path}/cache\n"
            f"state_dir: {tmp_path}/state\n"
            f"paths: [/etc/hostname]\n"
            f"notify:\n{notify}"
        )
        return load_policy(path)

    return make


@pytest.fixture
def logged(caplog):
    """Every record the 'vhbackup' logger emits (it does not propagate once set up, so attach directly)."""
    logger = logging.getLogger("vhbackup")
    logger.addHandler(caplog.handler)
    old = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.level, logger.propagate = old
