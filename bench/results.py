"""Collected samples per scenario and contender, and the A B A B alternation that fills them."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable

from bench.measure import CommandFailed, Sample, Stat, stat


@dataclass
class Scenario:
    key: str
    title: str
    what: str
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)

    def add(self, label: str, sample: Sample) -> None:
        if label not in self.order:
            self.order.append(label)
        self.samples.setdefault(label, []).append(sample)

    def fail(self, label: str, message: str) -> None:
        if label not in self.order:
            self.order.append(label)
        self.errors[label] = message

    def stat(self, label: str, metric: str = "wall") -> Stat | None:
        return stat([getattr(s, metric) if metric != "extra" else None for s in self.samples.get(label, [])])

    def median(self, label: str, metric: str = "wall") -> float | None:
        st = self.stat(label, metric)
        return st.median if st else None


def alternate(scenario: Scenario, contenders: list[tuple[str, Callable[[int], Sample]]], runs: int,
              before_round: Callable[[int], None] | None = None) -> None:
    """Run every contender ``runs`` times, in order A B C then C B A, and so on.

    A contender that fails is recorded with its error and left out of the
    later rounds; the others go on.
    """
    for label, _ in contenders:
        if label not in scenario.order:
            scenario.order.append(label)
    for i in range(runs):
        if before_round:
            before_round(i)
        order = contenders if i % 2 == 0 else contenders[::-1]
        for label, fn in order:
            if label in scenario.errors:
                continue
            try:
                sample = fn(i)
            except CommandFailed as exc:
                scenario.fail(label, str(exc))
                print(f"  {scenario.key}: {label}: FAILED: {exc}", file=sys.stderr, flush=True)
                continue
            scenario.add(label, sample)
            own = f" own-rss {sample.own_rss / 2**20:.1f} MiB" if sample.own_rss else ""
            scratch = f" scratch {sample.scratch} B" if sample.scratch is not None else ""
            print(f"  {scenario.key}: {label} run {i + 1}/{runs}: {sample.wall:.3f} s wall, "
                  f"{sample.cpu:.3f} s cpu{own}{scratch}", flush=True)


def once(scenario: Scenario, label: str, fn: Callable[[], Sample | None]) -> Sample | None:
    """An untimed warm-up or set-up step that may fail for one contender only."""
    try:
        return fn()
    except CommandFailed as exc:
        scenario.fail(label, str(exc))
        print(f"  {scenario.key}: {label}: FAILED in set-up: {exc}", file=sys.stderr, flush=True)
        return None
