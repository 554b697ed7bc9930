"""The benchmark's honesty rules, kept free of timing so that unit tests can hold them.

- A figure is its spread: median, min–max and n (``Spread``).
- A ratio between two contenders is computed pair by pair: run i of A over
  run i of B, both from the same round of the interleaved order
  (``paired``), never as a ratio of medians.
- A target is "met" only when the whole spread of its paired values is at
  or below the limit, "missed" only when the whole spread is above it;
  anything else (or fewer than ``MIN_PAIRS`` pairs) is "inconclusive", with
  the run count to try next (``verdict``).
- ``make bench`` measures only a committed tree (``tree_state``): a dirty
  tree is refused unless the caller allows it, and then the diff's SHA-256
  goes into the report.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

MET = "met"
MISSED = "missed"
INCONCLUSIVE = "inconclusive"
NOT_MEASURED = "not measured"

#: Fewer pairs than this give no verdict: a spread of one or two values says nothing about the noise.
MIN_PAIRS = 3


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    n: int

    def show(self, fmt: Callable[[float], str] = lambda v: f"{v:.2f}") -> str:
        return f"{fmt(self.median)} ({fmt(self.low)}–{fmt(self.high)}, n={self.n})"


def spread(values: Sequence[float | None]) -> Spread | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return Spread(statistics.median(vals), min(vals), max(vals), len(vals))


def paired(a: Mapping[int, float], b: Mapping[int, float], how: str = "ratio") -> list[float]:
    """One value per round that both contenders completed: a/b ("ratio") or a-b ("difference"), by round."""
    rounds = sorted(set(a) & set(b))
    if how == "ratio":
        return [a[r] / b[r] for r in rounds if b[r]]
    if how == "difference":
        return [a[r] - b[r] for r in rounds]
    raise ValueError(how)


@dataclass(frozen=True)
class Verdict:
    word: str  # met | missed | inconclusive | not measured
    text: str  # what the report prints


def verdict(values: Sequence[float], limit: float, runs: int | None = None, knob: str = "RUNS") -> Verdict:
    """Is the target "value ≤ limit" met? Only the whole spread of ``values`` decides.

    ``runs`` is the run count used; an inconclusive verdict suggests twice as
    many, as the setting ``knob`` of ``make bench``.
    """
    if not values:
        return Verdict(NOT_MEASURED, NOT_MEASURED)
    more = max(2 * (runs or len(values)), MIN_PAIRS)
    if len(values) < MIN_PAIRS:
        return Verdict(INCONCLUSIVE, f"inconclusive (only {len(values)} value(s)), rerun with more runs "
                                     f"({knob}={more})")
    if max(values) <= limit:
        return Verdict(MET, MET)
    if min(values) > limit:
        return Verdict(MISSED, MISSED)
    return Verdict(INCONCLUSIVE, f"inconclusive, rerun with more runs ({knob}={more})")


# --- the tree being measured ---------------------------------------------------------


class DirtyTree(Exception):
    """The work tree has changes that are not committed: the report could not name what it measured."""


def _git(root: str, *args: str) -> bytes:
    return subprocess.run(["git", "-C", root, *args], check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE).stdout


def tree_state(root: str, allow_dirty: bool = False) -> dict:
    """The commit measured; refuses (DirtyTree) uncommitted changes unless ``allow_dirty``.

    A dirty tree that is allowed is recorded as the commit plus the SHA-256
    of its changes: ``git diff HEAD --binary`` followed by every untracked,
    not ignored file's name and content, so the same changes give the same hash.
    """
    commit = _git(root, "rev-parse", "HEAD").decode().strip()
    status = _git(root, "status", "--porcelain=v1", "--untracked-files=all").decode()
    state = {"commit": commit, "short": commit[:12], "dirty": bool(status.strip()), "diff_sha256": None,
             "changed": [line[3:] for line in status.splitlines()]}
    if not state["dirty"]:
        return state
    if not allow_dirty:
        raise DirtyTree(f"the work tree has uncommitted changes ({len(state['changed'])} path(s): "
                        f"{', '.join(state['changed'][:5])}{', ...' if len(state['changed']) > 5 else ''}); "
                        f"commit them first, or set ALLOW_DIRTY=1 to measure anyway (the report then records "
                        f"the diff's SHA-256)")
    digest = hashlib.sha256(_git(root, "diff", "HEAD", "--binary"))
    for name in _git(root, "ls-files", "--others", "--exclude-standard", "-z").split(b"\0"):
        if not name:
            continue
        digest.update(b"\0untracked\0" + name + b"\0")
        path = os.path.join(root, name.decode(errors="surrogateescape"))
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as fh:
                digest.update(fh.read())
    state["diff_sha256"] = digest.hexdigest()
    return state


def describe_tree(state: dict) -> str:
    if not state.get("dirty"):
        return f"{state['commit']} (clean tree)"
    return (f"{state['commit']} **plus uncommitted changes** (ALLOW_DIRTY=1; diff SHA-256 "
            f"{state['diff_sha256']})")
