"""The one percentile helper, for every latency figure (the benchmark run, ``make bench``, the demo).

Linear interpolation between closest ranks (Hyndman & Fan type 7; numpy's default and
``statistics.quantiles(method="inclusive")``): the q-quantile of sorted values ``x`` is
read at position ``(n - 1) * q``. It is defined for a single value, and never reaches
past the largest one, which matters for the small samples a benchmark takes.

The arithmetic is the standard library's, on the same grid (``q = i / D``, ``D`` a power
of ten): p99 is bit for bit ``statistics.quantiles(values, n=100, method="inclusive")[98]``,
so figures rounded to 4 places do not move at the last digit.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from fractions import Fraction

#: The figures :func:`describe` reports, in the order people read them.
FIGURES = ("p50", "p90", "p99", "mean", "max", "n")


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-quantile (``q`` in 0..1) of ``values``, interpolated linearly between closest ranks."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be between 0 and 1, got {q}")
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return _interpolate(ordered, *_grid(q))


def describe(values: Iterable[float]) -> dict[str, float]:
    """p50/p90/p99/mean/max rounded to 4 places, and the count ``n``; all 0 for no values."""
    ordered = sorted(values)
    if not ordered:
        return dict.fromkeys(FIGURES, 0.0) | {"n": 0}
    return {
        "p50": round(_interpolate(ordered, 50, 100), 4),
        "p90": round(_interpolate(ordered, 90, 100), 4),
        "p99": round(_interpolate(ordered, 99, 100), 4),
        "mean": round(statistics.fmean(ordered), 4),
        "max": round(ordered[-1], 4),
        "n": len(ordered),
    }


def _grid(q: float) -> tuple[int, int]:
    """``q`` as ``i / D``, with ``D`` the smallest power of ten from 100 up that holds it exactly."""
    exact = Fraction(q).limit_denominator(10**9)
    scale = 100
    while scale % exact.denominator and scale < 10**9:
        scale *= 10
    if scale % exact.denominator:  # not a decimal fraction (such as 1/3): its own denominator
        return exact.numerator, exact.denominator
    return exact.numerator * (scale // exact.denominator), scale


def _interpolate(ordered: Sequence[float], i: int, grid: int) -> float:
    """The ``i / grid`` quantile of sorted values, computed as ``statistics.quantiles`` does."""
    below, delta = divmod(i * (len(ordered) - 1), grid)
    if below + 1 == len(ordered):  # q == 1, or a single value
        return ordered[below]
    return (ordered[below] * (grid - delta) + ordered[below + 1] * delta) / grid
