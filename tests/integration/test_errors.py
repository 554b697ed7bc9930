"""Bad input through the real CLI: exit 78, one line naming file/line/key, nothing touched.

Also the restic-side failures a user meets: wrong password (78), no
repository (1, says to run 'vhbackup init'), restic binary missing (1).
"""

from __future__ import annotations

import os
import re
import secrets
import textwrap

import pytest

from tests.conftest import make_env, restic_for


@pytest.fixture
def local(tmp_path):
    """An Env whose policy is written by hand (bad input tests never reach restic)."""
    return make_env(tmp_path, restic_for("0.14"))


def good_head(env) -> str:
    return textwrap.dedent(f"""\
        repository:
          url: {env.repo_url}
          password_file: {env.password_file}
          cache_dir: {env.dir}/cache
        state_dir: {env.state_dir}
        restic_binary: {env.restic}
        """)


def assert_untouched(env) -> None:
    for name in ("repo", "state", "cache"):
        assert not (env.dir / name).exists(), f"{name} was created"


def run_bad(env, *, line: int | None, key: str | None, must: tuple[str, ...] = ()) -> str:
    """Run init, backup and restore; each must exit 78 with one line and change nothing."""
    for command in (["init"], ["backup"], ["restore", "--latest", "--target", str(env.dir / "t")],
                    ["config", "check"]):
        result = env.vh(*command)
        assert result.returncode == 78, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert result.stdout == ""
        message = lines[0]
        assert str(env.policy_file) in message or (must and must[0] in message), message
        if line is not None:
            assert f"{env.policy_file}:{line}:" in message, message
        if key is not None:
            assert f" {key}:" in message, message
        for text in must:
            assert text in message, message
        assert_untouched(env)
        assert not (env.dir / "t").exists()
    return message


def write(env, text: str) -> None:
    env.policy_file.write_text(text)


def test_missing_policy_file(local):
    message = run_bad(local, line=None, key=None, must=(str(local.policy_file), "not found", "--config"))
    assert message.startswith("vhbackup: error: ")


def test_yaml_syntax_error(local):
    write(local, good_head(local) + "paths: [/srv/a\nexclude: ['*.tmp']\n")
    run_bad(local, line=8, key=None, must=("YAML syntax error",))


def test_top_level_not_a_mapping(local):
    write(local, "- repository\n- paths\n")
    run_bad(local, line=1, key=None, must=("mapping",))


def test_unknown_key_with_suggestion(local):
    write(local, good_head(local) + "retention:\n  daily: 7\n  weekley: 4\n")
    run_bad(local, line=9, key="retention.weekley", must=("unknown key", "did you mean 'weekly'"))


def test_unknown_top_level_key_with_suggestion(local):
    write(local, good_head(local) + "exclude: []\nservice:\n  hub:\n    paths: [/srv]\n")
    run_bad(local, line=8, key="service", must=("did you mean 'services'",))


def test_string_where_list_expected(local):
    write(local, good_head(local) + "paths: /srv/app\n")
    run_bad(local, line=7, key="paths", must=("must be a list",))


@pytest.mark.parametrize("value", ["-1", "2.5", "many"])
def test_bad_retention_count(local, value):
    write(local, good_head(local) + f"retention:\n  last: 3\n  daily: {value}\n")
    run_bad(local, line=9, key="retention.daily", must=("integer",))


def test_missing_repository_url(local):
    text = good_head(local).replace(f"  url: {local.repo_url}\n", "")
    write(local, text)
    run_bad(local, line=None, key="repository.url", must=("missing",))


def test_missing_password_file(local):
    local.password_file.unlink()
    write(local, good_head(local))
    run_bad(local, line=3, key="repository.password_file", must=(str(local.password_file), "does not exist"))


def test_empty_password_file(local):
    local.password_file.write_text("")
    write(local, good_head(local))
    run_bad(local, line=3, key="repository.password_file", must=("empty",))


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_too_open_password_file(local, mode):
    local.password_file.chmod(mode)
    write(local, good_head(local))
    run_bad(local, line=3, key="repository.password_file",
            must=(f"{mode:04o}", f"chmod 600 {local.password_file}"))


def test_password_file_owned_by_another_user(local):
    os.chown(local.password_file, 65534, 65534)
    write(local, good_head(local))
    run_bad(local, line=3, key="repository.password_file", must=("uid 65534",))


def test_unreadable_env_file(local):
    env_file = local.dir / "restic.env"
    env_file.mkdir(mode=0o700)
    write(local, good_head(local).replace("  cache_dir", f"  env_file: {env_file}\n  cache_dir"))
    run_bad(local, line=4, key="repository.env_file", must=(str(env_file),))


def test_env_file_malformed_line(local):
    env_file = local.dir / "restic.env"
    env_file.write_text("AWS_ACCESS_KEY_ID=AKIAEXAMPLE\nAWS_SECRET_ACCESS_KEY: wJalrXUtnFEMI\n")
    env_file.chmod(0o600)
    write(local, good_head(local).replace("  cache_dir", f"  env_file: {env_file}\n  cache_dir"))
    message = run_bad(local, line=4, key="repository.env_file", must=(f"{env_file}:2", "KEY=value"))
    assert "wJalrXUtnFEMI" not in message


@pytest.mark.parametrize("name", ["'hub app'", "'hub/..'", "'$(id)'"])
def test_service_name_not_an_identifier(local, name):
    write(local, good_head(local) + f"services:\n  {name}:\n    paths: [/srv/hub]\n")
    run_bad(local, line=8, key=None, must=("service name", "identifier"))


def test_duplicate_service_names(local):
    write(local, good_head(local) + "services:\n  hub:\n    paths: [/a]\n  agent:\n    paths: [/b]\n"
                                    "  hub:\n    paths: [/c]\n")
    run_bad(local, line=12, key="services.hub", must=("duplicate key", "line 8"))


def test_relative_path(local):
    write(local, good_head(local) + "services:\n  hub:\n    paths: [/srv/ok, srv/hub/data]\n")
    run_bad(local, line=9, key="services.hub.paths[1]", must=("absolute path", "'srv/hub/data'"))


# --- restic-side failures -------------------------------------------------------------------------

def test_wrong_password(any_env, sample_tree):
    env = any_env
    env.write_policy(paths=[str(sample_tree / "etc")])
    assert env.vh("init").returncode == 0
    env.password_file.write_text(secrets.token_urlsafe(33) + "\n")
    for command in (["backup"], ["restore", "--list"], ["verify"]):
        result = env.vh("-q", *command)
        assert result.returncode == 78, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and "wrong password" in lines[0] and str(env.password_file) in lines[0], lines
    assert env.password_file.read_text().strip() not in result.stderr


def test_missing_repository(any_env, sample_tree):
    env = any_env
    env.write_policy(paths=[str(sample_tree / "etc")])
    for command in (["backup"], ["restore", "--list"], ["restore", "--latest", "--target", str(env.dir / "t")],
                    ["verify"]):
        result = env.vh("-q", *command)
        assert result.returncode == 1, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and "vhbackup init" in lines[0] and env.repo_url in lines[0], lines
    assert not (env.dir / "repo").exists()
    assert not (env.dir / "t").exists()


def test_missing_restic_binary(local, sample_tree):
    local.restic = "/nonexistent/restic"
    local.write_policy(paths=[str(sample_tree / "etc")])
    for command in (["init"], ["backup"], ["restore", "--list"]):
        result = local.vh("-q", *command)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and re.search(r"/nonexistent/restic: command not found", lines[0]), lines


def test_unreachable_rest_server_is_not_called_missing(local, sample_tree):
    """restic 0.14 reports a refused connection as "unable to open config file" too.

    (restic 0.18 keeps retrying an unreachable server for many minutes, so only 0.14 is run here.)
    """
    from tests.conftest import free_port
    local.repo_url = f"rest:http://backup:hunter2secret@127.0.0.1:{free_port()}/repo/"
    local.write_policy(paths=[str(sample_tree / "etc")])
    for command in (["init"], ["restore", "--list"]):
        result = local.vh("-q", *command, timeout=120)
        assert result.returncode == 1, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and "cannot reach repository" in lines[0], lines
        assert "hunter2secret" not in result.stderr and "backup:***@" in lines[0]
