"""Pure logic of the container support: policy keys, the exec command line, reading the tool's own status."""

from __future__ import annotations

import pytest

from vhbackup import containers, proc
from vhbackup.databases.runner import Command, Runner
from vhbackup.errors import PolicyError
from vhbackup.policy import load_policy


@pytest.fixture
def pw(tmp_path):
    path = tmp_path / "pw"
    path.write_text("x" * 40 + "\n")
    path.chmod(0o600)
    return path


def policy_file(tmp_path, pw, body: str):
    path = tmp_path / "policy.yml"
    path.write_text(f"repository: {{url: /srv/r, password_file: {pw}}}\n" + body)
    return path


def test_services_and_databases_in_containers_are_parsed(tmp_path, pw):
    p = load_policy(policy_file(tmp_path, pw, """
container_engine: podman
services:
  hub:
    containers: [hub-proxy]
    compose: {project: hub, services: [web, worker]}
    volumes: [hub_data]
    databases: [hubdb]
databases:
  hubdb: {type: postgresql, compose: {project: hub, service: db}, container_user: postgres}
  shop: {type: mariadb, container: shop-db}
"""))
    hub = p.service("hub")
    assert hub.containers == ("hub-proxy",) and hub.compose == (("hub", "web"), ("hub", "worker"))
    assert hub.volumes == ("hub_data",) and hub.paths == ()
    assert p.database("hubdb").compose == ("hub", "db") and p.database("hubdb").container_user == "postgres"
    assert p.database("shop").container == "shop-db" and p.database("shop").container_engine == "podman"


@pytest.mark.parametrize("body, line, message", [
    ("container_engine: lxc\n", 2, "must be docker, podman"),
    ("services:\n  hub:\n    paths: [/srv]\n    containers: ['-rm']\n", 5, "container name must be"),
    ("services:\n  hub:\n    paths: [/srv]\n    containers: [{a: b}]\n", 5, "container name must be"),
    ("services:\n  hub:\n    paths: [/srv]\n    compose: {project: Hub, services: [web]}\n", 5,
     "compose project name"),
    ("services:\n  hub:\n    paths: [/srv]\n    compose: {project: hub, services: []}\n", 5, "at least one"),
    ("services:\n  hub:\n    volumes: ['../x']\n", 4, "volume name"),
    ("databases:\n  d: {type: mariadb, container: a, compose: {project: p, service: s}}\n", 3, "not both"),
    ("databases:\n  d: {type: mariadb, container_user: root}\n", 3, "only for a database with"),
])
def test_bad_container_keys_name_file_line_and_key(tmp_path, pw, body, line, message):
    path = policy_file(tmp_path, pw, body)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert str(err.value).startswith(f"{path}:{line}:") and message in str(err.value), str(err.value)


def test_exec_argv_carries_secret_names_only():
    runner = Runner("podman", "hub-db", "postgres")
    step = runner.step(Command(("pg_dump", "hub"), {"PGAPPNAME": "vhbackup"}, {"PGPASSWORD": "s3cret"}))
    assert "s3cret" not in " ".join(step.argv)
    assert step.argv[:8] == ("podman", "exec", "-i", "--user", "postgres", "-e", "PGAPPNAME=vhbackup", "-e")
    assert step.argv[8] == "PGPASSWORD" and step.env == {"PGPASSWORD": "s3cret"}
    assert step.argv[9:12] == ("hub-db", "sh", "-c") and step.argv[-2:] == ("pg_dump", "hub")
    assert step.argv[13].startswith("vhbackup-exec-") and step.on_stop is not None


def test_host_runner_puts_secrets_in_the_tool_environment():
    step = Runner().step(Command(("pg_dump", "hub"), {"A": "1"}, {"PGPASSWORD": "s3cret"}))
    assert step.argv == ("pg_dump", "hub") and step.env == {"A": "1", "PGPASSWORD": "s3cret"}


def ended(code: int, *lines: str) -> proc.Ended:
    return proc.Ended("podman", code, tuple(lines))


TOKEN = "vhbackup-exec-0123456789abcdef"


def test_the_tools_own_status_is_judged_not_the_clients():
    ok = containers.tool_status("podman", "db", ended(0, f"vhbackup-exec-status {TOKEN} 0"), TOKEN)
    assert ok.ok and ok.stderr == ()
    failed = containers.tool_status("podman", "db", ended(2, "mariadb-dump: Got error",
                                                          f"vhbackup-exec-status {TOKEN} 2"), TOKEN)
    assert failed.returncode == 2 and failed.stderr == ("mariadb-dump: Got error",)
    killed = containers.tool_status("podman", "db", ended(137, f"vhbackup-exec-status {TOKEN} 137"), TOKEN)
    assert not killed.ok and "killed by SIGKILL inside container db" in killed.stderr[-1]


def test_a_client_that_ended_0_without_the_status_line_is_a_failure():
    """podman exec exits 0 when it is sent SIGTERM itself, while the tool goes on: never a success."""
    lost = containers.tool_status("podman", "db", ended(0), TOKEN)
    assert not lost.ok and "without the tool's exit status" in lost.stderr[-1]


@pytest.mark.parametrize("code, line, expect", [
    (125, "Error: no container with name or ID \"db\" found: no such container", "failed (exit 125): Error: no"),
    (255, "Error: can only create exec sessions on running containers", "failed (exit 255)"),
    (127, "Error: runc: exec failed: exec: \"sh\": executable file not found", "command not found"),
    (1, "Error response from daemon: container db is not running", "failed (exit 1): Error response"),
])
def test_engine_failures_become_clear_errors(code, line, expect):
    result = containers.tool_status("docker", "db", ended(code, line), TOKEN)
    assert not result.ok and expect in result.stderr[-1], result.stderr[-1]


def test_engine_detection_prefers_the_setting_then_a_docker_daemon_then_podman(monkeypatch, tmp_path):
    assert containers.detect("/usr/bin/docker") == "/usr/bin/docker"
    monkeypatch.setattr(containers, "DOCKER_SOCKETS", (str(tmp_path / "none.sock"),))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Exception, match="neither podman nor docker"):
        containers.detect(None)
    for name in ("docker", "podman"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    assert containers.detect(None) == "podman"
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/docker.sock")
    assert containers.detect(None) == "docker"


def test_a_status_line_the_tool_printed_itself_is_not_its_status():
    """The container was stopped mid-dump, so the wrapper never printed its line; the tool had printed one
    (an error quoting a table name that holds a line break): that is not the tool's exit status."""
    forged = containers.tool_status("podman", "db", ended(137, "pg_dump: error: table \"x", "vhbackup-exec-status 0",
                                                          "vhbackup-exec-status vhbackup-exec-0000000000000000 0"),
                                    TOKEN)
    assert not forged.ok
