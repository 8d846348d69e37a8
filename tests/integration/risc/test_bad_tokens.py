"""The bad-SET matrix: every malformed or forged token is answered 400 and changes nothing.

The forgeries are made by the local Google from a real event (`risc_event(forgery=...)`), so
each differs from a valid token in one thing only; truncated, tampered and oversized bodies are
cut from a valid token. Each is POSTed to the receiver as Google's transmitter does, and one
goes through the transmitter itself, which must then give up instead of retrying for ever.
"""

from __future__ import annotations

import base64
import json

import pytest
import requests

from offline_access.store.security_events import COLLECTION

ALICE = "100000000000000000001"
SET_HEADERS = {"Content-Type": "application/secevent+jwt", "Accept": "application/json"}


def post(receiver, body: bytes | str) -> requests.Response:
    return requests.post(receiver.url, data=body, headers=SET_HEADERS, timeout=30)


def snapshot(site) -> tuple[dict, list]:
    """Everything the receiver could have changed: Alice's document and the event records."""
    client = site.account.store.client
    return site.account.store.get(ALICE), [d.to_dict() for d in client.collection(COLLECTION).stream()]


def b64(value: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.fixture
def signed_in(site, google, receiver):
    """Alice signed in with a live session, and no stream: tokens are minted, not delivered."""
    browser = site.browser()
    browser.sign_in(google)
    return browser


def valid_token(google) -> str:
    return google.risc_event("sessions-revoked", sub=ALICE)["token"]


@pytest.mark.parametrize(("forgery", "error", "err"), [
    ("wrong_kid", "unknown_key", "invalid_key"),
    ("no_kid", "no_key_id", "invalid_key"),
    ("unknown_key", "unknown_key", "invalid_key"),
    ("wrong_aud", "wrong_audience", "invalid_audience"),
    ("wrong_iss", "wrong_issuer", "invalid_issuer"),
    ("alg_none", "unsupported_algorithm", "invalid_key"),
    ("hs256", "unsupported_algorithm", "invalid_key"),
    ("garbage", "malformed_token", "invalid_request"),
])
def test_a_forged_token_is_refused_with_400_and_nothing_is_done(site, google, receiver, signed_in,
                                                                forgery, error, err):
    before = snapshot(site)
    token = google.risc_event("sessions-revoked", sub=ALICE, forgery=forgery)["token"]

    answer = post(receiver, token)

    assert answer.status_code == 400, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert (body["error"], body["err"]) == (error, err)
    assert body["message"] == body["description"] and body["message"].endswith(".")
    assert snapshot(site) == before
    assert signed_in.me().status == 200  # the session was not ended


def _cut(token: str, case: str) -> str:
    header, claims, signature = token.split(".")
    if case == "truncated_signature":
        return f"{header}.{claims}.{signature[:len(signature) // 2]}"
    if case == "truncated_to_two_segments":
        return f"{header}.{claims}"
    if case == "cut_mid_claims":
        return f"{header}.{claims[:len(claims) // 2]}"
    if case == "tampered_claims":
        decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
        # The same claims naming another user, under the original signature.
        decoded["events"] = {k: {**v, "subject": {**v["subject"], "sub": "100000000000000000002"}}
                             for k, v in decoded["events"].items()}
        return f"{header}.{b64(decoded)}.{signature}"
    if case == "empty":
        return ""
    if case == "not_ascii":
        return f"{header}.{claims}.{signature}é"
    if case == "json_array_header":
        return f"{base64.urlsafe_b64encode(b'[1]').decode().rstrip('=')}.{claims}.{signature}"
    raise AssertionError(case)


@pytest.mark.parametrize(("case", "error"), [
    ("truncated_signature", "bad_signature"),
    ("truncated_to_two_segments", "malformed_token"),
    ("cut_mid_claims", "malformed_token"),
    ("tampered_claims", "bad_signature"),
    ("empty", "malformed_token"),
    ("not_ascii", "malformed_token"),
    ("json_array_header", "malformed_token"),
])
def test_a_truncated_tampered_or_garbled_token_is_refused(site, google, receiver, signed_in, case, error):
    before = snapshot(site)

    answer = post(receiver, _cut(valid_token(google), case).encode())

    assert (answer.status_code, answer.json()["error"]) == (400, error), answer.text
    assert snapshot(site) == before


def test_an_oversized_body_is_refused_unread(site, google, receiver, signed_in):
    before = snapshot(site)
    token = valid_token(google)

    answer = post(receiver, token + "A" * (64 * 1024))

    assert (answer.status_code, answer.json()["error"], answer.json()["err"]) == (
        400, "payload_too_large", "invalid_request")
    assert snapshot(site) == before


def test_other_methods_are_refused_with_405_json(receiver):
    answer = requests.get(receiver.url, timeout=10)
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST"
    assert answer.json()["error"] == "method_not_allowed"


def test_a_token_with_an_expired_exp_is_still_valid(site, google, receiver, signed_in):
    # Security event tokens carry no `exp`; a receiver must not check one.
    token = google.risc_event("sessions-revoked", sub=ALICE, forgery="exp_in_past")["token"]

    assert post(receiver, token).status_code == 202
    assert signed_in.me().status == 401


def test_a_forged_push_is_refused_and_the_transmitter_gives_up(site, google, stream, signed_in):
    google.risc_settings(max_attempts=2)
    before = snapshot(site)

    sent = google.risc_event("account-disabled", sub=ALICE, reason="hijacking", forgery="hs256")
    delivery = google.risc_wait(sent["jti"])

    assert (delivery["status"], delivery["answers"]) == ("gave_up", [400, 400])
    assert stream.statuses == [400, 400]
    assert snapshot(site) == before
    assert [g for g in google.state()["grants"] if g["sub"] == ALICE]  # nothing revoked
