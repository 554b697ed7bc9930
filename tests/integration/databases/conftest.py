"""Fixtures for the database tests: each test creates and drops its own uniquely named databases."""

from __future__ import annotations

import secrets
import subprocess

import pytest
from dbhelpers import MARIA, Databases, maria


@pytest.fixture
def dbs():
    made = Databases()
    yield made
    made.cleanup()


@pytest.fixture
def maria_user():
    """A MariaDB account with a password (the root account has none); dropped afterwards."""
    user = f"vhbt_{secrets.token_hex(3)}"
    password = f"S3cr\"et\\-{secrets.token_hex(8)}-ü"
    maria(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password.replace(chr(92), chr(92) * 2)}'")
    maria(f"GRANT ALL ON *.* TO '{user}'@'127.0.0.1'")
    yield user, password
    subprocess.run(["mariadb", *MARIA, "-e", f"DROP USER IF EXISTS '{user}'@'127.0.0.1'"], capture_output=True)


