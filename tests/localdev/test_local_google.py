"""The local Google against google-oauth.md §8, over real HTTP, checked with google-auth itself."""

from __future__ import annotations

import base64
import concurrent.futures
import email.utils
import hashlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import google.auth.exceptions as google_exceptions
import google.auth.transport.requests as google_requests
import pytest
import requests
from cryptography import x509
from google.auth import jwt
from google.oauth2 import id_token as google_id_token
from google.oauth2.credentials import Credentials

from localdev.local_google import GoogleControl, LocalGoogle
from localdev.local_google.scopes import describe, read_scope_names
from localdev.local_google.signing import at_hash

CLIENT_ID = "cid.apps.googleusercontent.com"
CLIENT_SECRET = "s3cret"
ORIGIN = "http://localhost:8080"
ALICE = "100000000000000000001"
BOB = "100000000000000000002"
APPDATA = "https://www.googleapis.com/auth/drive.appdata"
CALENDAR = "https://www.googleapis.com/auth/calendar"
EMAIL = "https://www.googleapis.com/auth/userinfo.email"
PROFILE = "https://www.googleapis.com/auth/userinfo.profile"
SCOPES = f"openid email profile {APPDATA}"
FULL_SCOPE = {"openid", EMAIL, PROFILE, APPDATA}
TOKEN_CACHE_CONTROL = "no-cache, no-store, max-age=0, must-revalidate"
ROOT = Path(__file__).resolve().parents[2]


# Fixtures: one real server for the module, reset before each test.


@pytest.fixture(scope="module")
def google() -> LocalGoogle:
    server = LocalGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, javascript_origins=[ORIGIN])
    server.start(host="127.0.0.1", port=0)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_google(google: LocalGoogle) -> None:
    google.control.reset()


@pytest.fixture
def ctl(google: LocalGoogle) -> GoogleControl:
    return google.control


# Helpers


def token_request(google: LocalGoogle, *, stream: bool = False, timeout: float = 10,
                  **form) -> requests.Response:
    form = {k: v for k, v in form.items() if v is not None}
    return requests.post(f"{google.url}/token", data=form, timeout=timeout, stream=stream)


def exchange(google: LocalGoogle, code: str, redirect_uri: str | None = "postmessage",
             client_id: str | None = CLIENT_ID, client_secret: str | None = CLIENT_SECRET,
             **extra) -> requests.Response:
    return token_request(google, grant_type="authorization_code", code=code, client_id=client_id,
                         client_secret=client_secret, redirect_uri=redirect_uri, **extra)


def refresh(google: LocalGoogle, refresh_token: str, client_id: str = CLIENT_ID,
            client_secret: str = CLIENT_SECRET, **extra) -> requests.Response:
    return token_request(google, grant_type="refresh_token", refresh_token=refresh_token,
                         client_id=client_id, client_secret=client_secret, **extra)


def sign_in(google: LocalGoogle, ctl: GoogleControl, sub: str = ALICE, scopes: str = SCOPES,
            client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET, **mint) -> dict:
    minted = ctl.mint_code(scopes, sub=sub, client_id=client_id, **mint)
    response = exchange(google, minted["code"], mint.get("redirect_uri", "postmessage"),
                        client_id=client_id, client_secret=client_secret)
    assert response.status_code == 200, response.text
    return response.json()


def oauth_error(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"], body["error_description"]


def v1_certs(google: LocalGoogle) -> dict:
    return requests.get(f"{google.url}/oauth2/v1/certs", timeout=10).json()


def decode_id_token(google: LocalGoogle, token: str, audience: str = CLIENT_ID) -> dict:
    return jwt.decode(token, certs=v1_certs(google), audience=audience)


def unverified_claims(token: str) -> dict:
    return jwt.decode(token, verify=False)


def drive_list(google: LocalGoogle, access_token: str | None, timeout: float = 10,
               **params) -> requests.Response:
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    params.setdefault("spaces", "appDataFolder")
    return requests.get(f"{google.url}/drive/v3/files", params=params, headers=headers, timeout=timeout)


def new_client(ctl: GoogleControl, **settings) -> str:
    client_id = f"{uuid.uuid4().hex[:12]}.apps.googleusercontent.com"
    ctl.client(client_id, "other-secret", [ORIGIN], **settings)
    return client_id


# Authorization code exchange


def test_exchange_returns_google_shaped_token_response(google, ctl):
    minted = ctl.mint_code(SCOPES, sub=ALICE)
    assert re.fullmatch(r"4/0A[0-9A-Za-z_\-]+", minted["code"])

    response = exchange(google, minted["code"])

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["Cache-Control"] == TOKEN_CACHE_CONTROL
    body = response.json()
    assert list(body) == ["access_token", "expires_in", "refresh_token", "scope", "token_type", "id_token"]
    assert body["access_token"].startswith("ya29.")
    assert body["refresh_token"].startswith("1//")
    assert body["expires_in"] == 3599
    assert body["token_type"] == "Bearer"
    assert set(body["scope"].split(" ")) == FULL_SCOPE
    assert body["scope"] == minted["scope"]


def test_id_token_verifies_with_google_auth(google, ctl):
    body = sign_in(google, ctl)

    claims = decode_id_token(google, body["id_token"])
    via_url = google_id_token.verify_token(
        body["id_token"], google_requests.Request(),
        audience=CLIENT_ID, certs_url=f"{google.url}/oauth2/v1/certs",
    )

    assert via_url == claims
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["aud"] == claims["azp"] == CLIENT_ID
    assert claims["sub"] == ALICE
    assert claims["email"] == "alice@example.com"
    assert claims["email_verified"] is True
    assert claims["name"] == "Alice Example"
    assert claims["given_name"] == "Alice" and claims["family_name"] == "Example"
    assert claims["picture"].startswith("http")
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 60
    assert claims["at_hash"] == at_hash(body["access_token"])
    assert "hd" not in claims and "nonce" not in claims
    header = json.loads(base64.urlsafe_b64decode(body["id_token"].split(".")[0] + "=="))
    assert header["alg"] == "RS256" and header["kid"] in v1_certs(google)


def test_workspace_user_has_hd_and_claims_follow_scopes(google, ctl):
    bob = decode_id_token(google, sign_in(google, ctl, sub=BOB)["id_token"])
    assert bob["hd"] == "example.org"

    email_only = sign_in(google, ctl, sub=ALICE, scopes="email")
    assert set(email_only["scope"].split()) == {"openid", EMAIL}
    claims = decode_id_token(google, email_only["id_token"])
    assert claims["email"] == "alice@example.com"
    assert "name" not in claims and "picture" not in claims


def test_no_id_token_without_identity_scopes(google, ctl):
    body = sign_in(google, ctl, scopes=APPDATA)
    assert body["scope"] == APPDATA
    assert "id_token" not in body


def test_client_secret_basic_and_json_body_are_accepted(google, ctl):
    code = ctl.mint_code(SCOPES, sub=ALICE)["code"]
    response = requests.post(
        f"{google.url}/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": "postmessage"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    assert response.status_code == 200, response.text

    code = ctl.mint_code(SCOPES, sub=BOB)["code"]
    response = requests.post(
        f"{google.url}/token",
        json={"grant_type": "authorization_code", "code": code, "redirect_uri": "postmessage",
              "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        timeout=10,
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"grant_type": "password"}, (400, "unsupported_grant_type", "Invalid grant_type: password")),
        # Missing code is checked before the client, even a wrong one.
        ({"code": None, "client_secret": "wrong"},
         (400, "invalid_request", "Missing required parameter: code")),
        ({"client_id": None}, (400, "invalid_request", "Could not determine client ID from request.")),
        ({"client_id": "nobody.apps.googleusercontent.com", "code": "garbage"},
         (401, "invalid_client", "The OAuth client was not found.")),
        ({"client_secret": None}, (400, "invalid_request", "client_secret is missing.")),
        ({"client_secret": "wrong", "code": "garbage"}, (401, "invalid_client", "Unauthorized")),
        ({"code": "4%2F0AbcdefghijklmnopQRST"}, (400, "invalid_grant", "Malformed auth code.")),
        ({"code": "4/0AunknownButWellFormedCode"}, (400, "invalid_grant", "Bad Request")),
        ({"redirect_uri": None},
         (400, "invalid_request", "Missing required parameter: redirect_uri")),
        ({"redirect_uri": "https://elsewhere.example"}, (400, "redirect_uri_mismatch", "Bad Request")),
        ({"code_verifier": "v" * 43}, (400, "invalid_grant", "code_verifier or verifier is not needed.")),
    ],
)
def test_token_errors_in_googles_order(google, ctl, changes, expected):
    form = {
        "grant_type": "authorization_code",
        "code": ctl.mint_code(SCOPES, sub=ALICE)["code"],
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": "postmessage",
        **changes,
    }
    response = token_request(google, **form)

    assert oauth_error(response) == expected
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["Cache-Control"] == TOKEN_CACHE_CONTROL


def test_failed_redirect_check_does_not_consume_the_code(google, ctl):
    code = ctl.mint_code(SCOPES, sub=ALICE)["code"]
    assert exchange(google, code, "https://elsewhere.example").status_code == 400
    assert exchange(google, code).status_code == 200


def test_deleted_client_is_rejected(google, ctl):
    client_id = new_client(ctl)
    code = ctl.mint_code(SCOPES, sub=ALICE, client_id=client_id)["code"]
    ctl.client(client_id, deleted=True)

    response = exchange(google, code, client_id=client_id, client_secret="other-secret")

    assert oauth_error(response)[:2] == (401, "deleted_client")


def test_reused_code_fails_and_revokes_the_first_tokens(google, ctl):
    code = ctl.mint_code(SCOPES, sub=ALICE)["code"]
    first = exchange(google, code).json()
    assert drive_list(google, first["access_token"]).status_code == 200

    assert oauth_error(exchange(google, code)) == (400, "invalid_grant", "Bad Request")

    assert oauth_error(refresh(google, first["refresh_token"])) == (
        400, "invalid_grant", "Token has been expired or revoked.")
    assert drive_list(google, first["access_token"]).status_code == 401
    dead = {t["token"]: t for t in ctl.state()["refresh_tokens"]}[first["refresh_token"]]
    assert dead["dead_reason"] == "code_reuse"


def test_code_expires_after_its_ttl(google, ctl):
    fresh = ctl.mint_code(SCOPES, sub=ALICE)["code"]
    stale = ctl.mint_code(SCOPES, sub=BOB)["code"]
    ctl.advance_clock(599)
    assert exchange(google, fresh).status_code == 200
    ctl.advance_clock(2)
    assert oauth_error(exchange(google, stale)) == (400, "invalid_grant", "Bad Request")

    ctl.settings(code_ttl_seconds=5)
    short = ctl.mint_code(SCOPES, sub=ALICE)["code"]
    ctl.advance_clock(6)
    assert exchange(google, short).status_code == 400


def test_code_is_bound_to_its_client(google, ctl):
    other = new_client(ctl)
    code = ctl.mint_code(SCOPES, sub=ALICE, client_id=other)["code"]
    assert oauth_error(exchange(google, code)) == (400, "invalid_grant", "Bad Request")
    assert exchange(google, code, client_id=other, client_secret="other-secret").status_code == 200


def test_redirect_uri_rules_for_popup_codes(google, ctl):
    for redirect in (ORIGIN, "postmessage"):
        code = ctl.mint_code(SCOPES, sub=ALICE, redirect_uri=ORIGIN)["code"]
        assert exchange(google, code, redirect).status_code == 200

    code = ctl.mint_code(SCOPES, sub=ALICE)["code"]
    assert oauth_error(exchange(google, code, ORIGIN))[1] == "redirect_uri_mismatch"
    code = ctl.mint_code(SCOPES, sub=ALICE, redirect_uri=ORIGIN)["code"]
    assert oauth_error(exchange(google, code, "http://localhost:9999"))[1] == "redirect_uri_mismatch"


def test_pkce(google, ctl):
    verifier = "a" * 20 + "B" * 23
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()

    def mint():
        return ctl.mint_code(SCOPES, sub=ALICE, code_challenge=challenge,
                             code_challenge_method="S256")["code"]

    assert oauth_error(exchange(google, mint())) == (400, "invalid_grant", "Missing code verifier.")
    assert oauth_error(exchange(google, mint(), code_verifier="x" * 43)) == (
        400, "invalid_grant", "Invalid code verifier.")
    assert exchange(google, mint(), code_verifier=verifier).status_code == 200


# Refresh tokens: when they are issued


def test_refresh_token_only_on_first_consent(google, ctl):
    first = ctl.mint_code(SCOPES, sub=ALICE)
    assert first["prompt"] == "consent"
    assert "refresh_token" in exchange(google, first["code"]).json()

    again = ctl.mint_code(SCOPES, sub=ALICE)
    assert again["prompt"] == "none"
    assert "refresh_token" not in exchange(google, again["code"]).json()

    more_scopes = ctl.mint_code(f"{SCOPES} {CALENDAR}", sub=ALICE)
    assert "refresh_token" in exchange(google, more_scopes["code"]).json()

    forced = ctl.mint_code(SCOPES, sub=ALICE, prompt="consent")
    assert "refresh_token" in exchange(google, forced["code"]).json()


def test_consent_recorded_even_if_code_never_redeemed(google, ctl):
    ctl.mint_code(SCOPES, sub=ALICE)  # approved, then the code is lost
    assert "refresh_token" not in sign_in(google, ctl, sub=ALICE)


def test_refresh_token_mode_always(google, ctl):
    client_id = new_client(ctl, refresh_token_mode="always")
    tokens = {sign_in(google, ctl, client_id=client_id, client_secret="other-secret")["refresh_token"]
              for _ in range(3)}
    assert len(tokens) == 3


def test_online_code_has_no_refresh_token(google, ctl):
    assert "refresh_token" not in sign_in(google, ctl, offline=False)


def test_granted_scopes_and_include_granted_scopes(google, ctl):
    partial = sign_in(google, ctl, scopes=f"{SCOPES} {CALENDAR}", granted_scopes="openid email profile")
    assert set(partial["scope"].split()) == {"openid", EMAIL, PROFILE}
    assert drive_list(google, partial["access_token"]).status_code == 403

    union = sign_in(google, ctl, scopes=APPDATA)
    assert set(union["scope"].split()) == {"openid", EMAIL, PROFILE, APPDATA}

    only_new = sign_in(google, ctl, scopes=CALENDAR, include_granted_scopes=False)
    assert only_new["scope"] == CALENDAR


def test_mint_rejects_grants_that_were_not_requested(ctl):
    with pytest.raises(requests.HTTPError, match="not requested"):
        ctl.mint_code("openid email", sub=ALICE, granted_scopes=APPDATA)


@pytest.mark.parametrize("granted", ["openid email", "openid", f"email {APPDATA}", APPDATA])
def test_sign_in_scopes_are_granted_as_a_whole(google, ctl, granted):
    response = requests.post(f"{google.url}/_control/codes", json={
        "sub": ALICE, "scopes": SCOPES, "granted_scopes": granted}, timeout=10)

    assert response.status_code == 400
    assert "Sign-In scopes (openid, email, profile) are granted as a whole" in response.json()["error"]
    state = ctl.state()
    assert state["grants"] == [] and state["codes_outstanding"] == 0


def test_sign_in_scopes_may_be_named_without_openid_and_others_may_be_declined(google, ctl):
    body = sign_in(google, ctl, scopes=f"{SCOPES} {CALENDAR}", granted_scopes=f"email profile {CALENDAR}")

    assert set(body["scope"].split()) == {"openid", EMAIL, PROFILE, CALENDAR}


def project_clients(ctl: GoogleControl, project_id: str, count: int = 2) -> list[str]:
    ids = [f"{uuid.uuid4().hex[:12]}.apps.googleusercontent.com" for _ in range(count)]
    for client_id in ids:
        ctl.client(client_id, "other-secret", [ORIGIN], project_id=project_id)
    return ids


def test_grants_are_unioned_across_the_clients_of_a_project(google, ctl):
    web, other = project_clients(ctl, "shared-project")
    first = sign_in(google, ctl, scopes="openid email profile", client_id=web, client_secret="other-secret")
    assert set(first["scope"].split()) == {"openid", EMAIL, PROFILE}

    second = sign_in(google, ctl, scopes=APPDATA, client_id=other, client_secret="other-secret")

    assert set(second["scope"].split()) == FULL_SCOPE
    assert "refresh_token" in second  # a new scope: the consent screen was shown
    assert decode_id_token(google, second["id_token"], audience=other)["aud"] == other
    refreshed = refresh(google, second["refresh_token"], client_id=other, client_secret="other-secret")
    assert refreshed.status_code == 200, refreshed.text
    assert set(refreshed.json()["scope"].split()) == FULL_SCOPE
    assert drive_list(google, refreshed.json()["access_token"]).status_code == 200
    # Refresh tokens still belong to one client.
    assert oauth_error(refresh(google, first["refresh_token"], client_id=other,
                               client_secret="other-secret"))[:2] == (401, "unauthorized_client")
    (grant,) = [g for g in ctl.state()["grants"] if g["project_id"] == "shared-project"]
    assert grant["client_ids"] == [web, other]
    assert set(grant["scopes"]) == FULL_SCOPE
    assert set(grant["live_refresh_tokens"]) == {first["refresh_token"], second["refresh_token"]}


def test_include_granted_scopes_false_and_other_projects_see_only_their_own_grant(google, ctl):
    web, other = project_clients(ctl, "project-one")
    (elsewhere,) = project_clients(ctl, "project-two", count=1)
    sign_in(google, ctl, scopes=SCOPES, client_id=web, client_secret="other-secret")

    only_new = sign_in(google, ctl, scopes=CALENDAR, client_id=other, client_secret="other-secret",
                       include_granted_scopes=False)
    separate = sign_in(google, ctl, scopes=CALENDAR, client_id=elsewhere, client_secret="other-secret")

    assert only_new["scope"] == CALENDAR
    assert separate["scope"] == CALENDAR


def test_a_second_client_asking_only_for_granted_scopes_sees_no_consent_screen(google, ctl):
    web, other = project_clients(ctl, "quiet-project")
    sign_in(google, ctl, client_id=web, client_secret="other-secret")

    minted = ctl.mint_code(SCOPES, sub=ALICE, client_id=other)
    body = exchange(google, minted["code"], client_id=other, client_secret="other-secret").json()

    assert minted["prompt"] == "none"
    assert "refresh_token" not in body
    assert set(body["scope"].split()) == FULL_SCOPE


def test_revoking_one_clients_token_ends_the_projects_grant(google, ctl):
    web, other = project_clients(ctl, "revoked-project")
    first = sign_in(google, ctl, scopes="openid email", client_id=web, client_secret="other-secret")
    second = sign_in(google, ctl, scopes=APPDATA, client_id=other, client_secret="other-secret")
    untouched = sign_in(google, ctl)  # the default client, its own project

    assert requests.post(f"{google.url}/revoke", data={"token": first["refresh_token"]},
                         timeout=10).status_code == 200

    assert oauth_error(refresh(google, second["refresh_token"], client_id=other,
                               client_secret="other-secret"))[:2] == (400, "invalid_grant")
    assert drive_list(google, second["access_token"]).status_code == 401
    assert refresh(google, untouched["refresh_token"]).status_code == 200


# Refresh


def test_refresh_returns_access_token_and_id_token_but_no_refresh_token(google, ctl):
    signed_in = sign_in(google, ctl)
    response = refresh(google, signed_in["refresh_token"])

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == TOKEN_CACHE_CONTROL
    body = response.json()
    assert "refresh_token" not in body
    assert body["access_token"] != signed_in["access_token"]
    assert body["expires_in"] == 3599 and body["token_type"] == "Bearer"
    assert set(body["scope"].split()) == FULL_SCOPE
    assert decode_id_token(google, body["id_token"])["sub"] == ALICE
    assert drive_list(google, body["access_token"]).status_code == 200


def test_refresh_scope_must_be_a_subset(google, ctl):
    rt = sign_in(google, ctl)["refresh_token"]

    narrowed = refresh(google, rt, scope=f"email {APPDATA}").json()
    assert set(narrowed["scope"].split()) == {EMAIL, APPDATA}
    assert "id_token" not in narrowed

    status, error, description = oauth_error(refresh(google, rt, scope=f"{APPDATA} {CALENDAR}"))
    assert (status, error) == (400, "invalid_scope")
    assert CALENDAR in description


def test_refresh_with_another_clients_token(google, ctl):
    other = new_client(ctl)
    rt = sign_in(google, ctl, client_id=other, client_secret="other-secret")["refresh_token"]
    assert oauth_error(refresh(google, rt)) == (401, "unauthorized_client", "Unauthorized")


def test_refresh_with_unknown_token(google):
    assert oauth_error(refresh(google, "1//0unknown")) == (400, "invalid_grant", "Bad Request")


def test_dead_token_description_changes_after_12_hours(google, ctl):
    rt = sign_in(google, ctl)["refresh_token"]
    ctl.revoke_grant(ALICE)
    assert oauth_error(refresh(google, rt))[2] == "Token has been expired or revoked."
    ctl.advance_clock(13 * 3600)
    assert oauth_error(refresh(google, rt)) == (400, "invalid_grant", "Bad Request")


def test_reauth_required(google, ctl):
    rt = sign_in(google, ctl)["refresh_token"]
    ctl.reauth_required(ALICE, True)

    body = refresh(google, rt).json()
    assert body["error"] == "invalid_grant"
    assert body["error_subtype"] == "invalid_rapt"

    ctl.reauth_required(ALICE, False)
    assert refresh(google, rt).status_code == 200


def test_google_auth_credentials_refresh(google, ctl):
    rt = sign_in(google, ctl)["refresh_token"]
    request = google_requests.Request()
    # With `scopes`, google-auth sends them as the refresh `scope` and reads back the grant.
    credentials = Credentials(None, refresh_token=rt, token_uri=f"{google.url}/token",
                              client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                              scopes=sorted(FULL_SCOPE))

    credentials.refresh(request)

    assert credentials.token.startswith("ya29.")
    assert credentials.valid
    assert decode_id_token(google, credentials.id_token)["sub"] == ALICE
    assert set(credentials.granted_scopes) == FULL_SCOPE

    ctl.revoke_grant(ALICE)
    with pytest.raises(google_exceptions.RefreshError) as caught:
        credentials.refresh(request)
    assert caught.value.args[1]["error"] == "invalid_grant"
    assert caught.value.retryable is False


def test_google_auth_retries_a_503_fault(google, ctl):
    rt = sign_in(google, ctl)["refresh_token"]
    ctl.fault("/token", status=503, match={"grant_type": "refresh_token"})
    credentials = Credentials(None, refresh_token=rt, token_uri=f"{google.url}/token",
                              client_id=CLIENT_ID, client_secret=CLIENT_SECRET)

    credentials.refresh(google_requests.Request())

    counters = ctl.counters()
    assert counters["token_grants"]["refresh_token"] == 2
    assert counters["faults_served"] == 1
    assert counters["refresh_by_sub"] == {ALICE: 1}


# Refresh-token lifecycle


def test_at_most_100_live_refresh_tokens_per_user_and_client(google, ctl):
    client_id = new_client(ctl, refresh_token_mode="always")
    tokens = [sign_in(google, ctl, client_id=client_id, client_secret="other-secret")["refresh_token"]
              for _ in range(101)]

    assert oauth_error(refresh(google, tokens[0], client_id, "other-secret"))[1] == "invalid_grant"
    assert refresh(google, tokens[1], client_id, "other-secret").status_code == 200
    assert refresh(google, tokens[-1], client_id, "other-secret").status_code == 200
    grant = next(g for g in ctl.state()["grants"] if g["client_id"] == client_id)
    assert len(grant["live_refresh_tokens"]) == 100
    dead = {t["token"]: t for t in ctl.state()["refresh_tokens"]}[tokens[0]]
    assert dead["dead_reason"] == "token_limit_eviction"
    assert refresh(google, tokens[0], client_id, "other-secret").json()["error_description"] == (
        "Token has been expired or revoked.")


def test_testing_mode_refresh_tokens_expire_after_7_days(google, ctl):
    client_id = new_client(ctl, testing_mode=True)
    drive = sign_in(google, ctl, sub=ALICE, client_id=client_id, client_secret="other-secret")
    identity_only = sign_in(google, ctl, sub=BOB, scopes="openid email profile",
                            client_id=client_id, client_secret="other-secret")
    assert "refresh_token_expires_in" not in drive

    ctl.advance_clock(7 * 86400 - 60)
    assert refresh(google, drive["refresh_token"], client_id, "other-secret").status_code == 200
    ctl.advance_clock(120)
    assert oauth_error(refresh(google, drive["refresh_token"], client_id, "other-secret")) == (
        400, "invalid_grant", "Token has been expired or revoked.")
    assert refresh(google, identity_only["refresh_token"], client_id, "other-secret").status_code == 200

    # Google asks for consent again, so the next sign-in brings a new refresh token.
    again = sign_in(google, ctl, sub=ALICE, client_id=client_id, client_secret="other-secret")
    assert "refresh_token" in again


def test_refresh_token_dies_after_6_months_unused(google, ctl):
    used = sign_in(google, ctl, sub=ALICE)["refresh_token"]
    idle = sign_in(google, ctl, sub=BOB)["refresh_token"]
    ctl.advance_clock(100 * 86400)
    assert refresh(google, used).status_code == 200
    ctl.advance_clock(100 * 86400)

    assert refresh(google, used).status_code == 200
    assert oauth_error(refresh(google, idle))[1] == "invalid_grant"
    dead = {t["token"]: t for t in ctl.state()["refresh_tokens"]}[idle]
    assert dead["dead_reason"] == "unused_6_months"
    assert "refresh_token" in sign_in(google, ctl, sub=BOB)  # consent is asked again


def test_time_based_access(google, ctl):
    body = sign_in(google, ctl, refresh_token_lifetime_seconds=3600)
    assert body["refresh_token_expires_in"] == 3600
    ctl.advance_clock(3601)
    assert oauth_error(refresh(google, body["refresh_token"]))[1] == "invalid_grant"


def test_access_tokens_expire_on_the_injectable_clock(google, ctl):
    access = sign_in(google, ctl)["access_token"]
    ctl.advance_clock(3500)
    assert drive_list(google, access).status_code == 200
    ctl.advance_clock(101)
    assert drive_list(google, access).status_code == 401


# Revocation


def test_revoke_refresh_token_by_query_or_form(google, ctl):
    first = sign_in(google, ctl, sub=ALICE)
    second = sign_in(google, ctl, sub=BOB)

    by_query = requests.post(f"{google.url}/revoke", params={"token": first["refresh_token"]}, timeout=10)
    by_form = requests.post(f"{google.url}/revoke", data={"token": second["refresh_token"]}, timeout=10)

    for response in (by_query, by_form):
        assert response.status_code == 200
        assert response.content == b""
    assert oauth_error(refresh(google, first["refresh_token"]))[1] == "invalid_grant"
    assert drive_list(google, second["access_token"]).status_code == 401


def test_revoking_an_access_token_kills_its_refresh_token_and_grant(google, ctl):
    body = sign_in(google, ctl)
    assert requests.post(f"{google.url}/revoke", params={"token": body["access_token"]},
                         timeout=10).status_code == 200

    assert oauth_error(refresh(google, body["refresh_token"]))[1] == "invalid_grant"
    assert ctl.state()["grants"] == []
    assert "refresh_token" in sign_in(google, ctl)


def test_revoke_errors(google, ctl):
    rt = sign_in(google, ctl)["refresh_token"]
    assert requests.get(f"{google.url}/revoke", params={"token": rt}, timeout=10).status_code == 404
    assert refresh(google, rt).status_code == 200  # the GET did nothing

    unknown = requests.post(f"{google.url}/revoke", params={"token": "ya29.nope"}, timeout=10)
    assert oauth_error(unknown) == (400, "invalid_token", "Token expired or revoked")

    requests.post(f"{google.url}/revoke", params={"token": rt}, timeout=10)
    twice = requests.post(f"{google.url}/revoke", params={"token": rt}, timeout=10)
    assert oauth_error(twice)[:2] == (400, "invalid_token")


def test_user_revokes_access_in_google_account(google, ctl):
    body = sign_in(google, ctl)
    assert ctl.revoke_grant(ALICE) is True

    assert oauth_error(refresh(google, body["refresh_token"])) == (
        400, "invalid_grant", "Token has been expired or revoked.")
    assert requests.get(f"{google.url}/oauth2/v3/userinfo",
                        headers={"Authorization": f"Bearer {body['access_token']}"},
                        timeout=10).status_code == 401
    assert "refresh_token" in sign_in(google, ctl)
    assert ctl.revoke_grant(BOB) is False


# Keys, certs, discovery


def test_certs_endpoints(google, ctl):
    v1 = requests.get(f"{google.url}/oauth2/v1/certs", timeout=10)
    v3 = requests.get(f"{google.url}/oauth2/v3/certs", timeout=10)

    for response in (v1, v3):
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "public, max-age=21600, must-revalidate, no-transform"
        expires = email.utils.parsedate_to_datetime(response.headers["Expires"]).timestamp()
        assert abs(expires - (time.time() + 21600)) < 60
    ((kid, pem),) = v1.json().items()
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    (jwk,) = v3.json()["keys"]
    assert (jwk["kid"], jwk["kty"], jwk["alg"], jwk["use"], jwk["e"]) == (kid, "RSA", "RS256", "sig", "AQAB")
    n = int.from_bytes(base64.urlsafe_b64decode(jwk["n"] + "=="), "big")
    assert x509.load_pem_x509_certificate(pem.encode()).public_key().public_numbers().n == n

    ctl.settings(certs_max_age_seconds=60)
    assert "max-age=60," in requests.get(f"{google.url}/oauth2/v1/certs", timeout=10).headers["Cache-Control"]
    assert ctl.counters()["requests"]["GET /oauth2/v1/certs"] == 2


def test_key_rotation_keeps_the_previous_key_for_a_while(google, ctl):
    before = sign_in(google, ctl, sub=ALICE)["id_token"]
    old_kid = jwt.decode_header(before)["kid"]

    rotated = ctl.rotate_keys()
    after = sign_in(google, ctl, sub=BOB)["id_token"]

    assert rotated["published"] == [rotated["kid"], old_kid]
    assert jwt.decode_header(after)["kid"] == rotated["kid"]
    assert decode_id_token(google, before)["sub"] == ALICE
    assert decode_id_token(google, after)["sub"] == BOB
    assert len(requests.get(f"{google.url}/oauth2/v3/certs", timeout=10).json()["keys"]) == 2

    ctl.rotate_keys()
    assert old_kid not in v1_certs(google)
    with pytest.raises(ValueError):
        decode_id_token(google, before)


@pytest.mark.parametrize("mode", ["expired", "wrong_aud", "unknown_key", "alg_none", "hs256"])
def test_bad_id_token_modes_are_rejected_by_google_auth(google, ctl, mode):
    ctl.id_token_mode(mode)
    token = sign_in(google, ctl)["id_token"]
    with pytest.raises((ValueError, google_exceptions.GoogleAuthError)):
        decode_id_token(google, token)


def test_wrong_iss_and_no_sub_modes(google, ctl):
    ctl.id_token_mode("wrong_iss")
    claims = decode_id_token(google, sign_in(google, ctl, sub=ALICE)["id_token"])
    assert claims["iss"] not in ("https://accounts.google.com", "accounts.google.com")

    ctl.id_token_mode("no_sub")
    assert "sub" not in decode_id_token(google, sign_in(google, ctl, sub=BOB)["id_token"])


def test_bare_issuer_mode_is_accepted(google, ctl):
    ctl.id_token_mode("bare_iss")
    token = sign_in(google, ctl)["id_token"]
    assert decode_id_token(google, token)["iss"] == "accounts.google.com"


def test_id_token_modes_affect_refresh_and_reset_restores_normal(google, ctl):
    rt = sign_in(google, ctl)["refresh_token"]
    ctl.id_token_mode("expired")
    expired = refresh(google, rt).json()["id_token"]
    assert unverified_claims(expired)["exp"] < time.time()
    with pytest.raises(requests.HTTPError):
        ctl.id_token_mode("made_up")


def test_discovery_document(google):
    response = requests.get(f"{google.url}/.well-known/openid-configuration", timeout=10)
    doc = response.json()
    assert doc["issuer"] == "https://accounts.google.com"
    assert doc["token_endpoint"] == f"{google.url}/token"
    assert doc["jwks_uri"] == f"{google.url}/oauth2/v3/certs"
    assert doc["authorization_endpoint"] == f"{google.url}/o/oauth2/v2/auth"
    assert doc["revocation_endpoint"] == f"{google.url}/revoke"
    assert requests.get(doc["userinfo_endpoint"], timeout=10).status_code == 401
    assert "client_secret_basic" in doc["token_endpoint_auth_methods_supported"]


# userinfo


def test_userinfo(google, ctl):
    body = sign_in(google, ctl, sub=BOB)
    response = requests.get(f"{google.url}/oauth2/v3/userinfo",
                            headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=10)
    assert response.status_code == 200
    info = response.json()
    assert list(info) == ["sub", "name", "given_name", "family_name", "picture", "email",
                          "email_verified", "hd"]
    assert info["sub"] == BOB and info["email"] == "bob@example.org" and info["hd"] == "example.org"
    assert requests.get(info["picture"], timeout=10).headers["Content-Type"] == "image/svg+xml"


def test_userinfo_errors(google, ctl):
    url = f"{google.url}/oauth2/v3/userinfo"
    missing = requests.get(url, timeout=10)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="https://accounts.google.com/"'

    bad = requests.get(url, headers={"Authorization": "Bearer ya29.bogus"}, timeout=10)
    assert bad.status_code == 401
    assert 'error="invalid_token"' in bad.headers["WWW-Authenticate"]
    assert bad.json()["error"] == "invalid_request"

    drive_only = sign_in(google, ctl, scopes=APPDATA)["access_token"]
    insufficient = requests.get(url, headers={"Authorization": f"Bearer {drive_only}"}, timeout=10)
    assert insufficient.status_code == 403
    assert 'error="insufficient_scope"' in insufficient.headers["WWW-Authenticate"]

    access = sign_in(google, ctl, sub=BOB)["access_token"]
    ctl.advance_clock(3601)
    assert requests.get(url, headers={"Authorization": f"Bearer {access}"}, timeout=10).status_code == 401


# Drive appDataFolder


def test_drive_lists_app_data_files(google, ctl):
    stored = ctl.drive_files(ALICE, [{"name": "settings.json"}, {"name": "notes.txt", "mimeType": "text/plain"}])
    access = sign_in(google, ctl)["access_token"]

    response = drive_list(google, access)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["kind"] == "drive#fileList"
    assert "nextPageToken" not in body
    assert body["files"] == [
        {"kind": "drive#file", "id": stored[0]["id"], "name": "settings.json", "mimeType": "application/json"},
        {"kind": "drive#file", "id": stored[1]["id"], "name": "notes.txt", "mimeType": "text/plain"},
    ]
    bob_access = sign_in(google, ctl, sub=BOB)["access_token"]
    assert drive_list(google, bob_access).json()["files"] == []


def test_drive_paging_and_fields(google, ctl):
    ctl.drive_files(ALICE, [{"name": f"f{i}.json"} for i in range(5)])
    access = sign_in(google, ctl)["access_token"]

    first = drive_list(google, access, pageSize=2).json()
    assert [f["name"] for f in first["files"]] == ["f0.json", "f1.json"]
    second = drive_list(google, access, pageSize=2, pageToken=first["nextPageToken"]).json()
    assert [f["name"] for f in second["files"]] == ["f2.json", "f3.json"]
    last = drive_list(google, access, pageSize=2, pageToken=second["nextPageToken"]).json()
    assert [f["name"] for f in last["files"]] == ["f4.json"] and "nextPageToken" not in last

    selected = drive_list(google, access, pageSize=2, fields="files(id,name)").json()
    assert list(selected) == ["files"]
    assert set(selected["files"][0]) == {"id", "name"}
    with_token = drive_list(google, access, pageSize=2, fields="nextPageToken,files/id").json()
    assert set(with_token) == {"nextPageToken", "files"} and set(with_token["files"][0]) == {"id"}
    everything = drive_list(google, access, fields="*").json()
    assert "createdTime" in everything["files"][0]


@pytest.mark.parametrize(
    ("params", "location"),
    [({"pageSize": "0"}, "pageSize"), ({"pageSize": "1001"}, "pageSize"),
     ({"pageToken": "garbage"}, "pageToken"), ({"fields": "bogus"}, "fields"),
     ({"spaces": "photos"}, "spaces")],
)
def test_drive_bad_parameters(google, ctl, params, location):
    access = sign_in(google, ctl)["access_token"]
    response = drive_list(google, access, **params)
    assert response.status_code == 400
    assert response.json()["error"]["errors"][0]["location"] == location


def test_drive_auth_errors(google, ctl):
    no_scope = sign_in(google, ctl, scopes="openid email")["access_token"]
    forbidden = drive_list(google, no_scope)
    assert forbidden.status_code == 403
    error = forbidden.json()["error"]
    assert error["code"] == 403
    assert error["message"] == "Request had insufficient authentication scopes."
    assert error["status"] == "PERMISSION_DENIED"
    assert error["errors"][0]["reason"] == "insufficientPermissions"

    for token in (None, "ya29.bogus"):
        unauthorized = drive_list(google, token)
        assert unauthorized.status_code == 401
        assert unauthorized.json()["error"]["status"] == "UNAUTHENTICATED"
        assert unauthorized.json()["error"]["code"] == 401
        assert unauthorized.headers["WWW-Authenticate"].startswith("Bearer")


def test_drive_folder_and_file_metadata(google, ctl):
    (stored,) = ctl.drive_files(ALICE, [{"name": "state.json"}])
    access = sign_in(google, ctl)["access_token"]
    headers = {"Authorization": f"Bearer {access}"}

    folder = requests.get(f"{google.url}/drive/v3/files/appfolder", headers=headers, timeout=10).json()
    assert folder["mimeType"] == "application/vnd.google-apps.folder"
    item = requests.get(f"{google.url}/drive/v3/files/{stored['id']}", headers=headers, timeout=10)
    assert item.json()["name"] == "state.json"
    missing = requests.get(f"{google.url}/drive/v3/files/nope", headers=headers, timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["errors"][0]["reason"] == "notFound"


# Faults, latency, counters


def test_fault_status_body_and_times(google, ctl):
    rt = sign_in(google, ctl)["refresh_token"]
    ctl.fault("/token", status=500, body="<html>oops</html>", times=2)

    first, second, third = (refresh(google, rt) for _ in range(3))

    assert first.status_code == second.status_code == 500
    assert first.text == "<html>oops</html>"
    assert first.headers["Content-Type"].startswith("text/html")
    assert third.status_code == 200
    assert ctl.counters()["requests"]["POST /token"] == 4


def test_fault_default_bodies_headers_and_match(google, ctl):
    rt = sign_in(google, ctl)["refresh_token"]
    ctl.fault("/token", status=429, headers={"Retry-After": "7"}, match={"grant_type": "refresh_token"})
    ctl.fault("/drive/v3/*", status=503, times=-1)

    code = ctl.mint_code(SCOPES, sub=BOB)["code"]
    assert exchange(google, code).status_code == 200  # not matched
    limited = refresh(google, rt)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "7"
    assert limited.json()["error"] == "rate_limit_exceeded"

    for _ in range(2):
        unavailable = drive_list(google, "ya29.any")
        assert unavailable.status_code == 503
        assert unavailable.json()["error"]["status"] == "UNAVAILABLE"
    assert len(ctl.faults()) == 1
    ctl.clear_faults()
    assert drive_list(google, "ya29.any").status_code == 401


def test_timeout_fault_drops_the_connection(google, ctl):
    ctl.fault("/oauth2/v1/certs", timeout=True, hang_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{google.url}/oauth2/v1/certs", timeout=10)
    assert time.monotonic() - started >= 0.45

    ctl.fault("/oauth2/v1/certs", timeout=True, hang_seconds=5)
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{google.url}/oauth2/v1/certs", timeout=0.3)
    assert ctl.counters()["requests"]["GET /oauth2/v1/certs"] == 2


def test_latency(google, ctl):
    ctl.fault("/oauth2/v3/certs", latency_ms=300)
    started = time.monotonic()
    assert requests.get(f"{google.url}/oauth2/v3/certs", timeout=10).status_code == 200
    assert time.monotonic() - started >= 0.3

    ctl.latency(200)
    started = time.monotonic()
    requests.get(f"{google.url}/oauth2/v3/certs", timeout=10)
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    ctl.counters()  # control calls are never delayed
    assert time.monotonic() - started < 0.15


@pytest.mark.parametrize("endpoint", ["token", "userinfo", "drive"])
def test_latency_per_endpoint_can_outlast_the_clients_timeout(google, ctl, endpoint):
    body = sign_in(google, ctl)
    calls = {
        "token": ("/token", lambda timeout: refresh(google, body["refresh_token"], timeout=timeout)),
        "userinfo": ("/oauth2/v3/userinfo", lambda timeout: requests.get(
            f"{google.url}/oauth2/v3/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"},
            timeout=timeout)),
        "drive": ("/drive/v3/files", lambda timeout: requests.get(
            f"{google.url}/drive/v3/files", params={"spaces": "appDataFolder"},
            headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=timeout)),
    }
    path, call = calls[endpoint]
    key = f"{'POST' if endpoint == 'token' else 'GET'} {path}"
    before = ctl.counters()["requests"].get(key, 0)
    ctl.fault(path, latency_ms=1500)

    with pytest.raises(requests.ReadTimeout):
        call(0.3)

    assert call(10).status_code == 200  # the fault was used up
    served = ctl.counters()
    assert served["faults_served"] == 1 and served["requests"][key] == before + 2


def test_a_slow_refresh_still_happens_after_the_client_gave_up(google, ctl):
    rt = sign_in(google, ctl)["refresh_token"]
    ctl.fault("/token", latency_ms=800, match={"grant_type": "refresh_token"})

    with pytest.raises(requests.ReadTimeout):
        refresh(google, rt, timeout=0.2)

    deadline = time.monotonic() + 10
    while ctl.counters()["refresh_by_sub"].get(ALICE) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ctl.counters()["refresh_by_sub"] == {ALICE: 1}  # Google did the work; the answer was lost


def test_stalled_answer_sends_headers_then_holds_the_rest(google, ctl):
    minted = ctl.mint_code(SCOPES, sub=ALICE)
    ctl.fault("/token", stall_after_bytes=16, hang_seconds=5)

    response = token_request(google, grant_type="authorization_code", code=minted["code"],
                             client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uri="postmessage",
                             stream=True, timeout=0.3)
    assert response.status_code == 200  # the status line and headers came
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert int(response.headers["Content-Length"]) > 16
    with pytest.raises(requests.ConnectionError, match="Read timed out"):
        response.content  # noqa: B018 (reading the body is the point)

    # The endpoint ran: the code is spent although its answer never arrived.
    assert oauth_error(exchange(google, minted["code"]))[:2] == (400, "invalid_grant")


def test_stalled_answer_is_cut_off_after_the_hang(google, ctl):
    ctl.fault("/oauth2/v3/certs", status=200, body={"keys": []}, stall_after_bytes=4, hang_seconds=0.2)

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{google.url}/oauth2/v3/certs", timeout=5)
    assert requests.get(f"{google.url}/oauth2/v3/certs", timeout=10).json()["keys"]


def test_dripped_answer_outlasts_a_per_read_timeout(google, ctl):
    access_token = sign_in(google, ctl)["access_token"]
    expected = drive_list(google, access_token, fields="files(id)").json()
    ctl.fault("/drive/v3/files", drip_interval_ms=40)

    started = time.monotonic()
    dripped = drive_list(google, access_token, fields="files(id)", timeout=0.25)
    elapsed = time.monotonic() - started

    assert dripped.status_code == 200 and dripped.json() == expected
    # A lower bound set by the server's own sleeps (one per byte), not a speed check: the whole
    # answer took longer than the client's timeout, which bounds each read, not the request.
    assert elapsed >= (len(dripped.content) - 1) * 0.04 > 0.25


@pytest.mark.parametrize("fault", [
    {"path": "/token", "timeout": True, "stall_after_bytes": 1},
    {"path": "/token", "stall_after_bytes": -1},
    {"path": "/token", "drip_interval_ms": 0},
    {"path": "/token", "latency_ms": -5},
])
def test_contradictory_or_negative_fault_settings_are_refused(google, ctl, fault):
    response = requests.post(f"{google.url}/_control/faults", json=fault, timeout=10)

    assert response.status_code == 400 and response.json()["error"]
    assert ctl.faults() == []


def test_counters(google, ctl):
    rt = sign_in(google, ctl, sub=ALICE)["refresh_token"]
    for _ in range(3):
        refresh(google, rt)
    refresh(google, "1//0unknown")
    requests.get(f"{google.url}/oauth2/v1/certs", timeout=10)

    counters = ctl.counters()
    assert counters["requests"] == {"POST /token": 5, "GET /oauth2/v1/certs": 1}
    assert counters["token_grants"] == {"authorization_code": 1, "refresh_token": 4}
    assert counters["refresh_by_sub"] == {ALICE: 3}


def test_reset_forgets_state_but_keeps_clients_and_keys(google, ctl):
    other = new_client(ctl)
    ctl.user("dave@example.com")
    rt = sign_in(google, ctl)["refresh_token"]
    ctl.fault("/token", status=500, times=-1)
    ctl.advance_clock(1000)
    kids = list(v1_certs(google))

    ctl.reset()

    assert ctl.state()["grants"] == [] and ctl.faults() == []
    assert ctl.counters()["requests"] == {}
    assert all(u["email"] != "dave@example.com" for u in ctl.users())
    assert other in {c["client_id"] for c in ctl.clients()}
    assert list(v1_certs(google)) == kids
    assert oauth_error(refresh(google, rt)) == (400, "invalid_grant", "Bad Request")


def test_users_and_custom_accounts(google, ctl):
    user = ctl.user("erin@corp.example", sub="123", name="Erin Corp", hd="corp.example")
    assert (user["given_name"], user["family_name"]) == ("Erin", "Corp")
    claims = decode_id_token(google, sign_in(google, ctl, sub="123")["id_token"])
    assert claims["hd"] == "corp.example" and claims["name"] == "Erin Corp"

    minted = ctl.mint_code(SCOPES, email="frank.new@example.com")
    assert re.fullmatch(r"1\d{20}", minted["sub"])
    assert ctl.users(users=[{"email": f"u{i}@example.com"} for i in range(3)])[2]["email"] == "u2@example.com"


def test_control_api_rejects_bad_input(google):
    for path, body in [("codes", {"sub": ALICE}), ("faults", {"status": 500}),
                       ("clock", {"advance_seconds": "x"}), ("clock", {"advance_seconds": -1}),
                       ("clients", {"client_id": "new-without-secret"}),
                       ("latency", {"ms": -5}), ("drive-files", {"sub": ALICE})]:
        response = requests.post(f"{google.url}/_control/{path}", json=body, timeout=10)
        assert response.status_code == 400, (path, response.text)
        assert "error" in response.json()


# Consent page and GIS script


def auth_url(google: LocalGoogle, **params) -> str:
    query = {"client_id": CLIENT_ID, "redirect_uri": ORIGIN, "response_type": "code",
             "scope": SCOPES, "state": "st-1", "include_granted_scopes": "true",
             "access_type": "offline", **params}
    return f"{google.url}/o/oauth2/v2/auth?" + requests.compat.urlencode(query)


def result_of(page: str) -> dict:
    match = re.search(r"var response = (\{.*?\});\n", page)
    assert match, page
    return json.loads(match.group(1))


@pytest.mark.parametrize(
    ("scope", "checkboxes"),
    [("openid email profile", 0), (APPDATA, 0), (f"email {APPDATA}", 1),
     (f"{APPDATA} {CALENDAR}", 2), (f"openid {APPDATA} {CALENDAR}", 2)],
)
def test_consent_page_follows_the_granular_consent_rule(google, scope, checkboxes):
    page = requests.get(auth_url(google, scope=scope), timeout=10)
    assert page.status_code == 200
    assert page.text.count('type="checkbox"') == checkboxes
    for element in ('id="account-0"', 'id="account-custom"', 'id="custom-email"', 'id="allow"', 'id="cancel"'):
        assert element in page.text


def test_consent_allow_mints_a_code_for_the_page_origin(google, ctl):
    url = auth_url(google, scope=f"{SCOPES} {CALENDAR}")
    page = requests.post(url, data={"account": BOB, "scope": [APPDATA], "decision": "allow"}, timeout=10)

    response = result_of(page.text)
    assert set(response) == {"code", "scope", "authuser", "hd", "prompt", "state"}
    assert response["state"] == "st-1" and response["hd"] == "example.org"
    assert set(response["scope"].split()) == FULL_SCOPE  # calendar unchecked
    assert '"http://localhost:8080"' in page.text  # postMessage target origin
    token = exchange(google, response["code"], ORIGIN).json()
    assert token["scope"] == response["scope"] and "refresh_token" in token


def test_consent_page_offers_no_checkbox_for_sign_in_scopes_and_a_form_cannot_drop_them(google, ctl):
    url = auth_url(google, scope=f"{SCOPES} {CALENDAR}")
    page = requests.get(url, timeout=10).text
    checkboxes = re.findall(r'<input type="checkbox"[^>]*data-scope="([^"]+)"', page)
    assert checkboxes == [APPDATA, CALENDAR]
    assert "See your primary Google Account email address" in page  # the sign-in page's words

    # A hand-made form that names only one scope still grants Sign-In as a whole.
    posted = requests.post(url, data={"account": ALICE, "scope": [CALENDAR, "openid"], "decision": "allow"},
                           timeout=10)

    assert set(result_of(posted.text)["scope"].split()) == {"openid", EMAIL, PROFILE, CALENDAR}


def test_consent_cancel_and_nothing_granted_are_access_denied(google):
    cancelled = requests.post(auth_url(google), data={"account": ALICE, "decision": "cancel"}, timeout=10)
    assert result_of(cancelled.text) == {"error": "access_denied", "state": "st-1"}

    none_checked = requests.post(auth_url(google, scope=f"{APPDATA} {CALENDAR}"),
                                 data={"account": ALICE, "decision": "allow"}, timeout=10)
    assert result_of(none_checked.text)["error"] == "access_denied"


def test_consent_with_a_custom_email(google, ctl):
    bad = requests.post(auth_url(google), data={"account": "custom", "custom_email": "nope",
                                                "decision": "allow"}, timeout=10)
    assert bad.status_code == 400 and 'id="form-error"' in bad.text

    page = requests.post(auth_url(google), data={"account": "custom", "custom_email": "gina@example.com",
                                                 "scope": [APPDATA], "decision": "allow"}, timeout=10)
    token = exchange(google, result_of(page.text)["code"], "postmessage").json()
    assert decode_id_token(google, token["id_token"])["email"] == "gina@example.com"


def test_consent_login_hint_preselects_the_account(google):
    page = requests.get(auth_url(google, login_hint="bob@example.org"), timeout=10).text
    assert re.search(r'value="100000000000000000002"\s+data-email="bob@example.org" checked', page)


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [({"client_id": "nobody.apps.googleusercontent.com"}, 401, "invalid_client"),
     ({"redirect_uri": "http://evil.example"}, 400, "origin_mismatch"),
     ({"redirect_uri": "http://localhost:8080/callback"}, 400, "redirect_uri_mismatch"),
     ({"scope": ""}, 400, "invalid_request"),
     ({"scope": "not-a-scope"}, 400, "invalid_scope")],
)
def test_consent_error_pages(google, params, status, code):
    page = requests.get(auth_url(google, **params), timeout=10)
    assert page.status_code == status
    assert f"Error {status}: {code}" in page.text
    assert 'id="error-code"' in page.text


def test_scope_names_are_read_from_the_sign_in_pages_table(tmp_path):
    source = tmp_path / "scopes.js"
    source.write_text('const AUTH = "https://www.googleapis.com/auth/";\n'
                      'const NAMES = new Map([\n  ["openid", "Say \\"hi\\""],\n'
                      '  [AUTH + "tasks", "Tasks"],\n]);\n')
    assert read_scope_names(source) == {"openid": 'Say "hi"', "https://www.googleapis.com/auth/tasks": "Tasks"}

    source.write_text(source.read_text().replace('[AUTH + "tasks", "Tasks"]', "[AUTH + 'tasks', 'Tasks']"))
    with pytest.raises(RuntimeError, match="read 1 of the 2 NAMES entries"):
        read_scope_names(source)
    with pytest.raises(RuntimeError, match="reads scope names"):
        read_scope_names(tmp_path / "missing.js")
    assert describe("profile") == read_scope_names()[PROFILE]


def test_gsi_client_script(google):
    response = requests.get(f"{google.url}/gsi/client", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    assert f'var BASE = "{google.url}";' in response.text
    assert "initCodeClient" in response.text


# Serving


def test_http_keep_alive():
    server = LocalGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET).start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request("GET", "/oauth2/v1/certs")
        first = connection.getresponse()
        first.read()
        sock = connection.sock
        connection.request("POST", "/token", body="grant_type=x",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        second = connection.getresponse()
        second.read()
        assert first.version == 11 and first.getheader("Connection") is None
        assert second.status == 400
        assert connection.sock is sock  # the same TCP connection served both
        connection.close()
    finally:
        server.stop()


def test_concurrent_refreshes_with_latency(google, ctl):
    tokens = [sign_in(google, ctl, sub=f"2000000000000000000{i:02d}")["refresh_token"] for i in range(32)]
    ctl.latency(50)
    sessions = [requests.Session() for _ in tokens]

    def work(index: int) -> int:
        ok = 0
        for _ in range(5):
            response = sessions[index].post(f"{google.url}/token", data={
                "grant_type": "refresh_token", "refresh_token": tokens[index],
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, timeout=10)
            ok += response.status_code == 200
            access = response.json()["access_token"]
            ok += sessions[index].get(f"{google.url}/drive/v3/files",
                                      params={"spaces": "appDataFolder"},
                                      headers={"Authorization": f"Bearer {access}"},
                                      timeout=10).status_code == 200
        return ok

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = list(pool.map(work, range(32)))
    elapsed = time.monotonic() - started
    for session in sessions:
        session.close()

    assert sum(results) == 32 * 10
    # 320 requests at 50 ms each would take 16 s one at a time.
    assert elapsed < 5, elapsed
    assert sum(ctl.counters()["refresh_by_sub"].values()) == 160


def test_cli_serves_until_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "localdev.local_google", "--port", "0", "--client-id", CLIENT_ID,
         "--client-secret", CLIENT_SECRET, "--origin", ORIGIN, "--latency-ms", "5"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stdout.readline()
        url = re.search(r"http://\S+", line).group(0)
        control = GoogleControl(url)
        assert control.health()
        assert control.settings()["latency_ms"] == 5
        assert control.clients()[0]["client_id"] == CLIENT_ID

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
