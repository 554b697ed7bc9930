"""The recovery bundle: which path of the policy file a files snapshot holds, and that restore leaves it out."""

from __future__ import annotations

import os
from datetime import datetime, timezone

from vhbackup import files, runs
from vhbackup.policy import Policy, Repository
from vhbackup.restic import Snapshot


def policy_at(path, **kw) -> Policy:
    return Policy(source=str(path), repository=Repository(url="/r", password_file="/p"), host="h", **kw)


def test_the_policy_is_added_unless_a_saved_path_holds_it_or_an_exclude_matches_it(tmp_path):
    pol = tmp_path / "etc" / "policy.yml"
    pol.parent.mkdir()
    pol.write_text("host: h\n")
    assert files.bundle_paths(policy_at(pol), ["/srv"]) == [str(pol)]
    assert files.bundle_paths(policy_at(pol), [str(tmp_path / "etc")]) == []
    assert files.bundle_paths(policy_at(pol, exclude=("*.yml",)), ["/srv"]) == []
    link = tmp_path / "link.yml"
    os.symlink(pol, link)
    assert files.bundle_paths(policy_at(link), ["/srv"]) == [str(pol)]  # the file, not the link
    assert files.bundle_paths(policy_at(tmp_path / "gone.yml"), ["/srv"]) == []


def test_a_full_restore_names_every_path_but_the_policy(tmp_path):
    pol = str(tmp_path / "policy.yml")
    snap = Snapshot(id="a" * 64, time=datetime.now(timezone.utc), host="h",
                    tags=("vhbackup", "run:r1", "service:system"), paths=("/etc/app", pol, "/srv/x"))
    run = runs.Run("r1", (snap,))
    assert runs.includes(policy_at(pol, paths=("/etc/app", "/srv/x")), run, ("system",)) == ("/etc/app", "/srv/x")
    old = Snapshot(id="b" * 64, time=snap.time, host="h", tags=snap.tags, paths=("/etc/app", "/srv/x"))
    assert runs.includes(policy_at(pol, paths=("/etc/app", "/srv/x")), runs.Run("r0", (old,)), ("system",)) == ()
