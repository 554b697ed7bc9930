"""scratch.clean_leftovers: what killed runs left, and nothing else."""

from __future__ import annotations

from vhbackup import scratch
from vhbackup.context import new_run_id
from vhbackup.policy import Policy, Repository


def test_only_scratch_directories_named_like_a_run_are_removed(tmp_path):
    """cache_dir may be a directory the admin shares (cache_dir: /srv): a drill must never empty someone's
    /srv/drill/ or /srv/verify/ that it did not make."""
    cache = tmp_path / "cache"
    policy = Policy(source=str(tmp_path / "policy.yml"), host="web01", state_dir=str(tmp_path / "state"),
                    repository=Repository(url="/srv/repo", password_file=str(tmp_path / "pw"), cache_dir=str(cache)))
    left = cache / "drill" / new_run_id()
    (left / "srv").mkdir(parents=True)
    theirs = [cache / "drill" / "notes", cache / "verify" / "2026-report", cache / "verify" / "20260101-000000-abcd.bak"]
    for path in theirs:
        path.mkdir(parents=True)
        (path / "keep.txt").write_text("mine\n")
    assert scratch.clean_leftovers(policy, drop=lambda db, name: None) == []
    assert not left.exists()
    assert all((p / "keep.txt").read_text() == "mine\n" for p in theirs)
