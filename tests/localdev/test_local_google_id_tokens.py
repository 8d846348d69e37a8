"""Service accounts' ID tokens from the local Google, as `google.oauth2.id_token.fetch_id_token`
gets them with a key file: the JWT-bearer grant with a `target_audience` assertion answers a
Google-signed ID token for that audience. This is how a caller authenticates to a Cloud Run
service locally with the same code as in production."""

from __future__ import annotations

import json
import time

import pytest
import requests
from google.auth import exceptions as auth_exceptions
from google.auth import jwt
from google.auth.transport.requests import Request
from google.oauth2 import id_token, service_account

from localdev.local_google import LocalGoogle

CLIENT_ID = "id-token-test.apps.googleusercontent.com"
AUDIENCE = "https://token-api-abc123-uc.a.run.app"


@pytest.fixture(scope="module")
def google():
    server = LocalGoogle(client_id=CLIENT_ID, client_secret="s3cret", project_id="demo-ids").start()
    yield server
    server.stop()


@pytest.fixture
def key_file(google, tmp_path):
    info = google.control.service_account("app-backend@demo-ids.iam.gserviceaccount.com",
                                          roles=[])["key_file"]
    path = tmp_path / "key.json"
    path.write_text(json.dumps(info))
    return info, path


def verify(google, token: str, audience: str) -> dict:
    return id_token.verify_token(token, Request(),
                                 audience=audience, certs_url=f"{google.url}/oauth2/v1/certs")


def test_fetch_id_token_with_a_key_file(google, key_file, monkeypatch):
    info, path = key_file
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    token = id_token.fetch_id_token(Request(), AUDIENCE)
    claims = verify(google, token, AUDIENCE)
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["email"] == info["client_email"] and claims["email_verified"] is True
    assert claims["sub"] == claims["azp"] and claims["sub"].isdigit()


def test_an_id_token_is_for_its_audience_only(google, key_file):
    info, _ = key_file
    credentials = service_account.IDTokenCredentials.from_service_account_info(
        info, target_audience=AUDIENCE)
    credentials.refresh(Request())
    with pytest.raises(ValueError):
        verify(google, credentials.token, "https://another-service.a.run.app")


def test_a_forged_assertion_gets_no_id_token(google, key_file):
    info, _ = key_file
    other = google.control.service_account("someone-else@demo-ids.iam.gserviceaccount.com",
                                           roles=[])["key_file"]
    # Signed with another account's key, claiming to be the first account.
    forged = service_account.IDTokenCredentials.from_service_account_info(
        {**other, "client_email": info["client_email"]}, target_audience=AUDIENCE)
    with pytest.raises(auth_exceptions.RefreshError) as caught:
        forged.refresh(Request())
    assert "invalid_grant" in str(caught.value)


def test_an_empty_target_audience_is_refused(google, key_file):
    info, _ = key_file
    signer = service_account.Credentials.from_service_account_info(info).signer
    now = time.time()
    bad = jwt.encode(signer, {"iss": info["client_email"], "aud": info["token_uri"],
                              "iat": int(now), "exp": int(now) + 600, "target_audience": ""})
    answer = requests.post(info["token_uri"], data={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": bad}, timeout=10)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_scope"


def test_an_account_with_a_long_email_gets_a_key_file(google):
    email = "offline-access-account@demo-offline-access.iam.gserviceaccount.com"  # 66 characters
    info = google.service_account_key(email, "demo-offline-access")
    credentials = service_account.IDTokenCredentials.from_service_account_info(
        info, target_audience=AUDIENCE)
    credentials.refresh(Request())
    assert verify(google, credentials.token, AUDIENCE)["email"] == email
