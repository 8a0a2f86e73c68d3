"""Alternating rounds: on a shared two-core machine drift hits every side of a comparison alike
only if the sides take turns (A B A B …); each side is then reported by its median."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def alternate(
    sides: Sequence[tuple[str, Callable[[], T]]],
    rounds: int,
    show: Callable[[str, T], str] = lambda name, value: f"{name}: {value}",
) -> dict[str, list[T]]:
    """Run every side once per round, in the given order, ``rounds`` times; values by side."""
    results: dict[str, list[T]] = {name: [] for name, _ in sides}
    for number in range(1, rounds + 1):
        for name, run in sides:
            started = time.monotonic()
            value = run()
            results[name].append(value)
            took = time.monotonic() - started
            log(f"round {number}/{rounds} {show(name, value)} (took {took:.1f} s)")
    return results


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def listing(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    """``rounds 1, 2, 3 (median 2)`` for a DETAIL cell."""
    shown = ", ".join(fmt.format(v) for v in values)
    return f"rounds {shown} (median {fmt.format(median(values))})"


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)
