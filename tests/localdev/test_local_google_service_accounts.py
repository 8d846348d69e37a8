"""The local Google's JWT-bearer grant: google-auth's own `fetch_id_token` gets a verifiable ID token
for a service-account key file the local Google issued, and every forged assertion is refused."""

from __future__ import annotations

import json
import time

import google.auth.exceptions as google_exceptions
import google.auth.transport.requests as google_requests
import pytest
import requests
from google.auth import crypt, jwt
from google.oauth2 import id_token as google_id_token

from localdev.local_google import LocalGoogle
from localdev.local_google.service_accounts import BAD_AUDIENCE, BAD_SIGNATURE, JWT_BEARER
from localdev.local_google.service_accounts import BAD_TIMES as BAD_TIME

TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"

CALLER = "offline-access-account@demo.iam.gserviceaccount.com"
AUDIENCE = "http://127.0.0.1:8083"


@pytest.fixture(scope="module")
def google():
    with LocalGoogle() as server:
        yield server


@pytest.fixture
def key_file(google, tmp_path, monkeypatch):
    key = google.service_account_key(CALLER)
    path = tmp_path / "caller-key.json"
    path.write_text(json.dumps(key))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    return key


def verify(google, token: str, audience: str = AUDIENCE) -> dict:
    return google_id_token.verify_token(token, google_requests.Request(), audience=audience,
                                        certs_url=f"{google.url}/oauth2/v1/certs")


def assertion(key: dict, **claims) -> str:
    now = int(time.time())
    payload = {"iss": key["client_email"], "aud": TOKEN_AUDIENCE, "iat": now, "exp": now + 3600,
               "target_audience": AUDIENCE, **claims}
    signer = crypt.RSASigner.from_service_account_info(key)
    return jwt.encode(signer, {k: v for k, v in payload.items() if v is not None}).decode()


def grant(google, assertion_value: str | None) -> requests.Response:
    form = {"grant_type": JWT_BEARER}
    if assertion_value is not None:
        form["assertion"] = assertion_value
    return requests.post(f"{google.url}/token", data=form, timeout=5)


def test_fetch_id_token_gets_a_google_signed_token_for_the_audience(google, key_file):
    token = google_id_token.fetch_id_token(google_requests.Request(), AUDIENCE)

    claims = verify(google, token)
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["aud"] == AUDIENCE
    assert claims["email"] == CALLER and claims["email_verified"] is True
    assert claims["sub"] == key_file["client_id"] and claims["sub"].isdigit()
    assert 3500 <= claims["exp"] - claims["iat"] <= 3600
    assert google.backend.counters.snapshot()["token_grants"][JWT_BEARER] >= 1


def test_the_key_file_looks_like_the_one_gcloud_writes(google, key_file):
    assert key_file["type"] == "service_account"
    assert key_file["token_uri"] == f"{google.url}/token"
    assert key_file["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert len(key_file["private_key_id"]) == 40


def test_the_token_is_for_one_audience_only(google, key_file):
    token = google_id_token.fetch_id_token(google_requests.Request(), AUDIENCE)
    with pytest.raises(ValueError):
        verify(google, token, audience="http://127.0.0.1:9999")


def test_answer_has_only_the_id_token_and_googles_headers(google, key_file):
    answer = grant(google, assertion(key_file))
    assert answer.status_code == 200
    assert set(answer.json()) == {"id_token"}
    assert answer.headers["Cache-Control"].startswith("no-cache, no-store")


@pytest.mark.parametrize("claims, description", [
    ({"aud": "https://example.com/token"}, BAD_AUDIENCE),
    ({"iss": "someone-else@demo.iam.gserviceaccount.com"}, BAD_SIGNATURE),
    ({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, BAD_TIME),
    ({"iat": int(time.time()) + 3600, "exp": int(time.time()) + 4000}, BAD_TIME),
    ({"exp": int(time.time()) + 7300}, BAD_TIME),
])
def test_bad_claims_are_refused(google, key_file, claims, description):
    answer = grant(google, assertion(key_file, **claims))
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_grant", "error_description": description}


def test_a_signature_by_another_key_is_refused(google, key_file):
    other = google.service_account_key(CALLER)
    forged = assertion(dict(other, private_key_id=key_file["private_key_id"]))
    answer = grant(google, forged)
    assert answer.status_code == 400
    assert answer.json()["error_description"] == BAD_SIGNATURE


def test_a_deleted_key_stops_working(google, key_file):
    assert grant(google, assertion(key_file)).status_code == 200
    assert google.backend.service_accounts.delete_key(key_file["private_key_id"])
    answer = grant(google, assertion(key_file))
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    with pytest.raises(google_exceptions.RefreshError):
        google_id_token.fetch_id_token(google_requests.Request(), AUDIENCE)


@pytest.mark.parametrize("value", ["", "not-a-jwt", "a.b.c", "e30.e30.", None])
def test_garbage_assertions_are_a_400(google, value):
    answer = grant(google, value)
    assert answer.status_code == 400
    assert answer.json()["error"] in ("invalid_grant", "invalid_request")


def test_an_assertion_without_exp_is_refused(google, key_file):
    answer = grant(google, assertion(key_file, exp=None))
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_an_access_token_assertion_gets_an_access_token_not_an_id_token(google, key_file):
    answer = grant(google, assertion(key_file, target_audience=None,
                                     scope="https://www.googleapis.com/auth/cloud-platform"))
    assert answer.status_code == 200
    assert set(answer.json()) == {"access_token", "expires_in", "token_type"}


def test_reset_keeps_service_account_keys(google, key_file):
    google.control.reset()
    assert grant(google, assertion(key_file)).status_code == 200
