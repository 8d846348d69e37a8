"""Why a refresh token died: the decision table."""

from __future__ import annotations

import datetime as dt

import pytest

from offline_access.offline import reauth_reasons

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


DRIVE = "https://www.googleapis.com/auth/drive.appdata"


def record(consented_days_ago: float | None = 1, refreshed_days_ago: float | None = None,
           scopes=("openid", DRIVE)) -> dict:
    doc: dict = {"granted_scopes": list(scopes), "job": {}}
    if consented_days_ago is not None:
        doc["signed_in_at"] = NOW - dt.timedelta(days=consented_days_ago)
    if refreshed_days_ago is not None:
        doc["job"]["refreshed_at"] = NOW - dt.timedelta(days=refreshed_days_ago)
    return doc


class TestReauthReasons:
    @pytest.mark.parametrize("doc,subtype,testing,expected", [
        (record(), "invalid_rapt", False, reauth_reasons.REAUTH_REQUIRED),
        (record(), "rapt_required", True, reauth_reasons.REAUTH_REQUIRED),
        (record(8), "invalid_grant", True, reauth_reasons.TESTING_MODE_EXPIRY),
        (record(7), "invalid_grant", True, reauth_reasons.TESTING_MODE_EXPIRY),
        (record(6), "invalid_grant", True, reauth_reasons.REVOKED),
        (record(8), "invalid_grant", False, reauth_reasons.REVOKED),
        # Only Sign-In scopes: exempt from the Testing expiry.
        (record(8, scopes=("openid", "https://www.googleapis.com/auth/userinfo.email")),
         "invalid_grant", True, reauth_reasons.REVOKED),
        (record(200), "invalid_grant", False, reauth_reasons.UNUSED_6_MONTHS),
        (record(200, refreshed_days_ago=181), "invalid_grant", False,
         reauth_reasons.UNUSED_6_MONTHS),
        # Used recently by the job: not idle, so most likely revoked.
        (record(200, refreshed_days_ago=1), "invalid_grant", False, reauth_reasons.REVOKED),
        (record(None), "invalid_grant", False, reauth_reasons.UNKNOWN),
    ])
    def test_decision_table(self, doc, subtype, testing, expected):
        assert reauth_reasons.classify(doc, error_subtype=subtype, now=NOW,
                                       testing_mode=testing) == expected

    @pytest.mark.parametrize("issued_days_ago,signed_in_days_ago,testing,expected", [
        # Review fault 9: a sign-in without a new refresh token moved `signed_in_at`, which
        # made a Testing-mode expiry look like a revocation, and hid a 6-month idle token.
        (8, 3, True, reauth_reasons.TESTING_MODE_EXPIRY),
        (200, 10, False, reauth_reasons.UNUSED_6_MONTHS),
        (3, 3, True, reauth_reasons.REVOKED),
    ])
    def test_the_clocks_run_from_the_refresh_tokens_issue(self, issued_days_ago, signed_in_days_ago,
                                                           testing, expected):
        doc = record(signed_in_days_ago)
        doc["refresh_token_issued_at"] = NOW - dt.timedelta(days=issued_days_ago)
        assert reauth_reasons.classify(doc, error_subtype="invalid_grant", now=NOW,
                                       testing_mode=testing) == expected

    @pytest.mark.parametrize("expires_in_minutes,expected", [
        (-1, reauth_reasons.TIME_BASED_ACCESS_EXPIRY),
        (5, reauth_reasons.TIME_BASED_ACCESS_EXPIRY),  # within our clock's slack
        (60, reauth_reasons.REVOKED),
    ])
    def test_time_based_access_expiry_is_its_own_reason(self, expires_in_minutes, expected):
        # Review fault 9: `refresh_token_expires_in` was dropped and its expiry read "revoked".
        doc = record(1)
        doc["refresh_token_expires_at"] = NOW + dt.timedelta(minutes=expires_in_minutes)
        assert reauth_reasons.classify(doc, error_subtype="invalid_grant", now=NOW) == expected

    def test_every_reason_is_in_the_vocabulary(self):
        assert len(set(reauth_reasons.REASONS)) == 10
        assert "unreadable_token" in reauth_reasons.REASONS
        # Told by Google's Cross-Account Protection, never inferred by `classify`.
        assert "revoked_at_google" in reauth_reasons.REASONS
