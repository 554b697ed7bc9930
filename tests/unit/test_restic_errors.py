"""restic.classify: a lock reported as restic >= 0.15's JSON error is read from its text, not quoted raw."""

from __future__ import annotations

import json

from vhbackup.commands.backup import _one_error
from vhbackup.errors import RepositoryLocked
from vhbackup.restic import classify


def _locked(seconds: float) -> str:
    message = ("unable to create lock in backend: repository is already locked exclusively by PID 4242 on web01 "
               f"by root (UID 0, GID 0)\nlock was created at 2026-11-30 06:33:32 ({seconds}s ago)\nstorage ID f8520b85")
    return json.dumps({"message_type": "exit_error", "code": 11, "message": message})


def test_a_json_lock_error_names_the_holder_without_json():
    error = classify(11, _locked(4.2), "/srv/repo", "/etc/pw", "policy.yml")
    assert isinstance(error, RepositoryLocked)
    assert "(unable to create lock in backend: repository is already locked exclusively by PID 4242 on web01 by " \
           "root (UID 0, GID 0))" in str(error)
    assert "message_type" not in str(error) and "{" not in str(error)


def test_jobs_blocked_by_the_same_lock_make_one_typed_error():
    """Each job's restic saw the lock at another age: still one error, of the lock's type and exit code."""
    failures = [classify(11, _locked(s), "/srv/repo", "/etc/pw", "policy.yml") for s in (1.5, 2.7, 4.0)]
    error = _one_error(failures)
    assert isinstance(error, RepositoryLocked) and error.exit_code == 75
    assert str(error).count("is locked by another restic process") == 1


def test_snapshots_restic_could_not_load_are_found_in_both_versions_wording():
    """restic skips a snapshot file it cannot load and exits 0; only this line tells (0.14, then 0.18)."""
    from vhbackup.restic import unloadable_snapshots
    stderr = ('could not load snapshot cee27dc2: load <snapshot/cee27dc29b>: invalid data returned\n'
              'Ignoring "e5766b6ca35ab47e": failed to load snapshot e5766b6c: LoadRaw(<snapshot/e5766b6c>): '
              'invalid data returned\nrepository 1a2b3c opened\n')
    assert unloadable_snapshots(stderr) == ["cee27dc2", "e5766b6c"]
    assert unloadable_snapshots("using parent snapshot 1a2b3c4d\n") == []
