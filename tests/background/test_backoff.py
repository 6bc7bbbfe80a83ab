"""Backoff: doubles from its base, never past its cap, and jitters only downwards within its share."""

import pytest

from frontdesk.background import Backoff


def test_the_ceiling_doubles_from_the_base_up_to_the_cap() -> None:
    backoff = Backoff(base=0.1, cap=5.0)
    assert [backoff.ceiling(n) for n in range(1, 9)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])


def test_delays_stay_between_the_jittered_floor_and_the_ceiling() -> None:
    for jitter in (0.0, 0.25, 0.5, 1.0):
        backoff = Backoff(base=1.0, cap=60.0, jitter=jitter)
        for attempt in range(1, 12):
            ceiling = backoff.ceiling(attempt)
            delays = [backoff.delay(attempt) for _ in range(200)]
            assert all(ceiling * (1 - jitter) <= d <= ceiling for d in delays), (jitter, attempt)


def test_the_delays_are_jittered() -> None:
    backoff = Backoff(base=1.0, cap=1.0)
    assert len({backoff.delay(1) for _ in range(20)}) > 1


def test_attempt_zero_and_long_failure_runs_are_safe() -> None:
    backoff = Backoff(base=0.5, cap=300.0)
    assert backoff.ceiling(0) == backoff.ceiling(1) == 0.5
    assert backoff.ceiling(10_000) == 300.0


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(base=1.0, cap=2.0, jitter=1.5)
