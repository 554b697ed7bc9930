"""``repositories:``: named repositories, one primary, copies, append-only ones; errors name file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from vhbackup import state
from vhbackup.errors import EXIT_CONFIG, PolicyError
from vhbackup.policy import DEFAULT_REPOSITORY_NAME, load_policy


@pytest.fixture
def pw(tmp_path) -> Path:
    path = tmp_path / "pw"
    path.write_text("p" * 40 + "\n")
    path.chmod(0o600)
    return path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def error_of(path: Path) -> str:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.exit_code == EXIT_CONFIG
    assert "\n" not in str(info.value)
    return str(info.value)


def three(pw: Path, extra: str = "", second: str = "", third: str = "") -> str:
    return f"""
    repositories:
      local:
        url: /srv/repo
        password_file: {pw}
      offsite:
        url: rest:http://backup.example:8000/host/
        password_file: {pw}{second}
      cold:
        url: /mnt/cold/repo
        password_file: {pw}{third}
    retention:
      daily: 7
    {extra}"""


def test_one_repository_is_the_default_primary(tmp_path, pw):
    p = load_policy(write(tmp_path, f"repository:\n  url: /srv/repo\n  password_file: {pw}\n"))
    assert p.repository.name == DEFAULT_REPOSITORY_NAME and p.repository.role == "primary"
    assert p.repositories == (p.repository,) and p.copies == ()
    assert p.repo("default") is p.repository
    assert p.retention_of(p.repository) == p.retention


def test_the_first_is_primary_and_the_others_copies(tmp_path, pw):
    p = load_policy(write(tmp_path, three(pw)))
    assert [r.name for r in p.repositories] == ["local", "offsite", "cold"]
    assert [r.role for r in p.repositories] == ["primary", "copy", "copy"]
    assert p.repository.name == "local" and [r.name for r in p.copies] == ["offsite", "cold"]
    assert p.retention_of(p.repo("cold")).daily == 7


def test_an_explicit_primary_comes_first(tmp_path, pw):
    p = load_policy(write(tmp_path, three(pw, second="\n        role: primary")))
    assert p.repository.name == "offsite"
    assert [r.name for r in p.copies] == ["local", "cold"]


def test_own_retention_and_append_only(tmp_path, pw):
    p = load_policy(write(tmp_path, three(pw, second="\n        append_only: true\n        retention:\n"
                                                     "          within: 30d\n          monthly: 12")))
    off = p.repo("offsite")
    assert off.append_only and off.retention.within == "30d" and p.retention_of(off).monthly == 12
    assert not p.repo("local").append_only


def test_append_only_needs_within(tmp_path, pw):
    path = write(tmp_path, three(pw, second="\n        append_only: true"))
    err = error_of(path)
    assert err.startswith(f"{path}:8: repositories.offsite.append_only:") and "within" in err, err


def test_append_only_with_the_policys_within(tmp_path, pw):
    text = three(pw, second="\n        append_only: true").replace("daily: 7", "daily: 7\n      within: 14d")
    assert load_policy(write(tmp_path, text)).repo("offsite").append_only


def test_two_primaries(tmp_path, pw):
    path = write(tmp_path, three(pw, second="\n        role: primary", third="\n        role: primary"))
    err = error_of(path)
    assert err.startswith(f"{path}:12: repositories.cold.role: a second primary"), err


def test_no_primary(tmp_path, pw):
    text = three(pw).replace(f"password_file: {pw}\n      offsite", f"password_file: {pw}\n        role: copy\n"
                                                                   f"      offsite")
    path = write(tmp_path, text)
    err = error_of(path)
    assert err.startswith(f"{path}:5: repositories.local.role: no repository is the primary"), err


def test_unknown_role(tmp_path, pw):
    path = write(tmp_path, three(pw, third="\n        role: mirror"))
    err = error_of(path)
    assert err.startswith(f"{path}:11: repositories.cold.role: unknown role 'mirror'"), err


def test_duplicate_name(tmp_path, pw):
    path = write(tmp_path, three(pw).replace("cold:", "local:"))
    err = error_of(path)
    assert err.startswith(f"{path}:8: repositories.local: duplicate key (first given on line 2)"), err


def test_same_url_twice(tmp_path, pw):
    path = write(tmp_path, three(pw).replace("/mnt/cold/repo", "/srv/repo"))
    err = error_of(path)
    assert err.startswith(f"{path}:9: repositories.cold.url: the same repository as 'local'"), err


def test_bad_name(tmp_path, pw):
    path = write(tmp_path, three(pw).replace("cold:", "'cold storage':"))
    err = error_of(path)
    assert err.startswith(f"{path}:8:") and "repository name must be a plain identifier" in err, err


def test_unknown_key(tmp_path, pw):
    path = write(tmp_path, three(pw, third="\n        appendonly: true"))
    err = error_of(path)
    assert err.startswith(f"{path}:11: repositories.cold.appendonly: unknown key; did you mean 'append_only'?"), err


def test_both_shapes_refused(tmp_path, pw):
    path = write(tmp_path, f"repository:\n  url: /x\n  password_file: {pw}\n"
                 + textwrap.dedent(three(pw)).lstrip("\n"))
    err = error_of(path)
    assert "not both" in err and err.startswith(f"{path}:"), err


def test_empty_repositories(tmp_path):
    path = write(tmp_path, "repositories: {}\n")
    assert "at least one repository" in error_of(path)


def test_unknown_repository_name(tmp_path, pw):
    p = load_policy(write(tmp_path, three(pw)))
    with pytest.raises(PolicyError) as info:
        p.repo("nas")
    assert "no repository named 'nas'" in str(info.value) and "local, offsite, cold" in str(info.value)


def test_secrets_cover_every_repository(tmp_path, pw):
    other = tmp_path / "pw2"
    other.write_text("q" * 40 + "\n")
    other.chmod(0o600)
    env = tmp_path / "s3.env"
    env.write_text("AWS_ACCESS_KEY_ID=AKIAEXAMPLEKEY\nAWS_SECRET_ACCESS_KEY=very-secret-key-value\n")
    env.chmod(0o600)
    text = three(pw, second=f"\n        env_file: {env}").replace(
        f"/mnt/cold/repo\n        password_file: {pw}", f"/mnt/cold/repo\n        password_file: {other}")
    text = text.replace("rest:http://backup", "rest:http://user:resturlsecret@backup")
    found = state.secrets_of(load_policy(write(tmp_path, text)))
    for secret in ("p" * 40, "q" * 40, "very-secret-key-value", "AKIAEXAMPLEKEY", "resturlsecret"):
        assert secret in found
