"""The job's diagnoses follow Google's clocks: time-based access, and the refresh token's issue
rather than the last sign-in (review fault 9)."""

from __future__ import annotations

import datetime as dt

from tests.stack_values import CLIENT_ID

DAY = 24 * 3600


def shifted(days: float):
    return lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)


def test_time_based_access_that_ended_is_its_own_reason(users, make_job, google):
    alice = users.sign_in("alice@example.com", refresh_token_lifetime_seconds=DAY)
    assert users.doc(alice)["refresh_token_expires_at"] is not None
    google.advance_clock(DAY + 60)

    assert make_job(now=shifted(1.01)).run().needs_reauth == 1

    assert google.state()["refresh_tokens"][0]["dead_reason"] == "time_based_expiry"
    assert users.doc(alice)["reauth_reason"] == "time_based_access_expiry"


def test_a_rotated_refresh_token_brings_its_own_issue_time_and_expiry(users, job, google):
    from tests.integration.job.test_offline_job_failures import second_tokens

    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    issued = users.doc(alice)["refresh_token_issued_at"]
    rotated = {**second_tokens(google, "alice@example.com"), "refresh_token_expires_in": 3600}
    google.fault("/token", 200, rotated, match={"grant_type": "refresh_token"})

    assert job.run().succeeded == 1

    doc = users.doc(alice)
    assert doc["refresh_token_issued_at"] > issued
    lifetime = doc["refresh_token_expires_at"] - doc["refresh_token_issued_at"]
    assert abs(lifetime.total_seconds() - 3600) < 1


def test_testing_mode_counts_from_the_refresh_tokens_issue_not_the_last_sign_in(
        users, make_job, google):
    google.client(CLIENT_ID, testing_mode=True)
    try:
        alice = users.sign_in("alice@example.com")
        google.advance_clock(3 * DAY)
        users.exchange.now = shifted(3)
        users.sign_in("alice@example.com")  # no consent screen: no new refresh token
        doc = users.doc(alice)
        assert doc["signed_in_at"] - doc["refresh_token_issued_at"] > dt.timedelta(days=2.9)
        google.advance_clock(5 * DAY)

        assert make_job({"OAUTH_APP_TESTING_MODE": "true"}, now=shifted(8)).run().needs_reauth == 1
    finally:
        google.client(CLIENT_ID, testing_mode=False)
    assert users.doc(alice)["reauth_reason"] == "testing_mode_expiry"
