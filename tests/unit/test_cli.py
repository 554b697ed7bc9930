"""The command line contract that needs no repository: usage errors, config discovery, config check.

restic_binary points at a path that does not exist, so any test in which a
command reached restic would fail with exit 1 ("command not found") instead
of the exit code asserted here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NO_RESTIC = "/nonexistent/restic"


def make_policy(tmp_path: Path, password: str = "p" * 40, **extra) -> Path:
    pw = tmp_path / "pw"
    pw.write_text(password + "\n")
    pw.chmod(0o600)
    policy = {"repository": {"url": str(tmp_path / "repo"), "password_file": str(pw),
                             "cache_dir": str(tmp_path / "cache")},
              "state_dir": str(tmp_path / "state"), "restic_binary": NO_RESTIC,
              "paths": ["/etc/hostname"],
              "services": {"hub": {"paths": ["/srv/hub"]}, "agent": {"paths": ["/srv/agent"]}}}
    policy.update(extra)
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(policy))
    return path


def vh(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items()
            if k not in ("DRY_RUN", "VHBACKUP_CONFIG", "JOURNAL_STREAM", "CREDENTIALS_DIRECTORY")}
    full["PYTHONPATH"] = str(ROOT)
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "vhbackup", *args], env=full, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("args", [
    ["restore", "--snapshot", "a;rm -rf /"],
    ["restore", "--snapshot", "--", "-abcdef"],
    ["restore", "--snapshot=--help-me"],
    ["restore", "--snapshot", "../../etc"],
    ["restore", "--snapshot", "abc"],
    ["restore", "--latest", "--service", "bad name"],
    ["restore", "--latest", "--service", "nosuch"],
    ["restore", "--latest", "--service", "hub;ls"],
    ["restore", "--latest", "--json"],
    ["backup", "--service", "nosuch"],
    ["backup", "--service", "-x"],
    ["backup", "--service", "../hub"],
])
def test_cli_ids_and_service_names_are_checked_before_restic(tmp_path, args):
    policy = make_policy(tmp_path)
    result = vh("-c", str(policy), *args)
    assert result.returncode == 2, result.stderr
    assert "command not found" not in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("args", [[], ["frobnicate"], ["restore"], ["restore", "--list", "--latest"],
                                  ["backup", "--files-only", "--databases-only"], ["--wait", "soon", "backup"],
                                  ["config"]])
def test_argparse_usage_errors_exit_2(tmp_path, args):
    result = vh("-c", str(make_policy(tmp_path)), *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_service_names_the_known_ones(tmp_path):
    line = one_line_error(vh("-c", str(make_policy(tmp_path)), "backup", "--service", "hbu"))
    assert "'hbu'" in line and "hub" in line and "agent" in line


def test_config_check_summary(tmp_path):
    result = vh("-c", str(make_policy(tmp_path, retention={"daily": 7, "within": "2d"})), "config", "check")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"policy {tmp_path}/policy.yml: valid" in out
    assert "service hub: /srv/hub" in out and "service agent: /srv/agent" in out
    assert "daily 7" in out and "within 2d" in out
    assert "warning: /srv/hub does not exist: a backup now would be partial" in out  # the policy names absent paths
    assert result.stderr == ""


def test_config_check_warns_about_a_short_password_and_exits_0(tmp_path):
    result = vh("-c", str(make_policy(tmp_path, password="tiny-password")), "config", "check")
    assert result.returncode == 0
    assert "shorter than 32 characters" in result.stderr
    assert "tiny-password" not in result.stderr + result.stdout
    assert "warning:" in result.stdout


def test_config_from_environment_then_option(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = make_policy(tmp_path / "a")
    b = make_policy(tmp_path / "b")
    result = vh("config", "check", env={"VHBACKUP_CONFIG": str(a)})
    assert result.returncode == 0 and f"policy {a}: valid" in result.stdout
    result = vh("-c", str(b), "config", "check", env={"VHBACKUP_CONFIG": str(a)})
    assert result.returncode == 0 and f"policy {b}: valid" in result.stdout
    result = vh("config", "check", "--config", str(b), env={"VHBACKUP_CONFIG": str(a)})
    assert result.returncode == 0 and f"policy {b}: valid" in result.stdout
    result = vh("backup", "--dry-run", "-c", str(b), env={"VHBACKUP_CONFIG": str(a)})
    assert result.returncode == 0 and str(tmp_path / "b" / "repo") in result.stdout


def test_missing_config_via_environment(tmp_path):
    result = vh("config", "check", env={"VHBACKUP_CONFIG": str(tmp_path / "nope.yml")})
    assert result.returncode == 78
    assert str(tmp_path / "nope.yml") in one_line_error(result)


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes"])
def test_dry_run_from_environment(tmp_path, value):
    result = vh("-c", str(make_policy(tmp_path)), "backup", env={"DRY_RUN": value})
    assert result.returncode == 0, result.stderr
    assert "dry run" in result.stdout and "/srv/hub" in result.stdout
    assert not (tmp_path / "state").exists()


def test_dry_run_false_is_a_real_run(tmp_path):
    result = vh("-q", "-c", str(make_policy(tmp_path)), "backup", env={"DRY_RUN": "false"})
    assert result.returncode == 1
    assert "command not found" in one_line_error(result)  # it looked for restic: a real run
    assert "dry run" not in result.stdout
    assert (tmp_path / "state" / "last-backup.json").exists()


def test_missing_restic_binary_is_one_line(tmp_path):
    result = vh("-c", str(make_policy(tmp_path)), "init")
    assert result.returncode == 1
    line = one_line_error(result)
    assert NO_RESTIC in line and "restic_binary" in line


def test_version_and_help():
    assert vh("--version").stdout.startswith("vhbackup ")
    result = vh("restore", "--help")
    assert result.returncode == 0 and "--snapshot" in result.stdout and "exit codes" in result.stdout


@pytest.mark.parametrize("args", [["--wait", "backup", "--dry-run"], ["--wait", "2h", "backup", "--dry-run"],
                                  ["backup", "--dry-run", "--wait"], ["backup", "--wait", "30m", "--dry-run"]])
def test_wait_with_and_without_a_value(tmp_path, args):
    result = vh("-c", str(make_policy(tmp_path)), *args)
    assert result.returncode == 0, result.stderr
    assert "dry run" in result.stdout


def test_bare_wait_gets_the_default():
    from vhbackup.cli import _bare_wait
    assert _bare_wait(["--wait", "backup"]) == ["--wait", "1h", "backup"]
    assert _bare_wait(["--wait", "5m", "backup"]) == ["--wait", "5m", "backup"]
    assert _bare_wait(["-c", "x", "--wait", "prune", "--wait", "verify"]) == [
        "-c", "x", "--wait", "1h", "prune", "--wait", "1h", "verify"]


def test_a_timed_out_child_is_stopped_with_its_own_signal_first(tmp_path):
    """restic removes its lock on SIGINT only: a child that outlives its time limit gets its signal, not SIGKILL."""
    from vhbackup import proc
    seen, left = tmp_path / "seen", tmp_path / "left"
    script = f"trap 'echo INT > {seen}; exit 130' INT; sleep 30.25 >/dev/null 2>&1 & echo $! > {left}; wait"
    started = time.monotonic()
    with pytest.raises(proc.TimedOut):
        proc.run(["sh", "-c", script], timeout=1, stop_signal=signal.SIGINT)
    assert seen.read_text() == "INT\n"
    # what it left running (the background sleep ignores SIGINT) is killed after the grace, not waited for
    assert time.monotonic() - started < 10 + proc.STOP_GRACE
    pid = int(left.read_text())
    try:  # the pid may already belong to another process (pid_max may be 32768)
        still = proc._started(pid) is not None and b"30.25" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        still = False
    assert not still, "the child's background sleep is still running"


def test_unconfigured_template_is_explained_by_every_command(tmp_path):
    """The policy as the package ships it: config check says what to set (exit 78), status is UNKNOWN."""
    template = tmp_path / "policy.yml"
    template.write_text((ROOT / "etc/vhbackup/policy.yml").read_text())
    check = vh("-c", str(template), "config", "check")
    assert check.returncode == 78
    line = one_line_error(check)
    assert "not configured yet" in line and "repository.url" in line and str(template) in line
    backup = vh("-c", str(template), "backup")
    assert backup.returncode == 78 and "not configured yet" in one_line_error(backup)
    status = vh("-c", str(template), "status")
    assert (status.returncode, status.stderr) == (3, "")
    assert status.stdout.startswith("UNKNOWN: not configured yet:") and len(status.stdout.splitlines()) == 1
    status = vh("-c", str(template), "status", "--json")
    facts = yaml.safe_load(status.stdout)
    assert status.returncode == 3 and facts["level"] == "UNKNOWN" and facts["configured"] is False


def test_if_configured_skips_only_the_template(tmp_path):
    """ExecCondition= semantics: 1 (skip) for the template; 0 for any configured policy, valid or not."""
    template = tmp_path / "template.yml"
    template.write_text((ROOT / "etc/vhbackup/policy.yml").read_text())
    result = vh("-c", str(template), "config", "check", "--if-configured")
    assert (result.returncode, result.stderr) == (1, "")
    assert "not configured yet" in result.stdout
    env = {"VHBACKUP_CONFIG": str(template)}
    assert vh("config", "check", "--if-configured", env=env).returncode == 1

    valid = make_policy(tmp_path)
    result = vh("-c", str(valid), "config", "check", "--if-configured")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    broken = tmp_path / "broken.yml"
    broken.write_text("repository:\n  url: /srv/repo\n  pasword_file: /nope\n")
    assert vh("-c", str(broken), "config", "check", "--if-configured").returncode == 0
    broken_check = vh("-c", str(broken), "config", "check")
    assert broken_check.returncode == 78 and "pasword_file" in one_line_error(broken_check)
    assert vh("-c", str(tmp_path / "missing.yml"), "config", "check", "--if-configured").returncode == 0
