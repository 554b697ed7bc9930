"""The policy loader: every bad input is one PolicyError naming file, line and key."""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path

import pytest

from vhbackup.errors import EXIT_CONFIG, PolicyError
from vhbackup.policy import DEFAULT_CACHE_DIR, DEFAULT_STATE_DIR, load_policy

ROOT = Path(__file__).resolve().parents[2]
LONG_PASSWORD = "x" * 40


@pytest.fixture
def pw(tmp_path) -> Path:
    path = tmp_path / "pw"
    path.write_text(LONG_PASSWORD + "\n")
    path.chmod(0o600)
    return path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def error_of(path: Path) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.exit_code == EXIT_CONFIG
    message = str(info.value)
    assert "\n" not in message
    return info.value


def repo(pw: Path) -> str:
    return f"repository:\n  url: /srv/repo\n  password_file: {pw}\n"


def test_issue_minimal_policy_loads_as_written(tmp_path, pw):
    path = write(tmp_path, f"""
        repository:
          url: /srv/vhbackup/repo          # any restic repository
          password_file: {pw}
          # env_file: /etc/vhbackup/credentials/restic.env
        retention:
          last: 7
          daily: 30
          weekly: 52
          monthly: 36
          yearly: 5
        paths:
          - /etc/nginx
        exclude:
          - "*.tmp"
        services:
          agent:
            paths: [/srv/app/services/agent/data]
          hub:
            paths: [/srv/app/services/hub/data]
        """)
    p = load_policy(path)
    assert p.repository.url == "/srv/vhbackup/repo"
    assert p.repository.password_file == str(pw)
    assert p.repository.cache_dir == DEFAULT_CACHE_DIR
    assert p.state_dir == DEFAULT_STATE_DIR
    assert p.restic_binary == "restic"
    assert p.host == socket.gethostname()
    assert p.retention.rules() == {"last": 7, "daily": 30, "weekly": 52, "monthly": 36, "yearly": 5}
    assert p.paths == ("/etc/nginx",)
    assert p.exclude == ("*.tmp",)
    assert [(s.name, s.paths) for s in p.services] == [
        ("agent", ("/srv/app/services/agent/data",)), ("hub", ("/srv/app/services/hub/data",))]
    assert p.warnings == ()


SHIPPED = ROOT / "etc/vhbackup/policy.yml"


def uncommented(text: str, keys: tuple[str, ...] | None = None) -> str:
    """The template with its settings uncommented, as its header tells an admin to do.

    A setting starts with "#key:" in the first column and runs to the next
    empty line; ``keys`` limits it to those top-level keys.
    """
    out, inside = [], False
    for line in text.splitlines():
        if not line.strip():
            inside = False
        elif line.startswith("#") and line[1:2].isalpha():
            inside = keys is None or line[1:].split(":")[0] in keys
        if inside:
            out.append(line[1:])
    return "\n".join(out) + "\n"


def test_shipped_policy_is_the_unconfigured_template(tmp_path):
    """What apt installs sets nothing: the units skip their runs and every command says what to do."""
    from vhbackup.policy import is_template
    assert is_template(SHIPPED)
    err = error_of(SHIPPED)
    assert "not configured yet" in str(err) and "repository.url" in str(err)
    assert "/etc/vhbackup/credentials/restic-password" in str(err)


def test_template_detection_only_for_a_file_that_sets_nothing(tmp_path):
    from vhbackup.policy import is_template
    assert is_template(write(tmp_path, "# only comments\n\n   # and blanks\n"))
    assert is_template(write(tmp_path, ""))
    # anything set, even broken, is configured: the run must fail on it, loudly
    for text in ("repository:\n  url: /x\n", "bogus: 1\n", "repository: [unclosed\n", "~\n", "- a\n"):
        assert not is_template(write(tmp_path, text)), text
    assert not is_template(tmp_path / "missing.yml")
    (tmp_path / "policy.yml").write_bytes(b"\xff\xfe# not utf-8\n")
    assert not is_template(tmp_path / "policy.yml")


def test_shipped_template_settings_are_valid_once_uncommented(tmp_path, pw):
    """Every commented setting is real YAML with known keys, and the core ones load as documented."""
    text = SHIPPED.read_text()
    import yaml
    everything = yaml.safe_load(uncommented(text))
    assert set(everything) == {"repository", "host", "state_dir", "restic_binary", "metrics_file", "retention",
                               "checks", "verify", "paths", "exclude", "services", "databases", "concurrency",
                               "notify", "monitor"}
    core = uncommented(text, ("repository", "retention", "paths", "exclude", "services", "checks", "verify"))
    p = load_policy(write(tmp_path, core.replace("/etc/vhbackup/credentials/restic-password", str(pw))))
    assert p.repository.url == "/srv/vhbackup/repo" and p.repository.password_file == str(pw)
    assert p.retention.rules() == {"last": 7, "daily": 30, "weekly": 52, "monthly": 36, "yearly": 5}
    assert p.paths == ("/etc/nginx", "/srv/uploads-if-any") and p.optional_paths == ("/srv/uploads-if-any",)
    assert p.repository.timeout == 60
    assert [s.name for s in p.services] == ["agent", "hub"]
    assert p.warnings == ()


def test_top_level_keys_and_paths_are_normalised(tmp_path, pw):
    p = load_policy(write(tmp_path, repo(pw) + textwrap.dedent("""
        host: web01
        state_dir: /var/lib/x/
        restic_binary: /opt/restic
        paths: [/etc//nginx/, /srv/./a, //opt/b]
        """)))
    assert p.host == "web01"
    assert p.state_dir == "/var/lib/x"
    assert p.restic_binary == "/opt/restic"
    assert p.paths == ("/etc/nginx", "/srv/a", "/opt/b")


def test_missing_policy_file(tmp_path):
    err = error_of(tmp_path / "nope.yml")
    assert str(tmp_path / "nope.yml") in str(err)
    assert "not found" in str(err)


def test_yaml_syntax_error_names_file_and_line(tmp_path, pw):
    path = write(tmp_path, repo(pw) + "paths: [/a\nexclude: x\n")
    err = str(error_of(path))
    assert err.startswith(f"{path}:")
    line = int(err.split(":")[1])
    assert line in (4, 5), err
    assert "YAML syntax error" in err


def test_tab_indentation_is_a_syntax_error_with_a_line(tmp_path, pw):
    path = write(tmp_path, repo(pw) + "retention:\n\tlast: 3\n")
    err = str(error_of(path))
    assert err.startswith(f"{path}:5: YAML syntax error"), err


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path, text):
    path = write(tmp_path, text)
    err = str(error_of(path))
    assert err.startswith(f"{path}:1:") and "mapping" in err


def test_empty_policy(tmp_path):
    path = write(tmp_path, "# only a comment\n")
    assert "empty" in str(error_of(path))


@pytest.mark.parametrize("typo, line, key, suggestion", [
    ("pathz: [/a]\n", 4, "pathz", "paths"),
    ("retention:\n  dayly: 3\n", 5, "retention.dayly", "daily"),
    ("services:\n  hub:\n    path: [/a]\n", 6, "services.hub.path", "paths"),
])
def test_unknown_key_suggests_the_closest(tmp_path, pw, typo, line, key, suggestion):
    path = write(tmp_path, repo(pw) + typo)
    err = str(error_of(path))
    assert err.startswith(f"{path}:{line}: {key}: unknown key"), err
    assert f"did you mean '{suggestion}'" in err


def test_unknown_key_in_repository(tmp_path, pw):
    path = write(tmp_path, repo(pw) + "  passwd_file: /x\n")
    err = str(error_of(path))
    assert err.startswith(f"{path}:4: repository.passwd_file: unknown key"), err
    assert "password_file" in err


@pytest.mark.parametrize("extra, line, key, expect", [
    ("paths: /etc\n", 4, "paths", "must be a list"),
    ("exclude: '*.tmp'\n", 4, "exclude", "must be a list"),
    ("services:\n  hub:\n    paths: /srv\n", 6, "services.hub.paths", "must be a list"),
    ("retention:\n  daily: -1\n", 5, "retention.daily", "integer"),
    ("retention:\n  daily: 1.5\n", 5, "retention.daily", "integer"),
    ("retention:\n  daily: seven\n", 5, "retention.daily", "integer"),
    ("retention:\n  daily: '7'\n", 5, "retention.daily", "integer"),
    ("retention:\n  daily: true\n", 5, "retention.daily", "integer"),
    ("retention: 7\n", 4, "retention", "mapping"),
    ("services: [hub]\n", 4, "services", "mapping"),
    ("host: [a, b]\n", 4, "host", "string"),
    ("paths: [/a, [/b]]\n", 4, "paths[1]", "string"),
])
def test_wrong_types(tmp_path, pw, extra, line, key, expect):
    path = write(tmp_path, repo(pw) + extra)
    err = str(error_of(path))
    assert err.startswith(f"{path}:{line}: {key}: "), err
    assert expect in err


def test_missing_repository(tmp_path):
    path = write(tmp_path, "paths: [/a]\n")
    err = str(error_of(path))
    assert "repository" in err and "missing" in err


def test_missing_repository_url(tmp_path, pw):
    path = write(tmp_path, f"repository:\n  password_file: {pw}\n")
    err = str(error_of(path))
    assert err.startswith(f"{path}:") and "repository.url: missing" in err


def test_empty_repository_url(tmp_path, pw):
    path = write(tmp_path, f"repository:\n  url: ''\n  password_file: {pw}\n")
    assert "repository.url" in str(error_of(path))


def test_missing_password_file_key(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    path = write(tmp_path, "repository:\n  url: /srv/repo\n")
    assert "repository.password_file: missing" in str(error_of(path))


def test_password_file_that_does_not_exist(tmp_path):
    path = write(tmp_path, f"repository:\n  url: /srv/repo\n  password_file: {tmp_path}/nope\n")
    err = str(error_of(path))
    assert err.startswith(f"{path}:3: repository.password_file:") and f"{tmp_path}/nope" in err


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660])
def test_too_open_password_file(tmp_path, pw, mode):
    pw.chmod(mode)
    path = write(tmp_path, repo(pw))
    err = str(error_of(path))
    assert f"{mode:04o}" in err and f"chmod 600 {pw}" in err
    assert err.startswith(f"{path}:3: repository.password_file:")


def test_empty_password_file(tmp_path, pw):
    pw.write_text("\n")
    path = write(tmp_path, repo(pw))
    err = str(error_of(path))
    assert "empty" in err and str(pw) in err


def test_password_file_owned_by_another_user(tmp_path, pw):
    os.chown(pw, 65534, 65534)
    path = write(tmp_path, repo(pw))
    err = str(error_of(path))
    assert "65534" in err and str(pw) in err


def test_short_password_is_a_warning(tmp_path, pw):
    pw.write_text("tiny-pw\n")
    p = load_policy(write(tmp_path, repo(pw)))
    assert len(p.warnings) == 1 and "32" in p.warnings[0] and str(pw) in p.warnings[0]
    assert "tiny-pw" not in p.warnings[0]


def test_env_file_is_read(tmp_path, pw):
    env = tmp_path / "restic.env"
    env.write_text("# comment\n\nAWS_ACCESS_KEY_ID=AKIA123\nexport AWS_SECRET_ACCESS_KEY='s3cr=t'\nB2_X=\"q\"\n")
    env.chmod(0o600)
    p = load_policy(write(tmp_path, repo(pw) + f"  env_file: {env}\n"))
    assert p.repository.env == {"AWS_ACCESS_KEY_ID": "AKIA123", "AWS_SECRET_ACCESS_KEY": "s3cr=t", "B2_X": "q"}
    assert "s3cr" not in repr(p)


def test_env_file_malformed_line_names_line_without_echoing_it(tmp_path, pw):
    env = tmp_path / "restic.env"
    env.write_text("AWS_ACCESS_KEY_ID=AKIA123\nAWS_SECRET_ACCESS_KEY supersecret\n")
    env.chmod(0o600)
    path = write(tmp_path, repo(pw) + f"  env_file: {env}\n")
    err = str(error_of(path))
    assert f"{env}:2" in err and "KEY=value" in err
    assert "supersecret" not in err
    assert err.startswith(f"{path}:4: repository.env_file:")


def test_env_file_missing_or_not_a_file(tmp_path, pw):
    path = write(tmp_path, repo(pw) + f"  env_file: {tmp_path}/nope.env\n")
    assert f"{tmp_path}/nope.env" in str(error_of(path))
    (tmp_path / "dir.env").mkdir(mode=0o700)
    path = write(tmp_path, repo(pw) + f"  env_file: {tmp_path}/dir.env\n")
    assert "not a regular file" in str(error_of(path))


def test_env_file_too_open(tmp_path, pw):
    env = tmp_path / "restic.env"
    env.write_text("A=1\n")
    env.chmod(0o644)
    err = str(error_of(write(tmp_path, repo(pw) + f"  env_file: {env}\n")))
    assert f"chmod 600 {env}" in err


@pytest.mark.parametrize("name", ["'bad name'", "'../etc'", "'9lives'", "'a;rm'", "'ünï'", "''", "42"])
def test_service_name_must_be_identifier(tmp_path, pw, name):
    path = write(tmp_path, repo(pw) + f"services:\n  {name}:\n    paths: [/a]\n")
    err = str(error_of(path))
    assert err.startswith(f"{path}:5: services"), err
    assert "identifier" in err or "non-empty string" in err or "must be strings" in err


def test_service_name_system_is_reserved(tmp_path, pw):
    path = write(tmp_path, repo(pw) + "services:\n  system:\n    paths: [/a]\n")
    assert "reserved" in str(error_of(path))


def test_duplicate_service_names(tmp_path, pw):
    path = write(tmp_path, repo(pw) + "services:\n  hub:\n    paths: [/a]\n  hub:\n    paths: [/b]\n")
    err = str(error_of(path))
    assert err.startswith(f"{path}:7: services.hub: duplicate key (first given on line 5)"), err


def test_duplicate_top_level_key(tmp_path, pw):
    path = write(tmp_path, repo(pw) + "paths: [/a]\npaths: [/b]\n")
    assert "paths: duplicate key" in str(error_of(path))


@pytest.mark.parametrize("section, line, key", [
    ("paths: [/ok, relative/dir]\n", 4, "paths[1]"),
    ("services:\n  hub:\n    paths: [srv/hub]\n", 6, "services.hub.paths[0]"),
    ("state_dir: var/lib\n", 4, "state_dir"),
])
def test_relative_paths_are_refused(tmp_path, pw, section, line, key):
    path = write(tmp_path, repo(pw) + section)
    err = str(error_of(path))
    assert err.startswith(f"{path}:{line}: {key}: must be an absolute path"), err


def test_service_needs_paths_or_databases(tmp_path, pw):
    path = write(tmp_path, repo(pw) + "services:\n  hub: {}\n")
    assert "needs 'paths', 'volumes' or 'databases'" in str(error_of(path))


def test_credentials_directory_wins_over_password_file(tmp_path, pw, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "restic-password").write_text("y" * 40)
    (creds / "restic-password").chmod(0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    p = load_policy(write(tmp_path, repo(pw)))
    assert p.repository.password_file == str(creds / "restic-password")
    p = load_policy(write(tmp_path, "repository:\n  url: /srv/repo\n"))
    assert p.repository.password_file == str(creds / "restic-password")


def test_credentials_directory_without_the_credential_falls_back(tmp_path, pw, monkeypatch):
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "empty"))
    p = load_policy(write(tmp_path, repo(pw)))
    assert p.repository.password_file == str(pw)


def test_compression_values(tmp_path, pw):
    p = load_policy(write(tmp_path, repo(pw) + "  compression: max\n"))
    assert p.repository.compression == "max"
    err = str(error_of(write(tmp_path, repo(pw) + "  compression: fast\n")))
    assert "repository.compression" in err


@pytest.mark.parametrize("value", ["!!python/name:os.system x", "!!python/object/apply:os.system ['id']",
                                   "!foo bar", "!!int abc", "!!float '1e'", "!!timestamp 2001-13-45"])
def test_a_tag_that_cannot_be_built_is_one_line_naming_file_line_and_key(tmp_path, pw, value):
    error = error_of(write(tmp_path, f"{repo(pw)}host: {value}\n"))
    assert str(error).startswith(f"{tmp_path / 'policy.yml'}:4: host: "), error


def test_a_tagged_key_that_cannot_be_built_is_one_line(tmp_path, pw):
    error = error_of(write(tmp_path, f"{repo(pw)}? !foo x\n: 1\n"))
    assert f"{tmp_path / 'policy.yml'}:4:" in str(error)


def test_merge_keys_are_refused_plainly(tmp_path, pw):
    error = error_of(write(tmp_path, f"repository:\n  <<: {{url: /x}}\n  password_file: {pw}\n"))
    assert "policy.yml:2: repository: YAML merge keys" in str(error)


def test_a_quoted_path_keeps_its_blanks_it_is_a_literal_name(tmp_path, pw):
    """"/srv/a " is another directory than /srv/a: stripping it would back up (and restore over) the wrong one."""
    policy = load_policy(write(tmp_path, f'{repo(pw)}paths: ["/srv/a ", "/srv/b\\tc"]\n'))
    assert policy.paths == ("/srv/a ", "/srv/b\tc")


@pytest.mark.parametrize("section", ['host: "a\\0b"', 'exclude: ["x\\0y"]', 'restic_binary: "/usr/bin/re\\0stic"',
                                     'paths: ["/srv/a\\0"]'])
def test_a_nul_anywhere_is_refused_by_the_policy_not_a_traceback_at_spawn(tmp_path, pw, section):
    error = error_of(write(tmp_path, f"{repo(pw)}{section}\n"))
    assert "NUL" in str(error) and "policy.yml:4:" in str(error)


@pytest.mark.parametrize("host", ['"web\\nOK: all good"', '"a\\tb"', '"x\\x1b[2J"', '"x\\x7f"'])
def test_a_host_with_control_characters_is_refused(tmp_path, pw, host):
    error = error_of(write(tmp_path, f"{repo(pw)}host: {host}\n"))
    assert "host: must be printable characters on one line" in str(error)


@pytest.mark.parametrize("unit", ["--now", "-.mount", "web*", "app?.service", "app[12].service", "a b.service",
                                  "x;reboot"])
def test_a_unit_that_is_an_option_or_a_pattern_is_refused(tmp_path, pw, unit):
    """systemctl would read '--now' as an option, and expand 'web*' over every loaded unit: 'start web*'
    after the backup would start units that were not running before."""
    error = error_of(write(tmp_path, f"{repo(pw)}services:\n  app:\n    paths: [/srv/app]\n    units: ['{unit}']\n"))
    assert "policy.yml:7: services.app.units[0]: a systemd unit name" in str(error)


def test_ordinary_unit_names_are_kept(tmp_path, pw):
    units = ["nginx", "php8.2-fpm.service", "getty@tty1.service", "srv-data.mount", "a\\x2db.service", "x:y.socket"]
    policy = load_policy(write(tmp_path, f"{repo(pw)}services:\n  app:\n    paths: [/srv/app]\n"
                                         f"    units: {units!r}\n".replace("\\\\", "\\")))
    assert policy.service("app").units == tuple(units)


def test_a_path_holding_another_services_path_is_warned_about(tmp_path, pw):
    from vhbackup.policy import overlaps
    policy = load_policy(write(tmp_path, f"{repo(pw)}paths: [/srv]\nservices:\n  a:\n    paths: [/srv/a]\n"
                                         f"  b:\n    paths: [/srv/a, /opt/b]\n  c:\n    paths: [/srv/ab]\n"))
    assert policy.warnings == ()  # said by config check only, not by every run
    warnings = overlaps(policy)
    text = "\n".join(warnings)
    assert "/srv of service system holds /srv/a of service a" in text
    assert "/srv/a of service a holds /srv/a of service b" in text
    assert "/srv/a of service a holds /srv/ab" not in text
    assert len(warnings) == 5, warnings  # system>a, system>b, system>c, a>b, b>a


@pytest.mark.parametrize("value", ["30d", "0.5s", "99999999 weeks"])
def test_a_lock_wait_timeout_the_servers_cannot_take_is_refused(tmp_path, pw, value):
    """'30d' passed the check, then every PostgreSQL dump failed: lock_timeout is at most 2^31-1 ms."""
    error = error_of(write(tmp_path, f"{repo(pw)}databases:\n  shop:\n    type: postgresql\n"
                                     f"    lock_wait_timeout: {value}\n"))
    assert "policy.yml:7: databases.shop.lock_wait_timeout: must be between 1s and 24h" in str(error)


def test_a_port_beyond_65535_is_refused(tmp_path, pw):
    error = error_of(write(tmp_path, f"{repo(pw)}databases:\n  shop:\n    type: postgresql\n    port: 99999\n"))
    assert "policy.yml:7: databases.shop.port: must be a TCP port from 1 to 65535" in str(error)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_a_policy_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path, kind):
    """A FIFO hung 'status' (monitoring calls it every minute) for ever; /dev/zero filled memory."""
    import threading
    path = tmp_path / "policy.yml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path = Path("/dev/zero")
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(pytest.raises(PolicyError, load_policy, path)),
                              daemon=True)
    worker.start()
    worker.join(10)
    assert outcome, "load_policy blocked"
    assert "not a regular file" in str(outcome[0].value)

def test_monitor_and_spot_settings_of_the_template_load(tmp_path, pw):
    text = uncommented(SHIPPED.read_text(), ("repository", "verify", "monitor"))
    url_file = tmp_path / "hc-url"
    url_file.write_text("https://hc-ping.com/0b2f7c1e-5d7a-4b9e-8f3c-2a1d6e9b4c70\n")
    url_file.chmod(0o600)
    text = text.replace("/etc/vhbackup/credentials/restic-password", str(pw)).replace(
        "/etc/vhbackup/credentials/healthchecks-url", str(url_file))
    p = load_policy(write(tmp_path, text))
    assert p.verify.spot is False and p.verify.spot_sample == 50
    assert (p.verify.spot_files_tolerance, p.verify.spot_size_tolerance, p.verify.spot_changed_tolerance) == (5, 10, 50)
    [hc] = p.monitor.pings
    assert hc.kind == "healthchecks" and hc.url.endswith("4c70") and hc.timeout == 10 and hc.retries == 2
    assert "0b2f7c1e-5d7a-4b9e-8f3c-2a1d6e9b4c70" not in repr(p)
    from vhbackup import state
    assert "0b2f7c1e-5d7a-4b9e-8f3c-2a1d6e9b4c70" in state.secrets_of(p)


@pytest.mark.parametrize("db_type,option", [("postgresql", "--fil=/tmp/x"), ("postgresql", "--form=t"),
                                            ("postgresql", "--vers"), ("mariadb", "--res=/tmp/x"),
                                            ("mariadb", "--xm"), ("mariadb", "--defaults-f=/tmp/my.cnf"),
                                            ("mariadb", "--skip-comm")])
def test_an_abbreviated_refused_dump_option_is_refused_too(tmp_path, pw, db_type, option):
    """pg_dump and mariadb-dump take any unambiguous start of a long option: --fil=/tmp/x is --file=/tmp/x."""
    error = error_of(write(tmp_path, f"{repo(pw)}databases:\n  d:\n    type: {db_type}\n    names: [x]\n"
                                     f"    options: ['{option}']\n"))
    assert f"databases.d.options[0]: option {option!r} is not allowed" in str(error)


@pytest.mark.parametrize("db_type,option", [("postgresql", "--no-owner"), ("postgresql", "--exclude-table=t"),
                                            ("mariadb", "--quick"), ("mariadb", "--tables"),
                                            ("mariadb", "--skip-lock-tables"), ("mariadb", "--comments")])
def test_ordinary_dump_options_stay_allowed(tmp_path, pw, db_type, option):
    policy = load_policy(write(tmp_path, f"{repo(pw)}databases:\n  d:\n    type: {db_type}\n    names: [x]\n"
                                         f"    options: ['{option}']\n"))
    assert policy.database("d").options == (option,)
