"""repository.sftp, the ssh command restic runs, and how S3/SFTP failures are classified (no servers)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from vhbackup.errors import (AccessDenied, HostKeyMismatch, PolicyError, RepositoryFull, RepositoryMissing,
                             RepositoryUnreachable)
from vhbackup.policy import Repository, Sftp, load_policy
from vhbackup.restic import _RetryWatch, classify, classify_ssh, sftp_command, sftp_path, sftp_target


@pytest.fixture
def files(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("x" * 40 + "\n")
    pw.chmod(0o600)
    key = tmp_path / "key"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o600)
    known = tmp_path / "known_hosts"
    known.write_text("[h]:2222 ssh-ed25519 AAAA\n")
    return pw, key, known


def policy(tmp_path: Path, url: str, sftp: str) -> Path:
    path = tmp_path / "policy.yml"
    path.write_text(textwrap.dedent(f"""\
        repository:
          url: {url}
          password_file: {tmp_path}/pw
          sftp:
        """) + textwrap.indent(textwrap.dedent(sftp), "    "))
    return path


def test_sftp_options_parsed(tmp_path, files):
    _, key, known = files
    loaded = load_policy(policy(tmp_path, "sftp:backup@h:/srv/r", f"identity_file: {key}\n"
                                                                  f"known_hosts: {known}\nport: 2222\n"))
    assert loaded.repository.sftp == Sftp(identity_file=str(key), known_hosts=str(known), port=2222)


@pytest.mark.parametrize("url, sftp, line, words", [
    ("s3:s3.amazonaws.com/b", "port: 22\n", 5, "only for an sftp: repository"),
    ("sftp:u@h:/r", "port: 70000\n", 5, "must be a TCP port"),
    ("sftp:u@h:/r", "known_hosts: /nonexistent/kh\n", 5, "does not exist; pin the server's host key"),
    ("sftp:u@h:/r", "identity_file: /a b\n", 5, "without spaces"),
    ("sftp:u@h:/r", "strict: no\n", 5, "unknown key"),
])
def test_sftp_bad_options_are_one_line_with_file_and_line(tmp_path, files, url, sftp, line, words):
    with pytest.raises(PolicyError) as info:
        load_policy(policy(tmp_path, url, sftp))
    message = str(info.value)
    assert "\n" not in message and f"policy.yml:{line}: repository.sftp" in message and words in message, message


def test_too_open_identity_file_is_refused(tmp_path, files):
    _, key, _ = files
    key.chmod(0o644)
    with pytest.raises(PolicyError, match="chmod 600"):
        load_policy(policy(tmp_path, "sftp:u@h:/r", f"identity_file: {key}\n"))


def test_ssh_command_pins_host_keys_and_holds_no_secret():
    repo = Repository(url="sftp:backup@h.example:/srv/r", password_file="/pw", timeout=30,
                      sftp=Sftp(identity_file="/k", known_hosts="/kh", port=2222))
    assert sftp_command(repo) == [
        "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=30",
        "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3", "-p", "2222", "-i", "/k",
        "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=/kh", "-l", "backup", "h.example", "-s", "sftp"]
    plain = sftp_command(Repository(url="sftp://u@h:23//srv/r", password_file="/pw"))
    assert "StrictHostKeyChecking=yes" in plain and plain[-6:] == ["23", "-l", "u", "h", "-s", "sftp"]


@pytest.mark.parametrize("url, target, path", [
    ("sftp:u@h:/srv/r", ("u", "h", None), "/srv/r"),
    ("sftp:h:r", (None, "h", None), "r"),
    ("sftp://u@h:23//srv/r", ("u", "h", 23), "/srv/r"),
])
def test_sftp_url_parts(url, target, path):
    assert sftp_target(url) == target and sftp_path(url) == path


@pytest.mark.parametrize("stderr, kind", [
    ("Fatal: unable to open config file: Stat: The request signature we calculated does not match the "
     "signature you provided. Check your key and signing method.", AccessDenied),
    ("Fatal: unable to open config file: Stat: The AWS Access Key Id you provided does not exist in our records.",
     AccessDenied),
    ("Fatal: unable to open config file: Stat: The specified bucket does not exist", RepositoryMissing),
    ("Fatal: unable to save snapshot: Write: write /r/data/ab: no space left on device", RepositoryFull),
    ("Fatal: unable to open repository at sftp:u@h:/r: unable to start the sftp session, error: EOF",
     RepositoryUnreachable),
])
def test_classify_s3_and_sftp_wording(stderr, kind):
    error = classify(1, stderr, "s3:http://127.0.0.1:9/b", "/pw", "/p.yml")
    assert type(error) is kind and "\n" not in str(error)


def test_ssh_words():
    repo = Repository(url="sftp:u@h:/r", password_file="/pw", sftp=Sftp(known_hosts="/kh", port=2222))
    changed = "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed.\n"
    error = classify_ssh(255, changed, repo, "/p.yml")
    assert isinstance(error, HostKeyMismatch) and "not the one pinned in /kh" in str(error)
    unknown = "No ED25519 host key is known for [h]:2222 and you have requested strict checking.\n" \
              "Host key verification failed.\n"
    assert "is not pinned in /kh" in str(classify_ssh(255, unknown, repo, "/p.yml"))
    assert type(classify_ssh(255, "u@h: Permission denied (publickey).", repo, "/p.yml")) is AccessDenied
    refused = "ssh: connect to host h port 2222: Connection refused"
    assert type(classify_ssh(255, refused, repo, "/p.yml")) is RepositoryUnreachable
    assert classify_ssh(0, "", repo, "/p.yml") is None


def test_a_retried_error_no_retry_can_cure_stops_restic_at_once():
    watch = _RetryWatch(600)
    assert watch("Stat(<config/>) returned error, retrying after 1.2s: Stat: The specified bucket does not exist")
    assert "bucket does not exist" in watch.permanent
    other = _RetryWatch(600)
    assert not other("Load(<lock/ab>) returned error, retrying after 1.2s: connection refused")
    assert not other.permanent
