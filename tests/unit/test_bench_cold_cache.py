"""benchmarks.bench_cold_cache: the recovery time and the figures' verdicts, from series (no stack needed)."""

from __future__ import annotations

from typing import Any

from benchmarks.bench_cold_cache import Plan, figures, recovery_seconds, zipf_cum_weights

PLAN = Plan(cap=4, delay=0.02, warmup=2, observe=4)


def _mode(cap: int, reads_per_s: list[int], hit_ratio: list[float | None], peak: int) -> dict[str, Any]:
    seconds = PLAN.seconds
    latency = {"p50": 1.0, "p90": 2.0, "p99": 3.0, "mean": 1.0, "max": 4.0, "n": 10}
    return {"cap": cap, "peak_in_flight": peak, "latency_ms_before": latency, "latency_ms_after": latency,
            "series": {"second": list(range(-PLAN.warmup, PLAN.observe)), "dynamodb_reads": reads_per_s,
                       "dynamodb_peak_in_flight": [peak] * seconds, "reads": [100] * seconds,
                       "hit_ratio": hit_ratio, "waited": [0] * seconds, "db": [0] * seconds,
                       "errors": [0] * seconds}}


def test_recovery_counts_to_the_end_of_the_first_bucket_back_at_the_goal():
    assert recovery_seconds([1.0, 1.0, 0.5, 0.9, 0.96, 0.97], 2) == 3
    assert recovery_seconds([1.0, 0.5, None, 0.95], 1) == 3
    assert recovery_seconds([1.0, 0.5, 0.9], 1) is None


def test_zipf_weights_favour_low_ranks():
    weights = zipf_cum_weights(3, 1.0)
    assert weights == [1.0, 1.5, 1.5 + 1 / 3]


def test_figures_judge_the_capped_mode_against_its_goals_and_keep_the_uncapped_one_as_baseline():
    capped = _mode(4, [0, 0, 150, 190, 100, 50], [1.0, 1.0, 0.6, 0.8, 0.96, 0.99], peak=4)
    uncapped = _mode(0, [0, 0, 500, 300, 10, 0], [1.0, 1.0, 0.7, 0.97, 0.99, 1.0], peak=30)
    by_name = {f.name: f for f in figures(capped, uncapped, PLAN, 180.0, 100)}

    in_flight = by_name["cold_cache_dynamodb_in_flight_peak"]
    assert (in_flight.value, in_flight.baseline, in_flight.met) == (4, 30, True)
    per_s = by_name["cold_cache_dynamodb_reads_per_s_peak"]
    assert (per_s.value, per_s.baseline, per_s.met) == (190, 500, True)  # bound: 4 / 20 ms = 200/s
    recovery = by_name["cold_cache_hit_ratio_95_after_s"]
    assert (recovery.value, recovery.baseline, recovery.met) == (3, 2, True)


def test_a_capped_mode_over_its_cap_or_never_recovering_misses_its_goals():
    capped = _mode(4, [0, 0, 250, 190, 100, 50], [1.0, 1.0, 0.6, 0.8, 0.9, 0.9], peak=5)
    uncapped = _mode(0, [0, 0, 500, 300, 10, 0], [1.0, 1.0, 0.7, 0.97, 0.99, 1.0], peak=30)
    by_name = {f.name: f for f in figures(capped, uncapped, PLAN, 180.0, 100)}
    assert by_name["cold_cache_dynamodb_in_flight_peak"].met is False
    assert by_name["cold_cache_dynamodb_reads_per_s_peak"].met is False
    recovery = by_name["cold_cache_hit_ratio_95_after_s"]
    assert recovery.met is False and recovery.value == PLAN.observe and recovery.detail["recovered"] is False
