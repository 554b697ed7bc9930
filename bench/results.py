"""Collected samples per scenario and contender, and the interleaved order that fills them."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable

from bench.measure import CommandFailed, Sample
from bench.verdict import Spread, spread


@dataclass
class Scenario:
    key: str
    title: str
    #: What the scenario does, one line per step, generated from the commands it runs.
    method: list[str] = field(default_factory=list)
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    #: Contender label -> the exact command or script it runs (shown in the report).
    commands: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, label: str, sample: Sample) -> None:
        if label not in self.order:
            self.order.append(label)
        self.samples.setdefault(label, []).append(sample)

    def fail(self, label: str, message: str) -> None:
        if label not in self.order:
            self.order.append(label)
        self.errors[label] = message

    def by_round(self, label: str, metric: str = "wall") -> dict[int, float]:
        return {s.round: getattr(s, metric) for s in self.samples.get(label, []) if getattr(s, metric) is not None}

    def spread(self, label: str, metric: str = "wall") -> Spread | None:
        return spread([getattr(s, metric) for s in self.samples.get(label, [])])


def interleave(scenario: Scenario, contenders: list[tuple[str, Callable[[int], Sample]]], runs: int,
               before_round: Callable[[int], None] | None = None) -> None:
    """Run every contender ``runs`` times: round i runs each once, in order A B C, then C B A, and so on.

    Each sample carries its round, so that ratios pair run i of A with run i
    of B. A contender that fails is recorded with its error and left out of
    the later rounds; the others go on.
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
            sample.round = i
            scenario.add(label, sample)
            print(f"  {scenario.key}: {label} round {i + 1}/{runs}: {sample.wall:.3f} s wall, "
                  f"{sample.cpu:.3f} s cpu", flush=True)


def once(scenario: Scenario, label: str, fn: Callable[[], object]) -> bool:
    """An untimed set-up step (a seeding run) that may fail for one contender only."""
    try:
        fn()
        return True
    except CommandFailed as exc:
        scenario.fail(label, str(exc))
        print(f"  {scenario.key}: {label}: FAILED in set-up: {exc}", file=sys.stderr, flush=True)
        return False
