"""How long the scheduled job waits before trying Google again, and when it stops trying.

`Backoff` is the policy; `Retrier` applies it to one user's calls within the run's deadline.

Two schedules share one shape, truncated exponential backoff with jitter: retries of one call
within a run (seconds: 1, 2, 4 ... plus jitter, a few attempts, never past the run's deadline,
and never sooner than Google's `Retry-After` asks), and the deferral of a user whose calls kept
failing (minutes to hours, growing with the user's failure count, so a persistently failing
user costs a little less each run instead of the same every run).

Reference: https://cloud.google.com/iam/docs/retry-strategy (truncated exponential backoff).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..errors import DeadlineReached, GoogleUnavailable

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Truncated exponential backoff with additive, proportional jitter.

    The n-th delay (n from 0) lies in `[min(cap, base * multiplier**n),
    min(cap, base * multiplier**n * (1 + jitter))]`. With `jitter <= multiplier - 1`, every
    draw of delay n+1 is at least every draw of delay n, so the delays grow monotonically until
    they reach the cap, whatever the random numbers were.

    Attributes:
        base: the first delay in seconds, before jitter.
        multiplier: the growth factor between attempts.
        cap: no delay is ever longer than this.
        jitter: the random share added on top of each delay (0.5 adds up to 50 %).
        max_attempts: calls in total, including the first (so `max_attempts - 1` retries).
    """

    base: float = 1.0
    multiplier: float = 2.0
    cap: float = 32.0
    jitter: float = 0.5
    max_attempts: int = 4

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError("need 0 < base <= cap")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if not 0 <= self.jitter <= self.multiplier - 1:
            # More jitter than the growth would let a draw of delay n exceed one of delay n+1.
            raise ValueError("jitter must be between 0 and multiplier - 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def _raw(self, attempt: int) -> float:
        try:
            return self.base * self.multiplier**attempt
        except OverflowError:  # the cap was reached long before
            return float("inf")

    def bounds(self, attempt: int) -> tuple[float, float]:
        """The smallest and largest delay after the `attempt`-th failure (from 0)."""
        raw = self._raw(attempt)
        return min(self.cap, raw), min(self.cap, raw * (1 + self.jitter))

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """A delay in seconds after the `attempt`-th failure (0 for the first failure).

        Args:
            attempt: how many failures came before this one.
            rand: a source of floats in [0, 1); tests pass their own.
        """
        if attempt < 0:
            raise ValueError("attempt must be at least 0")
        return min(self.cap, self._raw(attempt) * (1 + self.jitter * rand()))

    def wait_before_retry(
        self,
        attempt: int,
        retry_after: float | None,
        remaining: float,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """How long to wait before retrying after the `attempt`-th failed call, or None to stop.

        Google's `Retry-After` (already parsed and clamped) is a floor: the wait is never
        shorter than it asks. Retrying stops when the attempts are used up or when the wait would
        not end before the deadline (`remaining` seconds from now).
        """
        if attempt + 1 >= self.max_attempts:
            return None
        wait = self.delay(attempt, rand)
        if retry_after is not None:
            wait = max(wait, retry_after)
        if wait >= remaining:
            return None
        return wait


# Within a run: 1, 2, 4 s (+ up to 50 %) between four attempts, at most ~10.5 s of waiting.
CALL_RETRIES = Backoff(base=1.0, multiplier=2.0, cap=32.0, jitter=0.5, max_attempts=4)
# Between runs, for a deferred user: 5 min, 10 min, 20 min ... up to 6 h (+ up to 50 %).
# Six hours keeps every refresh token in use far more often than Google's 6-month idle limit.
DEFERRAL = Backoff(base=300.0, multiplier=2.0, cap=6 * 3600.0, jitter=0.5, max_attempts=1)


# Less than this left before the deadline: no call is started any more.
MIN_CALL_SECONDS = 0.05


@dataclass
class Retrier:
    """Runs a call again after `GoogleUnavailable`, as `backoff` says, within a hard deadline.

    `deadline` (a `clock()` value) is the run's: no call starts after it, each call's timeout is
    cut to what is left (`timeout`), and no wait for a retry may end after it. A call that
    failed because its cut timeout ran out raises `DeadlineReached`, not an outage.
    """

    backoff: Backoff
    deadline: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random
    retries: int = 0
    waited: float = 0.0

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def timeout(self, cap: float) -> float:
        """The timeout for the next call: `cap`, or what is left before the deadline if less.

        Raises:
            DeadlineReached: too little is left to start a call.
        """
        remaining = self.remaining()
        if remaining < MIN_CALL_SECONDS:
            raise DeadlineReached()
        return min(cap, remaining)

    def call(self, fn: Callable[[], T]) -> T:
        """The result of `fn()`, retried; raises the last `GoogleUnavailable` when done.

        Raises:
            DeadlineReached: the deadline came before or during the call.
        """
        attempt = 0
        while True:
            if self.remaining() < MIN_CALL_SECONDS:
                raise DeadlineReached()
            try:
                return fn()
            except GoogleUnavailable as exc:
                if self.remaining() < MIN_CALL_SECONDS:
                    # The call was cut at the deadline (or ended right at it): not an outage.
                    raise DeadlineReached() from exc
                wait = self.backoff.wait_before_retry(
                    attempt, exc.retry_after, self.remaining(), self.rand
                )
                if wait is None:
                    raise
                self.retries += 1
                self.waited += wait
                self.sleep(wait)
                attempt += 1
