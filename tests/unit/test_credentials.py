"""Credential files: who may read them, what they hold, and systemd's credentials directory."""

from __future__ import annotations

import os

import pytest

from vhbackup import credentials
from vhbackup.errors import EXIT_CONFIG, PolicyError


def secret(tmp_path, name: str, text: str, mode: int = 0o600):
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def refused(path: str, **kwargs) -> str:
    with pytest.raises(PolicyError) as info:
        credentials.check_secret_file(path, **kwargs)
    assert info.value.exit_code == EXIT_CONFIG
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_private_modes_are_accepted(tmp_path, mode):
    assert credentials.check_password_file(secret(tmp_path, "pw", "p" * 32, mode)) == []


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o602, 0o660, 0o666, 0o610])
def test_group_or_other_bits_are_refused_with_the_fix(tmp_path, mode):
    path = secret(tmp_path, "pw", "p" * 40, mode)
    err = refused(path)
    assert f"mode {mode:04o}" in err and f"chmod 600 {path}" in err


def test_owner_must_be_root_or_us(tmp_path):
    path = secret(tmp_path, "pw", "p" * 40)
    os.chown(path, 4242, 4242)
    err = refused(path)
    assert "uid 4242" in err and path in err


def test_empty_and_newline_only_password_are_refused(tmp_path):
    assert "empty" in refused(secret(tmp_path, "a", ""), min_length=32)
    assert "empty" in refused(secret(tmp_path, "b", "\n\r\n"), min_length=32)


def test_short_password_warns_without_the_secret(tmp_path):
    path = secret(tmp_path, "pw", "hunter2\n")
    warnings = credentials.check_password_file(path)
    assert len(warnings) == 1 and "32" in warnings[0] and "hunter2" not in warnings[0]
    assert credentials.check_password_file(secret(tmp_path, "ok", "p" * 32 + "\n")) == []


def test_missing_and_non_regular_files(tmp_path):
    assert "does not exist" in refused(str(tmp_path / "nope"))
    (tmp_path / "d").mkdir(mode=0o700)
    assert "not a regular file" in refused(str(tmp_path / "d"))


def test_read_secret_is_the_first_line(tmp_path):
    assert credentials.read_secret(secret(tmp_path, "pw", "abc def\r\nsecond\n")) == "abc def"


def test_read_secret_that_cannot_be_read_is_one_policy_error(tmp_path):
    """A database password file checked at load time can still fail to open later (e.g. not readable by us)."""
    with pytest.raises(PolicyError, match=f"credential file {tmp_path} cannot be read") as caught:
        credentials.read_secret(str(tmp_path))
    assert caught.value.exit_code == EXIT_CONFIG


def test_env_file_parsing(tmp_path):
    path = secret(tmp_path, "env", "\n# comment\nA=1\nexport B=two words\nC='q=1'\nD=\"\"\nE=\n  F=padded  \n")
    assert credentials.read_env_file(path) == {"A": "1", "B": "two words", "C": "q=1", "D": "", "E": "",
                                               "F": "padded"}


@pytest.mark.parametrize("line", ["NOEQUALS", "1A=x", "A B=c", "=value", "export"])
def test_env_file_malformed_line(tmp_path, line):
    path = secret(tmp_path, "env", f"OK=1\n{line}\n")
    with pytest.raises(PolicyError) as info:
        credentials.read_env_file(path)
    assert f"{path}:2" in str(info.value)
    assert line not in str(info.value).split("got")[-1] or line == "export"


def test_env_file_must_be_private(tmp_path):
    path = secret(tmp_path, "env", "A=1\n", 0o640)
    with pytest.raises(PolicyError, match="chmod 600"):
        credentials.read_env_file(path)


def test_env_file_not_utf8(tmp_path):
    path = tmp_path / "env"
    path.write_bytes(b"A=\xff\xfe\n")
    path.chmod(0o600)
    with pytest.raises(PolicyError, match="cannot be read"):
        credentials.read_env_file(str(path))


def test_credentials_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert credentials.restic_password_file("/etc/pw") == "/etc/pw"
    secret(tmp_path, "restic-password", "p" * 40, 0o400)
    assert credentials.restic_password_file("/etc/pw") == str(tmp_path / "restic-password")
    assert credentials.restic_password_file(None) == str(tmp_path / "restic-password")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    assert credentials.restic_password_file("/etc/pw") == "/etc/pw"
