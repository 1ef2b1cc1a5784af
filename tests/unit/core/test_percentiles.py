"""The one percentile helper: closest-rank linear interpolation, and the figures a run reports."""

import random
import statistics

import pytest

from cachewarm.percentiles import describe, percentile


def test_is_the_standard_librarys_inclusive_quantile_bit_for_bit():
    rng = random.Random(11)
    for n in (2, 3, 10, 101, 1000):
        values = [rng.expovariate(1.0) for _ in range(n)]
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        for i in (1, 50, 90, 99):
            assert percentile(values, i / 100) == cuts[i - 1]  # bit for bit


def test_interpolates_between_closest_ranks():
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([10.0, 0.0], 0.9) == 9.0  # unsorted input
    assert percentile([4.0, 1.0, 3.0], 0.0) == 1.0
    assert percentile([4.0, 1.0, 3.0], 1.0) == 4.0
    assert percentile([7.0], 0.99) == 7.0


@pytest.mark.parametrize("q", [-0.01, 1.01, 50])
def test_q_is_a_fraction(q):
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile([1.0, 2.0], q)


def test_no_values_has_no_percentile():
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_describe_reports_rounded_figures_and_the_count():
    assert describe([0.123456, 0.2, 0.3, 10.0]) == {
        "p50": 0.25, "p90": 7.09, "p99": 9.709, "mean": 2.6559, "max": 10.0, "n": 4,
    }
    assert describe([2.0]) == {"p50": 2.0, "p90": 2.0, "p99": 2.0, "mean": 2.0, "max": 2.0, "n": 1}


def test_describe_of_nothing_is_zeros():
    assert describe([]) == {"p50": 0.0, "p90": 0.0, "p99": 0.0, "mean": 0.0, "max": 0.0, "n": 0}
