"""Backoff with jitter (property-tested), and retries within a deadline."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offline_access.errors import DeadlineReached, GoogleUnavailable
from offline_access.offline.backoff import CALL_RETRIES, DEFERRAL, Backoff, Retrier

backoffs = st.builds(
    lambda base, multiplier, cap_factor, jitter_share, attempts: Backoff(
        base=base,
        multiplier=multiplier,
        cap=base * cap_factor,
        jitter=(multiplier - 1) * jitter_share,
        max_attempts=attempts,
    ),
    base=st.floats(0.001, 10),
    multiplier=st.floats(1.0, 4.0),
    cap_factor=st.floats(1.0, 10_000),
    jitter_share=st.floats(0.0, 1.0),
    attempts=st.integers(1, 10),
)


unit_floats = st.floats(0.0, 1.0, exclude_max=True)


class TestBackoff:
    @given(backoffs, st.lists(unit_floats, min_size=40, max_size=40))
    def test_delays_grow_monotonically_until_the_cap_and_never_exceed_it(self, backoff, draws):
        delays = [backoff.delay(n, lambda d=d: d) for n, d in enumerate(draws)]
        assert all(0 < d <= backoff.cap for d in delays)
        assert all(a <= b for a, b in zip(delays, delays[1:], strict=False))
        # Once the cap is reached, every later delay is the cap.
        capped = [d == backoff.cap for d in delays]
        assert capped == sorted(capped)

    @given(backoffs, st.integers(0, 2000), unit_floats)
    def test_each_delay_is_within_its_jitter_bounds(self, backoff, attempt, draw):
        low, high = backoff.bounds(attempt)
        delay = backoff.delay(attempt, lambda: draw)
        assert low <= delay <= high <= backoff.cap
        assert high <= low * (1 + backoff.jitter) + 1e-9

    def test_production_schedules(self):
        assert [CALL_RETRIES.bounds(n) for n in range(3)] == [(1, 1.5), (2, 3), (4, 6)]
        assert DEFERRAL.bounds(0) == (300, 450)
        assert DEFERRAL.bounds(10) == (6 * 3600, 6 * 3600)

    @given(backoffs, st.integers(0, 20), st.none() | st.floats(1, 120), st.floats(0, 300),
           unit_floats)
    def test_wait_honours_retry_after_and_the_deadline(self, backoff, attempt, retry_after,
                                                       remaining, draw):
        wait = backoff.wait_before_retry(attempt, retry_after, remaining, lambda: draw)
        if attempt + 1 >= backoff.max_attempts:
            assert wait is None
        elif wait is not None:
            assert wait < remaining
            assert wait >= backoff.delay(attempt, lambda: draw)
            if retry_after is not None:
                assert wait >= retry_after
        else:
            needed = max(backoff.delay(attempt, lambda: draw), retry_after or 0)
            assert needed >= remaining

    @pytest.mark.parametrize("kwargs", [
        {"base": 0}, {"base": 2, "cap": 1}, {"multiplier": 0.5}, {"jitter": 1.5},
        {"max_attempts": 0},
    ])
    def test_rejects_settings_that_break_the_guarantees(self, kwargs):
        with pytest.raises(ValueError):
            Backoff(**kwargs)


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class TestRetrier:
    def failing(self, times: int, retry_after: float | None = None):
        calls = []

        def call():
            calls.append(1)
            if len(calls) <= times:
                raise GoogleUnavailable("503", retry_after=retry_after)
            return "ok"
        return call, calls

    def test_retries_until_success(self):
        clock = FakeClock()
        retrier = Retrier(CALL_RETRIES, deadline=100, clock=clock, sleep=clock.sleep,
                          rand=lambda: 0.0)
        call, calls = self.failing(2)
        assert retrier.call(call) == "ok"
        assert len(calls) == 3 and clock.sleeps == [1.0, 2.0] and retrier.retries == 2

    def test_gives_up_after_max_attempts(self):
        clock = FakeClock()
        retrier = Retrier(CALL_RETRIES, deadline=100, clock=clock, sleep=clock.sleep)
        call, calls = self.failing(10)
        with pytest.raises(GoogleUnavailable):
            retrier.call(call)
        assert len(calls) == CALL_RETRIES.max_attempts

    def test_retry_after_is_a_floor(self):
        clock = FakeClock()
        retrier = Retrier(CALL_RETRIES, deadline=100, clock=clock, sleep=clock.sleep,
                          rand=lambda: 0.0)
        call, _ = self.failing(1, retry_after=7)
        assert retrier.call(call) == "ok" and clock.sleeps == [7]

    def test_never_waits_past_the_deadline(self):
        clock = FakeClock()
        retrier = Retrier(CALL_RETRIES, deadline=5, clock=clock, sleep=clock.sleep)
        call, calls = self.failing(10, retry_after=30)
        with pytest.raises(GoogleUnavailable):
            retrier.call(call)
        assert len(calls) == 1 and clock.sleeps == []

    def test_each_call_gets_what_is_left_of_the_deadline_as_its_timeout(self):
        clock = FakeClock()
        retrier = Retrier(CALL_RETRIES, deadline=clock() + 4, clock=clock, sleep=clock.sleep)
        assert retrier.timeout(10) == 4
        clock.sleep(3.5)
        assert retrier.timeout(10) == pytest.approx(0.5)
        assert retrier.timeout(0.2) == 0.2
        clock.sleep(0.5)
        with pytest.raises(DeadlineReached):
            retrier.timeout(10)

    def test_no_call_starts_after_the_deadline(self):
        clock = FakeClock()
        retrier = Retrier(CALL_RETRIES, deadline=clock() - 1, clock=clock, sleep=clock.sleep)
        call, calls = self.failing(0)
        with pytest.raises(DeadlineReached):
            retrier.call(call)
        assert calls == []

    def test_a_call_cut_at_the_deadline_is_the_deadline_not_an_outage(self):
        # Review fault 6: the call in flight at the deadline used to count as Google down.
        clock = FakeClock()
        retrier = Retrier(CALL_RETRIES, deadline=clock() + 2, clock=clock, sleep=clock.sleep)

        def cut():
            clock.sleep(retrier.timeout(10))  # the timeout ran out, at the deadline
            raise GoogleUnavailable("timeout")

        with pytest.raises(DeadlineReached):
            retrier.call(cut)

