"""The events of a verified token as plain values (pure logic)."""

from __future__ import annotations

import datetime as dt

import pytest

from offline_access.risc import events as ev

RISC = "https://schemas.openid.net/secevent/risc/event-type/"
OAUTH = "https://schemas.openid.net/secevent/oauth/event-type/"
SUBJECT = {"subject_type": "iss-sub", "iss": "https://accounts.google.com/", "sub": "1234"}


def claims(events: dict) -> dict:
    return {"iss": "https://accounts.google.com/", "aud": "c", "iat": 1_790_000_000, "jti": "J",
            "events": events}


def test_user_events_name_the_user_and_when_google_issued_them():
    [event] = ev.events_of(claims({RISC + "sessions-revoked": {"subject": SUBJECT}}))
    assert (event.type, event.sub, event.problem) == ("sessions-revoked", "1234", None)
    assert event.issued_at == dt.datetime.fromtimestamp(1_790_000_000, dt.timezone.utc)


def test_an_id_token_claims_subject_names_the_user_too():
    subject = {**SUBJECT, "subject_type": "id_token_claims", "email": "a@example.com"}
    [event] = ev.events_of(claims({RISC + "account-enabled": {"subject": subject}}))
    assert event.sub == "1234"


@pytest.mark.parametrize(("reason", "kept"), [("hijacking", "hijacking"), ("bulk-account", "bulk-account"),
                                              (None, None), ("something-new", None)])
def test_account_disabled_keeps_a_known_reason(reason, kept):
    body = {"subject": SUBJECT, **({"reason": reason} if reason else {})}
    [event] = ev.events_of(claims({RISC + "account-disabled": body}))
    assert event.reason == kept


@pytest.mark.parametrize("alg", ["prefix", "hash_base64_sha512_sha512"])
def test_token_revoked_names_the_token(alg):
    subject = {"subject_type": "oauth_token", "token_type": "refresh_token",
               "token_identifier_alg": alg, "token": "1//0abcdefghijkl"}
    [event] = ev.events_of(claims({OAUTH + "token-revoked": {"subject": subject}}))
    assert (event.token_alg, event.token_id, event.sub) == (alg, "1//0abcdefghijkl", None)
    assert "1//0" not in repr(event)  # never printed


def test_verification_carries_its_state_cut_to_a_loggable_length():
    [event] = ev.events_of(claims({RISC + "verification": {"state": "s" * 500}}))
    assert event.state == "s" * ev.MAX_STATE_CHARS


@pytest.mark.parametrize(("uri", "body", "problem"), [
    (RISC + "future-event", {"subject": SUBJECT}, "unsupported_type"),
    (RISC + "sessions-revoked", {}, "unsupported_subject"),
    (RISC + "sessions-revoked", {"subject": {**SUBJECT, "iss": "https://other.example/"}},
     "unsupported_subject"),
    (RISC + "sessions-revoked", {"subject": {**SUBJECT, "sub": "../users/x"}}, "unsupported_subject"),
    (RISC + "sessions-revoked", {"subject": {"subject_type": "email", "email": "a@example.com"}},
     "unsupported_subject"),
    (OAUTH + "token-revoked", {"subject": {"subject_type": "oauth_token", "token_type": "access_token",
                                           "token_identifier_alg": "prefix", "token": "x"}},
     "unsupported_subject"),
    (OAUTH + "token-revoked", {"subject": SUBJECT}, "unsupported_subject"),
    (RISC + "account-enabled", "not an object", "unsupported_subject"),
])
def test_events_the_receiver_cannot_act_on_say_why(uri, body, problem):
    [event] = ev.events_of(claims({uri: body}))
    assert event.problem == problem and event.sub is None


def test_every_event_of_a_token_is_read():
    found = ev.events_of(claims({RISC + "sessions-revoked": {"subject": SUBJECT},
                                 OAUTH + "tokens-revoked": {"subject": SUBJECT}}))
    assert [e.type for e in found] == ["sessions-revoked", "tokens-revoked"]
