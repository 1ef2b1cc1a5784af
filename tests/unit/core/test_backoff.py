"""The one backoff policy: capped exponential ceilings, full jitter below them."""

import random

from cachewarm.backoff import Backoff


def test_ceilings_double_from_base_up_to_the_cap():
    backoff = Backoff(retries=6, base=0.025, cap=1.0)
    assert [backoff.ceiling(n) for n in range(1, 8)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_delay_is_full_jitter_below_the_ceiling():
    backoff = Backoff(base=0.05, cap=5.0)
    assert backoff.delay(3, lambda: 0.0) == 0.0
    assert backoff.delay(3, lambda: 0.5) == 0.2
    rng = random.Random(7)
    delays = [backoff.delay(4, rng.random) for _ in range(200)]
    assert all(0 <= d <= backoff.ceiling(4) for d in delays)
    assert max(delays) > 0.7 * backoff.ceiling(4) and min(delays) < 0.3 * backoff.ceiling(4)


def test_a_waiter_bounded_by_time_can_ask_for_any_attempt():
    # A lease waiter counts polls, not retries: thousands of them must not overflow.
    assert Backoff(base=0.001, cap=0.025).ceiling(5000) == 0.025
