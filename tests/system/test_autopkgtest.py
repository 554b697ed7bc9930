"""debian/tests (autopkgtest) against the built .deb, on a booted Debian 12 and Debian 13 as testbed.

Debian's `autopkgtest` runs on the host (Debian 12's, from the test dependencies) with its ssh
virtualisation server; the testbed is a booted container of the release under test, systemd its PID 1.
The connection needs no network port: ssh's ProxyCommand starts `sshd -i` inside the container (nsenter)
for each connection, with a key made for this test. The units test declares "needs-root,
isolation-container" (it starts services under systemd): the container, booted for this test alone and
thrown away after it, is such a testbed, and the ssh server is told so with --capability (its documented
way for a testbed it cannot inspect). Why not the null server inside the container: Debian 13's
autopkgtest refuses isolation for null (the runner shares the testbed), Debian 12's claims it anyway, so
one of the two would skip or fake; with ssh both releases run the same way. The source is the .dsc
`make deb` built, unpacked as autopkgtest gets it.
"""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture(scope="module")
def source_tree(package_dir, tmp_path_factory):
    [dsc] = package_dir.glob("vhbackup_*.dsc")
    target = tmp_path_factory.mktemp("autopkgtest-src") / "vhbackup"
    subprocess.run(["dpkg-source", "--no-check", "-x", str(dsc), str(target)], check=True, capture_output=True,
                   timeout=120)
    return target


def ssh_config(box, tmp_path) -> str:
    """An ssh client configuration for the host "testbed": root in ``box``, through `sshd -i` started inside."""
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vhbackup-autopkgtest", "-f", str(key)],
                   check=True, timeout=60)
    box.run("install", "-d", "-m", "700", "/root/.ssh")
    box.put("/root/.ssh/authorized_keys", key.with_suffix(".pub").read_text(), mode=0o600)
    config = tmp_path / "ssh_config"
    config.write_text(f"""Host testbed
    User root
    IdentityFile {key}
    IdentitiesOnly yes
    ProxyCommand nsenter -t {box.leader} -a /usr/bin/env -i /usr/sbin/sshd -i
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
""")
    probe = subprocess.run(["ssh", "-F", str(config), "testbed", "cat /etc/debian_version"], capture_output=True,
                           text=True, timeout=60)
    assert probe.returncode == 0, f"ssh into the testbed failed: {probe.stderr}"
    return str(config)


def test_autopkgtest_smoke_and_units_pass(boot, deb, source_tree, release, tmp_path):
    box = boot("autopkgtest")
    config = ssh_config(box, tmp_path)
    out = tmp_path / "autopkgtest-out"
    result = subprocess.run(["autopkgtest", "--output-dir", str(out), str(deb), str(source_tree), "--",
                             "ssh", "--hostname", "testbed", "--login", "root", f"--options=-F {config}",
                             "--capability", "isolation-container"],
                            capture_output=True, text=True, timeout=1200)
    summary = (out / "summary").read_text() if (out / "summary").exists() else "(no summary)"
    log = (out / "log").read_text(errors="replace") if (out / "log").exists() else result.stdout + result.stderr
    results = dict(line.split()[:2] for line in summary.splitlines() if len(line.split()) >= 2)
    assert results == {"smoke": "PASS", "units": "PASS"}, f"{summary}\n{log[-6000:]}"
    assert result.returncode == 0, f"autopkgtest exited {result.returncode} (2: something was skipped):\n{log[-6000:]}"
    assert "smoke: OK" in log and "units: OK" in log, log[-6000:]
    # it tested this package, on this release
    version = deb.name.split("_")[1]
    installed = box.run("dpkg-query", "-W", "-f", "${Version}", "vhbackup", check=False).stdout
    assert installed == version or f"vhbackup version {version}" in log, log[:3000]
    assert box.run("sh", "-c", ". /etc/os-release; echo $VERSION_CODENAME").stdout.strip() == release
