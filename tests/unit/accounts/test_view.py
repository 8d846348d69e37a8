"""What a signed-in user is told about their account, from the user document alone."""

from __future__ import annotations

import datetime as dt

import pytest

from offline_access.accounts.view import NO_OFFLINE_ACCESS_MESSAGE, REAUTH_MESSAGES, account_body
from offline_access.offline import reauth_reasons

DRIVE = "https://www.googleapis.com/auth/drive.appdata"
WANTED = ("openid", "email", DRIVE)
T = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


def doc(**fields):
    return {"status": "active", "email": "a@example.com", "email_verified": True, "name": "A",
            "granted_scopes": ["openid", "https://www.googleapis.com/auth/userinfo.email", DRIVE],
            "created_at": T, "signed_in_at": T, "next_run_at": T + dt.timedelta(hours=1),
            "refresh_token": {"ciphertext": b"x"}, **fields}


def test_an_active_user():
    body = account_body("1", doc(), WANTED)
    assert body["offline_access"] is True and body["missing_scopes"] == []
    assert body["user"] == {"sub": "1", "email": "a@example.com", "email_verified": True,
                            "name": "A", "picture": None, "hd": None}
    assert body["account"] == {
        "status": "active", "reauth_reason": None, "reauth_message": None,
        "connected_at": "2026-06-01T12:00:00Z", "signed_in_at": "2026-06-01T12:00:00Z",
        "last_run": None, "next_run_at": "2026-06-01T13:00:00Z", "security_notice": None}
    assert "refresh_token" not in repr(body) and "ciphertext" not in repr(body)


@pytest.mark.parametrize("reason", reauth_reasons.REASONS)
def test_every_reauth_reason_has_plain_words(reason):
    account = account_body("1", doc(status="needs_reauth", reauth_reason=reason), WANTED)["account"]
    assert account["reauth_reason"] == reason
    assert account["reauth_message"] == REAUTH_MESSAGES[reason]
    assert account["next_run_at"] is None


def test_the_revoked_reason_says_what_the_user_did():
    assert "You removed this app's access in your Google Account" in REAUTH_MESSAGES["revoked"]


def test_no_offline_access_is_explained():
    body = account_body("1", doc(status="no_offline_access"), WANTED)
    assert body["offline_access"] is False
    assert body["account"]["reauth_message"] == NO_OFFLINE_ACCESS_MESSAGE


def test_the_last_run_and_missing_scopes():
    body = account_body("1", doc(granted_scopes=["openid"], job={
        "last_run_at": T, "result": {"outcome": "succeeded",
                                     "tasks": {"drive_appdata": {"status": "ok", "files": 2}}}}),
        WANTED)
    assert body["missing_scopes"] == ["email", DRIVE]
    assert body["account"]["last_run"] == {
        "at": "2026-06-01T12:00:00Z", "outcome": "succeeded",
        "tasks": {"drive_appdata": {"status": "ok", "files": 2}}}


def test_a_malformed_document_does_not_break_the_answer():
    body = account_body("1", {"status": "active", "granted_scopes": "openid", "job": {
        "last_run_at": T, "result": "odd"}}, WANTED)
    assert body["granted_scopes"] == []
    assert body["account"]["last_run"] == {"at": "2026-06-01T12:00:00Z", "outcome": None,
                                           "tasks": {}}
