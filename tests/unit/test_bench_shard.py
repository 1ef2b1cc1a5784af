"""benchmarks.bench_shard: the ceiling, the machine's load and the N-shard projection, from numbers (no stack)."""

from __future__ import annotations

import os

from benchmarks.bench_shard import Plan, best_of, ceiling, cpu_seconds, machine_busy, projection


def test_cpu_seconds_adds_system_and_user_time():
    assert cpu_seconds({"used_cpu_sys": "1.5", "used_cpu_user": 2.25, "used_cpu_sys_children": 9}) == 3.75


def test_ceiling_is_the_rate_at_one_full_core():
    assert ceiling(10_000, 0.25) == 40_000.0
    assert ceiling(10_000, 0.0) is None


def test_machine_busy_counts_cores_busy_between_readings():
    cores = os.cpu_count() or 1
    assert machine_busy((100, 1000), (150, 1100)) == round(cores * 0.5, 3)
    assert machine_busy((0, 0), (0, 0)) == 0.0


def test_best_of_keeps_the_fastest_run_and_every_rate():
    rates = iter([3.0, 5.0, 4.0])
    best = best_of(3, lambda: {"per_s": next(rates)}, "per_s")
    assert best == {"per_s": 5.0, "repeats": [3.0, 5.0, 4.0]}


def test_projection_scales_hits_with_shards_and_splits_memory():
    out = projection(50_000, 2_000, 1_000, Plan(), summaries=1_200_000, shards=(1, 3))
    assert out["hits_per_s_by_shards"] == {"1": 50_000, "3": 150_000}
    assert out["mb_per_shard_by_shards"] == {"1": 2400.0, "3": 800.0}
    assert out["warm_names_per_s_at_broker_limit"] == 100_000
    assert out["load_lines_per_s_at_broker_limit"] == 5_000_000
