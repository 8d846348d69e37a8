"""The run's summary (counted by outcome), without I/O."""

from offline_access.offline.run import RunSummary
from offline_access.store.job_results import Outcome


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
