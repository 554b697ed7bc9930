"""service_units.stopped: which units are stopped and started, also when a signal interrupts the run.

systemctl is replaced by a recorder here (there is no booted systemd in the
unit tests); the system test proves the same with real units under systemd.
"""

from __future__ import annotations

import os
import signal

import pytest

from vhbackup import proc, service_units
from vhbackup.errors import VhError


class FakeSystemd:
    def __init__(self, active, on_call=None, start_results=None):
        self.active = set(active)
        self.calls: list[tuple[str, str]] = []
        self.on_call = on_call or {}
        self.start_results = list(start_results or [])

    def systemctl(self, *args):
        verb, unit = args[0], args[-1]
        self.calls.append((verb, unit))
        code = 0
        if verb == "is-active":
            code = 0 if unit in self.active else 3
        elif verb == "stop":
            self.active.discard(unit)
        elif verb == "start":
            code = self.start_results.pop(0) if self.start_results else 0
            if code == 0:
                self.active.add(unit)
        hook = self.on_call.get((verb, unit))
        if hook:
            hook()
        return proc.Result(("systemctl", *args), code, "", "" if code == 0 else "failed")


@pytest.fixture
def fake(monkeypatch):
    def make(*args, **kwargs):
        systemd = FakeSystemd(*args, **kwargs)
        monkeypatch.setattr(service_units, "_systemctl", systemd.systemctl)
        return systemd
    return make


def interrupt():
    os.kill(os.getpid(), signal.SIGINT)


def changes(systemd):
    return [c for c in systemd.calls if c[0] != "is-active"]


def test_only_running_units_are_stopped_and_started_again(fake):
    systemd = fake(active={"hub.service"})
    with service_units.stopped(["hub.service", "idle.service"]):
        assert systemd.active == set()
    assert changes(systemd) == [("stop", "hub.service"), ("start", "hub.service")]
    assert systemd.active == {"hub.service"}


def test_started_again_after_a_failure_inside(fake):
    systemd = fake(active={"a.service", "b.service"})
    with pytest.raises(VhError, match="dump failed"):
        with service_units.stopped(["a.service", "b.service"]):
            raise VhError("dump failed")
    assert systemd.active == {"a.service", "b.service"}


def test_sigint_during_the_stop_still_starts_the_unit_again(fake):
    systemd = fake(active={"a.service", "b.service"}, on_call={("stop", "a.service"): interrupt})
    with pytest.raises(KeyboardInterrupt):
        with service_units.stopped(["a.service", "b.service"]):
            pytest.fail("the body must not run after the interrupt")
    assert changes(systemd) == [("stop", "a.service"), ("start", "a.service")]
    assert systemd.active == {"a.service", "b.service"}


def test_sigint_while_starting_again_is_held_until_every_unit_is_back(fake):
    systemd = fake(active={"a.service", "b.service"}, on_call={("start", "a.service"): interrupt})
    with pytest.raises(KeyboardInterrupt):
        with service_units.stopped(["a.service", "b.service"]):
            pass
    assert systemd.active == {"a.service", "b.service"}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_start_killed_by_the_signal_is_repeated(fake):
    systemd = fake(active={"a.service"}, start_results=[-signal.SIGINT, 0])
    with service_units.stopped(["a.service"]):
        pass
    assert changes(systemd) == [("stop", "a.service"), ("start", "a.service"), ("start", "a.service")]


def test_a_unit_that_does_not_come_back_fails_the_run(fake):
    systemd = fake(active={"a.service", "b.service"}, start_results=[1, 1, 0])
    with pytest.raises(VhError, match=r"a.service did not start again.*systemctl status a.service"):
        with service_units.stopped(["a.service", "b.service"]):
            pass
    assert "b.service" in systemd.active


def test_a_failed_stop_fails_before_the_body_and_restarts(fake):
    systemd = fake(active={"a.service"})
    original = systemd.systemctl

    def stop_fails(*args):
        result = original(*args)
        if args[0] == "stop":
            systemd.active.add("a.service")
            return proc.Result(result.argv, 1, "", "Job failed")
        return result

    service_units._systemctl = stop_fails
    with pytest.raises(VhError, match="could not stop a.service: Job failed"):
        with service_units.stopped(["a.service"]):
            pytest.fail("body ran")
    assert ("start", "a.service") in systemd.calls


def test_every_systemctl_call_ends_its_options_before_the_unit(monkeypatch):
    """A unit name is never read as an option, whatever the policy let through."""
    seen = []

    def record(*args):
        seen.append(args)
        return proc.Result(("systemctl", *args), 0, "", "")

    monkeypatch.setattr(service_units, "_systemctl", record)
    with service_units.stopped(["hub.service"]):
        pass
    assert [a[0] for a in seen] == ["is-active", "stop", "start"]
    assert all(a[-2:] == ("--", "hub.service") for a in seen), seen
