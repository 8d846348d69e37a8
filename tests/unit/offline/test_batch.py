"""The batches' circuit breaker, without I/O."""

from offline_access.offline.batch import Breaker
from offline_access.store.job_results import Outcome, UserResult


def outage():
    return UserResult(Outcome.DEFERRED, "google_unavailable", outage=True)


def test_breaker_opens_after_outages_in_a_row_only():
    breaker = Breaker(3)
    for result in [outage(), outage(), UserResult(Outcome.SUCCEEDED), outage(), outage()]:
        breaker.record(result)
    assert not breaker.open
    breaker.record(outage())
    assert breaker.open


def test_per_user_failures_and_plain_skips_do_not_count():
    breaker = Breaker(2)
    breaker.record(outage())
    breaker.record(UserResult(Outcome.SKIPPED, "already_processed"))  # ignored, not a reset
    breaker.record(UserResult(Outcome.DEFERRED, "upstream_invalid"))  # the user's: a reset
    breaker.record(outage())
    assert not breaker.open
    breaker.record(UserResult(Outcome.SKIPPED, "firestore_unavailable", outage=True))
    assert breaker.open
