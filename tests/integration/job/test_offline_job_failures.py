"""How a run meets failures: dead grants, unreadable tokens, Google throttling or down, 401s,
a new refresh token, and a broken task. Each failure stays with its user."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import time

import pytest
import requests

from offline_access.errors import Unavailable
from offline_access.offline import tasks as user_tasks
from offline_access.store.job_claims import JobStore
from tests.integration.job.conftest import (
    ALL_SCOPES,
    refreshes,
    requests_to,
    token_refresh_requests,
)
from tests.stack_values import CLIENT_ID, CLIENT_SECRET

DRIVE_LIST = "GET /drive/v3/files"
DAY = 24 * 3600


def shifted(days: float):
    """A `now` for the job that many days ahead, like the local Google's advanced clock."""
    return lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)


# Dead grants


def test_revoked_grant_marks_the_user_and_stops_refreshing(users, job, google):
    alice = users.sign_in("alice@example.com")
    bob = users.sign_in("bob@example.org")
    users.expire_cached_access_tokens(alice, bob)
    google.revoke_grant(alice, CLIENT_ID)

    summary = job.run("run-1")

    assert (summary.needs_reauth, summary.succeeded) == (1, 1)
    doc = users.doc(alice)
    assert doc["status"] == "needs_reauth" and doc["reauth_reason"] == "revoked"
    assert doc["job"]["result"] == {"outcome": "needs_reauth", "reason": "revoked"}
    assert "access_token" not in doc and "refresh_token" in doc
    assert users.doc(bob)["status"] == "active" and refreshes(google) == {bob: 1}
    attempts = token_refresh_requests(google)

    # Later runs make no further attempt for her until she signs in again.
    users.update(bob, {"next_run_at": dt.datetime.now(dt.timezone.utc)})
    users.expire_cached_access_tokens(bob)
    assert job.run("run-2").processed == 1
    assert token_refresh_requests(google) == attempts + 1 and refreshes(google) == {bob: 2}

    users.sign_in("alice@example.com")  # consent again: a new refresh token
    users.expire_cached_access_tokens(alice)
    assert job.run("run-3").succeeded == 1
    assert users.doc(alice)["status"] == "active" and refreshes(google)[alice] == 1


def test_invalid_rapt_needs_reauthentication(users, job, google):
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    google.reauth_required(alice)

    assert job.run().needs_reauth == 1

    doc = users.doc(alice)
    assert (doc["status"], doc["reauth_reason"]) == ("needs_reauth", "reauth_required")


def test_testing_mode_expiry_after_seven_days(users, make_job, google):
    google.client(CLIENT_ID, testing_mode=True)
    try:
        alice = users.sign_in("alice@example.com")
        google.advance_clock(8 * DAY)
        job = make_job({"OAUTH_APP_TESTING_MODE": "true"}, now=shifted(8))

        assert job.run().needs_reauth == 1
    finally:
        google.client(CLIENT_ID, testing_mode=False)
    assert google.state()["refresh_tokens"][0]["dead_reason"] == "testing_mode_expiry"
    assert users.doc(alice)["reauth_reason"] == "testing_mode_expiry"


def test_unused_for_six_months(users, make_job, google):
    alice = users.sign_in("alice@example.com")
    google.advance_clock(181 * DAY)

    assert make_job(now=shifted(181)).run().needs_reauth == 1

    assert users.doc(alice)["reauth_reason"] == "unused_6_months"


@pytest.mark.parametrize("damage", ["copied_from_another_user", "tampered"])
def test_unreadable_sealed_token_flags_the_user_without_crashing(users, job, google, damage):
    alice = users.sign_in("alice@example.com")
    bob = users.sign_in("bob@example.org")
    sealed = users.doc(alice)["refresh_token"]
    if damage == "copied_from_another_user":
        users.update(bob, {"refresh_token": sealed})
    else:
        ciphertext = bytearray(users.doc(bob)["refresh_token"]["ct"])
        ciphertext[-1] ^= 1
        users.update(bob, {"refresh_token.ct": bytes(ciphertext)})

    summary = job.run()

    assert (summary.succeeded, summary.needs_reauth) == (1, 1)
    doc = users.doc(bob)
    assert (doc["status"], doc["reauth_reason"]) == ("needs_reauth", "unreadable_token")
    # Nothing was sent to Google with a token that did not belong to Bob.
    assert token_refresh_requests(google) == 0 and requests_to(google, DRIVE_LIST) == 1


# Throttling, outages, timeouts


def test_429_with_retry_after_is_honoured_then_succeeds(users, job, google):
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    google.fault("/token", 429, headers={"Retry-After": "1"})

    started = time.monotonic()
    assert job.run().succeeded == 1

    assert time.monotonic() - started >= 1.0
    assert token_refresh_requests(google) == 2 and refreshes(google) == {alice: 1}
    line = job.user_lines()[0]
    assert line["retries"] == 1 and line["retry_wait_s"] >= 1.0


def test_503_with_an_http_date_retry_after_on_an_api_is_retried(users, job, google):
    users.sign_in("alice@example.com")
    when = email.utils.formatdate(time.time() + 1, usegmt=True)
    google.fault("/drive/v3/files", 503, headers={"Retry-After": when}, times=2)

    assert job.run().succeeded == 1

    assert requests_to(google, DRIVE_LIST) == 3
    assert job.user_lines()[0]["retries"] == 2


def test_a_rate_limit_403_is_retried_but_a_permission_403_is_not(users, job, google):
    alice = users.sign_in("alice@example.com")
    rate_limited = {"error": {"code": 403, "message": "Rate Limit Exceeded", "status":
                              "PERMISSION_DENIED", "errors": [{"reason": "userRateLimitExceeded"}]}}
    google.fault("/drive/v3/files", 403, rate_limited)
    google.fault("/drive/v3/files", 403)  # the default body: plain PERMISSION_DENIED

    summary = job.run()

    assert summary.partial == 1 and requests_to(google, DRIVE_LIST) == 2
    drive = users.doc(alice)["job"]["result"]["tasks"]["drive_appdata"]
    assert drive == {"status": "failed", "error": "http_403", "reason": "PERMISSION_DENIED"}


def test_timeouts_are_retried(users, make_job, google):
    users.sign_in("alice@example.com")
    google.fault("/drive/v3/files", timeout=True, hang_seconds=3)

    job = make_job({"HTTP_TIMEOUT_SECONDS": "1"})
    assert job.run().succeeded == 1

    assert requests_to(google, DRIVE_LIST) == 2


def test_google_down_defers_the_user_with_a_growing_delay(users, job, google):
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    google.fault("/token", 503, times=-1)

    first = job.run("run-1")

    assert first.deferred == 1
    assert token_refresh_requests(google) == job.deps.call_retries.max_attempts
    doc = users.doc(alice)
    assert doc["status"] == "active" and doc["job"]["failure_count"] == 1
    assert doc["job"]["result"] == {"outcome": "deferred", "error": "google_unavailable"}
    first_delay = doc["next_run_at"] - doc["job"]["last_run_at"]
    assert dt.timedelta(minutes=5) <= first_delay <= dt.timedelta(minutes=7.5)

    # The next run that finds it due (15 minutes later) fails again and waits longer.
    later = dataclasses.replace(job.deps, now=lambda: dt.datetime.now(dt.timezone.utc)
                                + dt.timedelta(minutes=15))
    later.log_stream = job.log
    from offline_access.offline.run import run_offline_job
    assert run_offline_job(later, "run-2").deferred == 1
    doc = users.doc(alice)
    assert doc["job"]["failure_count"] == 2
    assert doc["next_run_at"] - doc["job"]["last_run_at"] >= dt.timedelta(minutes=10)

    google.clear_faults()
    much_later = dataclasses.replace(job.deps, now=lambda: dt.datetime.now(dt.timezone.utc)
                                     + dt.timedelta(hours=2))
    much_later.log_stream = job.log
    assert run_offline_job(much_later, "run-3").succeeded == 1
    assert users.doc(alice)["job"]["failure_count"] == 0


def test_a_retry_after_beyond_the_budget_defers_at_once(users, make_job, google):
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    google.fault("/token", 429, headers={"Retry-After": "86400"}, times=-1)

    started = time.monotonic()
    summary = make_job({"JOB_TIME_BUDGET_SECONDS": "30"}).run()

    # Retry-After is clamped to 120 s, still more than the budget: no waiting at all.
    assert summary.deferred == 1 and time.monotonic() - started < 5
    assert token_refresh_requests(google) == 1


def test_breaker_stops_starting_users_when_google_is_down(users, make_job, google):
    subs = [users.sign_in(f"user{i}@example.com") for i in range(6)]
    users.expire_cached_access_tokens(*subs)
    google.fault("/token", 503, times=-1)

    summary = make_job({"JOB_CONCURRENCY": "1"}, breaker_threshold=3).run()

    assert summary.stopped == "upstream_unavailable" and summary.deferred == 3
    assert summary.resume_from is not None
    untouched = [s for s in subs if "last_run_id" not in users.doc(s).get("job", {})]
    assert len(untouched) == 3  # left due, not failed: the next run takes them first


# 401s and new refresh tokens


def test_401_from_an_api_forces_one_refresh_and_one_retry(users, job, google):
    alice = users.sign_in("alice@example.com")
    # Google's clock runs ahead: the cached token is dead there although ours says it is fresh.
    google.advance_clock(2 * 3600)

    assert job.run().succeeded == 1

    assert refreshes(google) == {alice: 1} and requests_to(google, DRIVE_LIST) == 2


def test_a_persistent_401_is_not_a_loop(users, job, google):
    alice = users.sign_in("alice@example.com")
    google.fault("/drive/v3/files", 401, times=-1)

    summary = job.run()

    assert summary.partial == 1
    assert refreshes(google) == {alice: 1} and requests_to(google, DRIVE_LIST) == 2
    tasks = users.doc(alice)["job"]["result"]["tasks"]
    assert tasks["drive_appdata"] == {"status": "failed", "error": "http_401",
                                      "reason": "UNAUTHENTICATED"}
    assert tasks["userinfo"]["status"] == "ok"


def second_tokens(google, email: str) -> dict:
    """Real tokens from a second consent, to play a refresh answer that rotates the token."""
    code = google.mint_code(client_id=CLIENT_ID, email=email, scopes=ALL_SCOPES,
                            prompt="consent")["code"]
    answer = requests.post(f"{google.base_url}/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET, "redirect_uri": "postmessage"}, timeout=10).json()
    return {key: answer[key] for key in ("access_token", "refresh_token", "expires_in", "scope",
                                         "token_type")}


def test_a_new_refresh_token_is_saved_before_it_is_used(users, job, google):
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    rotated = second_tokens(google, "alice@example.com")
    google.fault("/token", 200, rotated, match={"grant_type": "refresh_token"})

    assert job.run().succeeded == 1

    assert users.open(alice, "refresh_token") == rotated["refresh_token"]
    assert users.open(alice, "access_token") == rotated["access_token"]
    assert job.user_lines()[0]["refresh_token_rotated"] is True


def test_a_new_refresh_token_that_cannot_be_saved_is_not_used(users, job, google, monkeypatch):
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    stored = users.open(alice, "refresh_token")
    rotated = second_tokens(google, "alice@example.com")
    google.fault("/token", 200, rotated, match={"grant_type": "refresh_token"})

    def unavailable(self, user, sealed, now, expires_in=None, ids=None):
        raise Unavailable("down", dependency="firestore")

    monkeypatch.setattr(JobStore, "save_refresh_token", unavailable)
    assert job.run().deferred == 1

    assert requests_to(google, DRIVE_LIST) == 0
    assert users.open(alice, "refresh_token") == stored
    assert users.doc(alice)["job"]["result"] == {"outcome": "deferred",
                                                 "error": "firestore_unavailable"}


# Tasks


def test_a_failing_task_fails_alone(users, make_job, google, monkeypatch):
    monkeypatch.setattr(user_tasks, "_REGISTRY", dict(user_tasks._REGISTRY))

    @user_tasks.offline_task("broken", scopes=("openid",))
    def broken(api, user):
        raise KeyError("a bug in a team's task")

    alice = users.sign_in("alice@example.com")
    job = make_job({"OFFLINE_TASKS": "broken,drive_appdata"})

    assert job.run().partial == 1

    tasks = users.doc(alice)["job"]["result"]["tasks"]
    assert tasks["broken"] == {"status": "failed", "error": "task_error",
                               "exception_type": "KeyError"}
    assert tasks["drive_appdata"]["status"] == "ok"
    assert users.doc(alice)["job"]["failure_count"] == 0
