"""Every per-user failure ends, none trips the run's breaker, and a run keeps its deadline
(review faults 5 and 6), against the local Google's refusals and latency faults."""

from __future__ import annotations

import dataclasses
import datetime as dt

from offline_access.offline.decision import REFUSALS_BEFORE_REAUTH
from offline_access.offline.run import run_offline_job
from tests.integration.job.conftest import refreshes, requests_to, token_refresh_requests
from tests.stack_values import DRIVE_APPDATA

CALENDAR = "https://www.googleapis.com/auth/calendar.readonly"
USERINFO = "GET /oauth2/v3/userinfo"


def later(job, minutes: float):
    """The job's dependencies with `now` that many minutes ahead, logging to the same place."""
    deps = dataclasses.replace(job.deps, now=lambda: dt.datetime.now(dt.timezone.utc)
                               + dt.timedelta(minutes=minutes))
    deps.log_stream = job.log
    return deps


def test_invalid_scope_is_retried_without_scope_and_the_granted_scopes_kept(users, job, google):
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    # The stored scopes name one the grant does not hold (granted elsewhere, then removed).
    users.update(alice, {"granted_scopes": [*users.doc(alice)["granted_scopes"], CALENDAR]})

    summary = job.run()

    assert summary.succeeded == 1 and summary.deferred == 0
    assert token_refresh_requests(google) == 2 and refreshes(google) == {alice: 1}
    doc = users.doc(alice)
    assert CALENDAR not in doc["granted_scopes"] and DRIVE_APPDATA in doc["granted_scopes"]
    assert job.user_lines()[0]["scope_fallback"] is True


def test_a_refused_refresh_ends_in_needs_reauth_after_three_runs(users, job, google):
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    refusal = {"error": "invalid_request", "error_description": "Bad Request"}
    google.fault("/token", 400, refusal, times=-1, match={"grant_type": "refresh_token"})

    outcomes = []
    for run in range(REFUSALS_BEFORE_REAUTH + 1):
        summary = run_offline_job(later(job, 30 * run), f"run-{run}")
        outcomes.append((summary.deferred, summary.needs_reauth, summary.stopped))

    assert REFUSALS_BEFORE_REAUTH == 3
    # Deferred twice, then terminal; the fourth run no longer finds her due.
    assert outcomes == [(1, 0, None), (1, 0, None), (0, 1, None), (0, 0, None)]
    assert token_refresh_requests(google) == 3  # one each: a 4xx is never retried within a run
    doc = users.doc(alice)
    assert (doc["status"], doc["reauth_reason"]) == ("needs_reauth", "refresh_refused")
    assert doc["job"]["result"] == {"outcome": "needs_reauth", "reason": "refresh_refused",
                                    "refused": {"error": "invalid_request", "http_status": 400,
                                                "count": 3}}
    lines = job.user_lines()
    assert [line["severity"] for line in lines[:3]] == ["WARNING", "WARNING", "ERROR"]


def test_a_success_resets_the_count_of_refusals(users, job, google):
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    google.fault("/token", 400, {"error": "invalid_request"}, match={"grant_type": "refresh_token"})
    assert job.run("run-1").deferred == 1
    assert users.doc(alice)["job"]["refusal_count"] == 1

    users.expire_cached_access_tokens(alice)
    assert run_offline_job(later(job, 30), "run-2").succeeded == 1
    assert users.doc(alice)["job"]["refusal_count"] == 0


def test_per_user_refusals_never_trip_the_breaker(users, make_job, google):
    # Review fault 5: `invalid_scope` counted as a misconfiguration, an outage, and 20 users in
    # a row stopped the whole run.
    subs = [users.sign_in(f"user{i}@example.com") for i in range(6)]
    users.expire_cached_access_tokens(*subs)
    google.fault("/token", 400, {"error": "invalid_scope"}, times=-1,
                 match={"grant_type": "refresh_token"})

    job = make_job({"JOB_CONCURRENCY": "1"}, breaker_threshold=3)
    summary = job.run()

    assert summary.stopped is None and summary.deferred == 6
    assert all(users.doc(s)["job"]["result"]["error"] == "refresh_refused" for s in subs)
    assert [line["severity"] for line in job.user_lines()] == ["WARNING"] * 6
    assert token_refresh_requests(google) == 12  # with the stored scopes, then without


def test_a_users_calls_stop_at_the_runs_hard_deadline(users, make_job, google):
    # Review fault 6: a call in flight at the deadline had its full timeout, and then retries.
    alice = users.sign_in("alice@example.com")
    google.fault("/oauth2/v3/userinfo", latency_ms=30_000)  # a call that will not end in time

    job = make_job({"JOB_TIME_BUDGET_SECONDS": "4", "HTTP_TIMEOUT_SECONDS": "10"})
    summary = job.run()

    assert summary.deferred == 1 and summary.stopped is None
    [line] = job.user_lines()
    assert (line["outcome"], line["detail"]) == ("deferred", "deadline_reached")
    doc = users.doc(alice)
    assert doc["job"]["result"] == {"outcome": "deferred", "error": "deadline_reached"}
    # Not the user's failure: due again at once, the count of failures untouched.
    assert doc["job"]["failure_count"] == 0
    assert doc["next_run_at"] <= dt.datetime.now(dt.timezone.utc)
    assert requests_to(google, USERINFO) == 1  # cut, and never retried past the deadline
    # The run answered within its budget plus its last writes, far from the 10 s timeout.
    assert summary.duration_seconds < 4 + 3


def test_users_cut_at_the_deadline_are_taken_first_by_the_next_run(users, make_job, google):
    alice = users.sign_in("alice@example.com")
    google.fault("/oauth2/v3/userinfo", latency_ms=30_000)
    assert make_job({"JOB_TIME_BUDGET_SECONDS": "4"}).run("run-1").deferred == 1

    google.clear_faults()
    summary = make_job().run("run-2")

    assert summary.succeeded == 1
    assert users.doc(alice)["job"]["result"]["tasks"]["userinfo"]["status"] == "ok"
