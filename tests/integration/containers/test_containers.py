"""Services and databases in real podman containers: stop/start guarantees, dumps inside containers, volumes.

The compose project (module fixture ``stack``) has MariaDB, PostgreSQL and
a web service with a named volume. Service ``hub`` stops the compose
service ``web`` only; its databases are dumped inside their own
containers, which keep running. Whether a container was stopped and
started again is read from its ``State.StartedAt``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.conftest import make_env, restic_for
from tests.integration.containers.conftest import container_policy, podman, snapshots, vh_popen


def test_backup_stops_exactly_the_selected_containers_and_restores_row_for_row(env, stack, lone_container):
    env.write_policy(**container_policy(env, stack))
    assert env.vh("init").returncode == 0
    web, pg, maria = stack.container("web"), stack.container("pg"), stack.container("maria")
    before = {n: stack.started_at(n) for n in (web, pg, maria, lone_container)}
    dry = env.vh("backup", "--dry-run")
    assert dry.returncode == 0 and f"stopping and restarting containers (podman): {web}" in dry.stdout, dry.stdout
    pg_rows, maria_rows = stack.pg_fingerprint("hub"), stack.maria_fingerprint("shop")
    result = env.vh("backup")
    assert result.returncode == 0, result.stderr
    after = {n: stack.started_at(n) for n in before}
    assert after[web] != before[web] and stack.running(web), "web was stopped and started again"
    assert all(after[n] == before[n] for n in (pg, maria, lone_container)), "nothing else was stopped"
    assert snapshots(env, "db:hubpg") and snapshots(env, "db:shop")

    # damage everything, then restore the service in place
    stack.psql("DELETE FROM items WHERE id > 100", "hub")
    stack.maria("UPDATE items SET name = 'broken'", "shop")
    podman("exec", "-i", web, "sh", "-c", "echo defaced > /srv/www/index.html")
    restored = env.vh("restore", "--latest", "--service", "hub", "--yes")
    assert restored.returncode == 0, restored.stderr
    assert stack.pg_fingerprint("hub") == pg_rows
    assert stack.maria_fingerprint("shop") == maria_rows
    assert podman("exec", web, "cat", "/srv/www/index.html").stdout == b"<h1>hub</h1>\n"
    assert stack.running(web)

    # beside the original, inside the container
    into = env.vh("restore", "--latest", "--database", "hubpg", "--into-database", "hub_copy", "--yes")
    assert into.returncode == 0, into.stderr
    try:
        assert stack.pg_fingerprint("hub_copy") == pg_rows
    finally:
        stack.psql("DROP DATABASE IF EXISTS hub_copy")


def test_failed_dump_inside_the_container_saves_nothing_and_restarts_the_containers(env, stack):
    policy = container_policy(env, stack)
    policy["databases"]["hubpg"]["names"] = ["nosuchdb"]
    env.write_policy(**policy)
    assert env.vh("init").returncode == 0
    web = stack.container("web")
    before = stack.started_at(web)
    result = env.vh("backup")
    assert result.returncode == 1
    assert 'database "nosuchdb" does not exist' in result.stderr and "nothing was saved" in result.stderr
    assert snapshots(env, "db:hubpg") == []
    assert snapshots(env, "db:shop"), "the other database is still saved"
    assert stack.running(web) and stack.started_at(web) != before


def _hold_lock(stack) -> subprocess.Popen:
    """A session that holds an exclusive lock on hub.items, so pg_dump waits inside the container."""
    locker = subprocess.Popen(["podman", "exec", "-i", stack.container("pg"), "psql", "-X", "-q", "-p",
                               str(stack.pg_port), "-U", "postgres", "-d", "hub", "-c",
                               "BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if stack.psql("SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND granted "
                      "AND relation = 'items'::regclass", "hub") == "1":
            return locker
        time.sleep(0.2)
    raise AssertionError("the lock was not taken")


def _release(stack, locker: subprocess.Popen) -> None:
    stack.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' "
               "AND pid <> pg_backend_pid()")
    locker.wait(timeout=30)


def _wait_for(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _pg_dump_running(stack) -> bool:
    return podman("exec", stack.container("pg"), "pgrep", "-x", "pg_dump", check=False).returncode == 0


@pytest.mark.parametrize("sig", ["TERM", "KILL"])
def test_dump_killed_inside_the_container_saves_nothing(env, stack, sig):
    env.write_policy(**container_policy(env, stack))
    assert env.vh("init").returncode == 0
    web = stack.container("web")
    locker = _hold_lock(stack)
    try:
        run = vh_popen(env, "backup", "--service", "hub", stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        _wait_for(lambda: _pg_dump_running(stack), "pg_dump inside the container")
        assert not stack.running(web), "web is stopped while the dump runs"
        podman("exec", stack.container("pg"), "pkill", f"-{sig}", "-x", "pg_dump")
        _, err = run.communicate(timeout=120)
    finally:
        _release(stack, locker)
    assert run.returncode == 1, err
    if sig == "KILL":
        assert f"killed by SIGKILL inside container {stack.container('pg')}" in err
    else:  # pg_dump catches SIGTERM and says so
        assert "pg_dump failed (exit 1): pg_dump: terminated by user" in err
    assert snapshots(env, "db:hubpg") == []
    assert stack.running(web)


def test_sigterm_of_vhbackup_stops_the_dump_inside_and_restarts_the_containers(env, stack):
    env.write_policy(**container_policy(env, stack))
    assert env.vh("init").returncode == 0
    web = stack.container("web")
    locker = _hold_lock(stack)
    try:
        run = vh_popen(env, "backup", "--service", "hub", stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        _wait_for(lambda: _pg_dump_running(stack), "pg_dump inside the container")
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=120)
        assert run.returncode != 0
        assert not _pg_dump_running(stack), "the dump inside the container was stopped too"
    finally:
        _release(stack, locker)
    assert snapshots(env, "db:hubpg") == []
    assert stack.running(web)


def test_sigkill_of_vhbackup_then_recover_starts_the_containers_again(env, stack):
    env.write_policy(**container_policy(env, stack))
    assert env.vh("init").returncode == 0
    web = stack.container("web")
    locker = _hold_lock(stack)
    try:
        run = vh_popen(env, "backup", "--service", "hub", stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        _wait_for(lambda: _pg_dump_running(stack), "pg_dump inside the container")
        run.kill()
        run.wait(timeout=30)
        assert not stack.running(web), "a killed run cannot start what it stopped"
        assert web in (env.state_dir / "stopped-units.json").read_text()
        recovered = env.vh("recover", "--no-unlock")
        assert recovered.returncode == 0, recovered.stderr
        assert stack.running(web)
        assert not (env.state_dir / "stopped-units.json").exists()
    finally:
        _release(stack, locker)
    assert snapshots(env, "db:hubpg") == []


def test_missing_container_is_one_line_naming_it(env, stack):
    policy = container_policy(env, stack)
    policy["services"]["hub"]["containers"] = ["vhbt_no_such_box"]
    env.write_policy(**policy)
    assert env.vh("init").returncode == 0
    web = stack.container("web")
    before = stack.started_at(web)
    result = env.vh("backup")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "container vhbt_no_such_box does not exist" in lines[-1], result.stderr
    assert stack.started_at(web) == before, "nothing was stopped"
    check = env.vh("config", "check")
    assert check.returncode == 0 and "container vhbt_no_such_box does not exist" in check.stdout


def test_the_docker_command_works_the_same(env, stack):
    """podman-docker's ``docker`` (a real Docker engine cannot run here): backup, restore --into-database."""
    policy = container_policy(env, stack, container_engine="/usr/bin/docker")
    env.write_policy(**policy)
    assert env.vh("init").returncode == 0
    web = stack.container("web")
    before = stack.started_at(web)
    assert env.vh("backup").returncode == 0
    assert stack.started_at(web) != before and stack.running(web)
    into = env.vh("restore", "--latest", "--database", "shop", "--into-database", "shop_copy", "--yes")
    assert into.returncode == 0, into.stderr
    try:
        assert stack.maria_fingerprint("shop_copy") == stack.maria_fingerprint("shop")
    finally:
        stack.maria("DROP DATABASE IF EXISTS shop_copy")


def test_no_secret_on_a_command_line_or_in_podman_inspect(env, stack, secret, tmp_path):
    """A MariaDB password reaches the dump inside the container as MYSQL_PWD copied by ``exec -e NAME``."""
    from tests.conftest import write_secret
    user = "vhbt_pw"
    stack.maria(f"CREATE USER IF NOT EXISTS '{user}'@'localhost' IDENTIFIED BY '{secret}'; "
                f"GRANT ALL ON *.* TO '{user}'@'localhost'")
    try:
        policy = container_policy(env, stack)
        policy["databases"]["shop"].update(user=user, password_file=write_secret(tmp_path / "pw", secret))
        policy["services"]["hub"]["databases"] = ["shop"]
        env.write_policy(**policy)
        assert env.vh("init").returncode == 0
        run = vh_popen(env, "backup", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen, scans = [], 0
        while run.poll() is None:
            scans += 1
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as fh:
                            cmdline = fh.read()
                    except OSError:
                        continue
                    if secret.encode() in cmdline:
                        seen.append(cmdline)
                    if b"\x00exec\x00-i\x00" in cmdline and b"mariadb-dump" in cmdline:
                        assert b"\x00-e\x00MYSQL_PWD\x00" in cmdline  # the exec client gets the name only
        out, err = run.communicate()
        assert run.returncode == 0, err
        assert scans > 3 and seen == []
        inspect = podman("inspect", stack.container("maria")).stdout
        assert secret.encode() not in inspect
        assert secret not in out + err
        for path in env.state_dir.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
    finally:
        stack.maria(f"DROP USER IF EXISTS '{user}'@'localhost'")


@pytest.fixture
def podman_service(tmp_path):
    """podman's API service on a private socket (what podman.socket provides under systemd)."""
    sock = tmp_path / "podman.sock"
    service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(sock.exists, "podman's API socket", timeout=20)
    yield f"unix://{sock}"
    service.terminate()
    service.wait(timeout=30)


def test_backup_as_the_hardened_unit_runs_it_through_the_podman_api_service(env, stack, podman_service):
    """The drop-in's setting (CONTAINER_HOST) under the sandbox's limits that can be reproduced without systemd
    as PID 1: a read-only file system except the run's own directory, only CAP_DAC_READ_SEARCH and CAP_FOWNER,
    no new privileges. podman then only talks to its service: stop/start, exec and volumes all work."""
    env.write_policy(**container_policy(env, stack))
    assert env.vh("init").returncode == 0
    web = stack.container("web")
    before = stack.started_at(web)
    from tests.conftest import ROOT
    (env.dir / "tmp").mkdir()  # the unit's PrivateTmp=yes: a private, writable /tmp
    script = (f'mount --make-rprivate / && mount --bind "$1" "$1" && mount -o remount,bind,ro / && '
              f'exec setpriv --no-new-privs --inh-caps=-all --bounding-set=-all,+dac_read_search,+fowner '
              f'env CONTAINER_HOST={podman_service} PYTHONPATH={ROOT} TMPDIR="$1/tmp" '
              f'/usr/bin/python3 -m vhbackup -c "$2" backup')
    result = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(env.dir), str(env.policy_file)],
                            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert stack.started_at(web) != before and stack.running(web)
    assert snapshots(env, "db:hubpg") and snapshots(env, "db:shop")


def test_a_name_that_is_only_another_containers_id_prefix_is_missing_not_that_container(tmp_path, stack, lone_container):
    """The engine resolves an unknown name as an id prefix: 'containers: [db]' with no container called db
    stopped whatever container's id began with "db", and 'container: db' dumped (and restored into) its
    databases. Only a container of that exact name (or full id) is meant."""
    env = make_env(tmp_path, restic_for("0.14"))  # nothing here depends on restic's version
    lone_id = podman("inspect", "--format", "{{.Id}}", lone_container).stdout.decode().strip()
    prefix = lone_id[:12]
    before = stack.started_at(lone_container)
    stop_it = container_policy(env, stack)
    stop_it["services"]["hub"]["containers"] = [prefix]
    dump_in_it = container_policy(env, stack)
    dump_in_it["databases"]["shop"] = {"type": "mariadb", "container": prefix}
    for policy in (stop_it, dump_in_it):
        env.write_policy(**policy)
        assert env.vh("init").returncode == 0
        result = env.vh("backup")
        assert result.returncode == 1
        assert f"container {prefix} does not exist" in result.stderr, result.stderr
        assert stack.started_at(lone_container) == before, "the container whose id starts so was stopped"
        check = env.vh("config", "check")
        assert f"container {prefix} does not exist" in check.stdout, check.stdout
    assert not snapshots(env, "db:shop")
    # its full id and its exact name still name it
    for name in (lone_id, lone_container):
        stop_it["services"]["hub"]["containers"] = [name]
        env.write_policy(**stop_it)
        dry = env.vh("backup", "--dry-run")
        assert dry.returncode == 0 and lone_container in dry.stdout, dry.stdout + dry.stderr


def test_a_volume_name_that_only_begins_another_volumes_name_is_missing_not_that_volume(tmp_path, stack):
    """podman takes a unique partial volume name: 'volumes: [hub_data]' with only hub_data_old present backed
    up hub_data_old as if it were hub_data (success, the wrong data), and an in-place restore wrote into it
    instead of creating hub_data."""
    env = make_env(tmp_path, restic_for("0.14"))  # nothing here depends on restic's version
    import secrets as _secrets
    name = f"vhbt_vol_{_secrets.token_hex(3)}"
    podman("volume", "create", f"{name}_old")
    try:
        policy = container_policy(env, stack)
        policy["services"] = {"files": {"volumes": [name]}}
        policy["databases"] = {}
        env.write_policy(**policy)
        assert env.vh("init").returncode == 0
        result = env.vh("backup")
        assert result.returncode == 1 and f"volume {name} of service files does not exist" in result.stderr, \
            result.stderr
        check = env.vh("config", "check")
        assert f"volume {name}" in check.stdout and "does not exist" in check.stdout, check.stdout
        # the real one backed up, then lost: the restore makes it again and leaves name_old alone
        podman("volume", "create", name)
        mount = podman("volume", "inspect", "--format", "{{.Mountpoint}}", name).stdout.decode().strip()
        with open(os.path.join(mount, "data.txt"), "w") as fh:
            fh.write("the real volume\n")
        assert env.vh("backup").returncode == 0
        podman("volume", "rm", name)
        restored = env.vh("restore", "--latest", "--service", "files", "--yes")
        assert restored.returncode == 0, restored.stderr
        again = podman("volume", "inspect", "--format", "{{.Mountpoint}}", name).stdout.decode().strip()
        with open(os.path.join(again, "data.txt")) as fh:
            assert fh.read() == "the real volume\n"
        old = podman("volume", "inspect", "--format", "{{.Mountpoint}}", f"{name}_old").stdout.decode().strip()
        assert os.listdir(old) == []
    finally:
        podman("volume", "rm", "-f", f"{name}_old", check=False)
        podman("volume", "rm", "-f", name, check=False)


def test_a_scaled_service_stops_only_its_running_containers_and_a_stopped_one_stays_stopped(tmp_path, stack,
                                                                                             podman_image):
    """web scaled to 3: web_2 runs, web_3 was stopped by the admin before the backup. The backup stops and
    starts web_1 and web_2; web_3 stays stopped, also after a failed dump."""
    from tests.integration.containers.conftest import PROJECT_LABEL, free_port
    env = make_env(tmp_path, restic_for("0.14"))  # nothing here depends on restic's version
    extra = {}
    try:
        for number in (2, 3):
            name = f"{stack.project}_web_{number}"
            podman("run", "-d", "--name", name, "--network", "host", "--label", f"{PROJECT_LABEL}={stack.project}",
                   "--label", "com.docker.compose.service=web", "--label",
                   f"com.docker.compose.container-number={number}", "-e", f"PORT={free_port()}", podman_image,
                   "vh-web")
            extra[number] = name
        podman("stop", "-t", "0", extra[3])
        policy = container_policy(env, stack)
        env.write_policy(**policy)
        assert env.vh("init").returncode == 0
        web1 = f"{stack.project}_web_1"
        before = {n: stack.started_at(n) for n in (web1, extra[2], extra[3])}
        dry = env.vh("backup", "--dry-run")
        assert extra[3] not in dry.stdout and extra[2] in dry.stdout, dry.stdout
        for expect in (0, 1):
            if expect == 1:
                policy["databases"]["shop"]["names"] = ["no_such_db"]
                env.write_policy(**policy)
            result = env.vh("backup")
            assert result.returncode == expect, result.stderr
            assert stack.running(web1) and stack.running(extra[2])
            assert not stack.running(extra[3]), "a container stopped before the backup was started"
            assert stack.started_at(extra[3]) == before[extra[3]]
    finally:
        for name in extra.values():
            podman("rm", "-f", "-t", "0", name, check=False)
