"""The run's summary (counted by outcome) and its circuit breaker, without I/O."""

from offline_access.offline.run import RunSummary, _Breaker
from offline_access.store.job_results import Outcome, UserResult


def test_summary_body_keeps_the_http_contract():
    summary = RunSummary(run_id="r")
    for outcome in [Outcome.SUCCEEDED, Outcome.SUCCEEDED, Outcome.PARTIAL, Outcome.NEEDS_REAUTH,
                    Outcome.DEFERRED, Outcome.SKIPPED, Outcome.SKIPPED]:
        summary.counts[outcome] += 1
    body = summary.body()
    assert list(body) == ["run_id", "users_processed", "succeeded", "partial", "needs_reauth",
                          "deferred", "disconnected", "skipped", "pages", "stopped", "resume_from",
                          "duration_seconds", "disconnects_deferred"]
    assert body["users_processed"] == 5 and body["succeeded"] == 2 and body["skipped"] == 2


def outage():
    return UserResult(Outcome.DEFERRED, "google_unavailable", outage=True)


def test_breaker_opens_after_outages_in_a_row_only():
    breaker = _Breaker(3)
    for result in [outage(), outage(), UserResult(Outcome.SUCCEEDED), outage(), outage()]:
        breaker.record(result)
    assert not breaker.open
    breaker.record(outage())
    assert breaker.open


def test_per_user_failures_and_plain_skips_do_not_count():
    breaker = _Breaker(2)
    breaker.record(outage())
    breaker.record(UserResult(Outcome.SKIPPED, "already_processed"))  # ignored, not a reset
    breaker.record(UserResult(Outcome.DEFERRED, "upstream_invalid"))  # the user's: a reset
    breaker.record(outage())
    assert not breaker.open
    breaker.record(UserResult(Outcome.SKIPPED, "firestore_unavailable", outage=True))
    assert breaker.open
