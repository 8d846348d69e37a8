"""What a sign-in writes (pure logic: `store.users.sign_in_fields`), for what security events flag."""

from __future__ import annotations

import datetime as dt

from google.cloud import firestore

from offline_access.store.users import SignInRecord, restored_status, sign_in_fields

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
IDS = {"key": "1", "prefix": "a" * 64, "sha512_sha512": "b" * 64}


def sign_in(refresh: bool, ids: dict | None = None) -> SignInRecord:
    return SignInRecord(sub="1", profile={"email": "a@example.com"}, granted_scopes=("openid",),
                        sealed_refresh_token={"v": 2} if refresh else None,
                        sealed_access_token={"v": 2}, access_token_expires_at=NOW,
                        refresh_token_ids=ids)


def test_a_new_refresh_token_is_stored_with_its_identifiers():
    created, _ = sign_in_fields(sign_in(True, IDS), None, NOW)
    assert created["refresh_token_ids"] == IDS
    updated, _ = sign_in_fields(sign_in(True, IDS), {}, NOW)
    assert updated["refresh_token_ids"] == IDS


def test_a_new_refresh_token_without_identifiers_drops_the_old_tokens():
    updated, _ = sign_in_fields(sign_in(True), {}, NOW)
    assert updated["refresh_token_ids"] is firestore.DELETE_FIELD
    created, _ = sign_in_fields(sign_in(True), None, NOW)
    assert "refresh_token_ids" not in created


def test_a_sign_in_without_a_refresh_token_keeps_the_stored_identifiers():
    fields, _ = sign_in_fields(sign_in(False), {"status": "active", "refresh_token": {"v": 2},
                                                "refresh_token_ids": IDS}, NOW)
    assert "refresh_token_ids" not in fields


def test_a_sign_in_ends_a_suspension_and_answers_a_security_notice():
    # Google lets only an enabled account sign in.
    fields, status = sign_in_fields(sign_in(True, IDS), {}, NOW)
    assert status == "active"
    assert fields["suspension"] is firestore.DELETE_FIELD
    assert fields["security_notice"] is firestore.DELETE_FIELD
    previous = {"status": "suspended", "refresh_token": {"v": 2}, "suspension": {"since": NOW}}
    fields, status = sign_in_fields(sign_in(False), previous, NOW)
    assert status == "active" and fields["suspension"] is firestore.DELETE_FIELD


def test_the_status_a_suspension_ends_in():
    assert restored_status({"refresh_token": {"v": 2}}) == "active"
    assert restored_status({"refresh_token": {"v": 2}, "reauth_reason": "revoked_at_google"}) == "needs_reauth"
    assert restored_status({}) == "no_offline_access"
