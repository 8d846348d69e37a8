"""The token API over its HTTP interface, against the real local stack: tokens, errors, callers.

Users sign in through the real exchange; the local Google's counters say how many refreshes
reached it, and the job's keys open what the API stored.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest
import requests
from google.cloud import firestore

from offline_access.errors import Unavailable
from offline_access.store.job_claims import JobStore
from offline_access.tokenapi import access_tokens
from tests.integration.job.conftest import ALL_SCOPES
from tests.integration.job.test_offline_job_failures import second_tokens
from tests.integration.tokenapi.conftest import AUDIENCE, id_token_for, refresh_calls
from tests.stack_values import CLIENT_ID, CLIENT_SECRET, DRIVE_APPDATA, LOG_KEY_B64

ANSWER_FIELDS = {"access_token", "expires_at", "expires_in", "scopes", "token_type"}


def test_a_cached_access_token_is_answered_without_calling_google(api, users, google):
    alice = users.sign_in("alice@example.com")
    stored = users.open(alice, "access_token")

    answer = api.token_for(alice)

    assert answer.status == 200, answer.body
    assert set(answer.body) == ANSWER_FIELDS
    assert answer.body["access_token"] == stored and answer.body["token_type"] == "Bearer"
    assert 3000 < answer.body["expires_in"] <= 3600
    assert answer.body["expires_at"].endswith("Z")
    assert DRIVE_APPDATA in answer.body["scopes"]
    assert answer.headers["Cache-Control"] == "no-store"
    assert refresh_calls(google) == 0


def test_a_stale_token_is_refreshed_once_stored_and_then_reused(api, users, google):
    alice = users.sign_in("alice@example.com")
    old = users.open(alice, "access_token")
    users.expire_cached_access_tokens(alice)

    first = api.token_for(alice)
    again = api.token_for(alice, scopes=["email", DRIVE_APPDATA])

    assert first.status == again.status == 200
    assert first.body["access_token"] != old
    assert again.body["access_token"] == first.body["access_token"] == users.open(alice, "access_token")
    assert refresh_calls(google) == 1
    assert "token_refresh" not in users.doc(alice)  # the lease was released with the token
    # The token works at Google.
    drive = requests.get(f"{google.base_url}/drive/v3/files", params={"spaces": "appDataFolder"},
                         headers={"Authorization": f"Bearer {first.body['access_token']}"}, timeout=10)
    assert drive.status_code == 200


def test_unknown_and_disconnecting_users_are_404(api, users):
    alice = users.sign_in("alice@example.com")
    users.update(alice, {"status": "disconnecting"})

    for sub in ("100000000000000000999", alice):
        answer = api.token_for(sub)
        assert answer.status == 404, answer.body
        assert answer.body["error"] == "user_not_found" and answer.body["message"]


def test_a_user_known_to_need_a_sign_in_is_409_with_the_reason(api, users, google):
    alice = users.sign_in("alice@example.com")
    users.update(alice, {"status": "needs_reauth", "reauth_reason": "testing_mode_expiry"})

    answer = api.token_for(alice)

    assert answer.status == 409
    assert answer.body["error"] == "needs_reauth" and answer.body["reason"] == "testing_mode_expiry"
    assert refresh_calls(google) == 0


def test_a_grant_revoked_at_google_is_recorded_and_answered_409(api, users, google):
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    google.revoke_grant(alice)

    answer = api.token_for(alice)

    assert answer.status == 409, answer.body
    assert answer.body["reason"] == "revoked"
    doc = users.doc(alice)
    assert doc["status"] == "needs_reauth" and doc["reauth_reason"] == "revoked"
    assert "access_token" not in doc and "token_refresh" not in doc
    assert api.token_for(alice).status == 409 and refresh_calls(google) == 1


def test_a_user_without_a_lasting_grant_is_409_no_offline_access(api, users):
    bob = users.sign_in("bob@example.org", offline=False)

    answer = api.token_for(bob)

    assert answer.status == 409 and answer.body["reason"] == "no_offline_access"


def test_a_scope_the_user_did_not_grant_is_403_naming_it(api, users, google):
    carol = users.sign_in("carol@example.net", granted=["openid", "email", "profile"])
    calendar = "https://www.googleapis.com/auth/calendar.readonly"

    answer = api.token_for(carol, scopes=[DRIVE_APPDATA, "email", calendar])

    assert answer.status == 403
    assert answer.body["error"] == "scope_not_granted"
    assert answer.body["missing_scopes"] == [DRIVE_APPDATA, calendar]
    assert DRIVE_APPDATA in answer.body["message"]
    # Short and long names of the Sign-In scopes are the same scope.
    assert api.token_for(carol, scopes="openid email profile").status == 200


def test_google_unavailable_is_503_with_retry_after_and_changes_nothing(api, users, google):
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    google.fault("/token", status=503, times=-1, match={"grant_type": "refresh_token"})

    answer = api.token_for(alice)

    assert answer.status == 503 and answer.body["error"] == "service_unavailable"
    assert int(answer.headers["Retry-After"]) >= 1
    doc = users.doc(alice)
    assert doc["status"] == "active" and "token_refresh" not in doc  # the lease was given back
    google.clear_faults()
    assert api.token_for(alice).status == 200


def test_firestore_unavailable_is_503(make_api, users, monkeypatch):
    alice = users.sign_in("alice@example.com")
    # The client library reads the emulator's address from the process environment.
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")
    api = make_api()

    answer = api.token_for(alice)

    assert answer.status == 503 and answer.headers["Retry-After"]


def test_bad_bodies_are_400_and_unknown_routes_404(api):
    assert api.call("/token", "not json").status == 400
    assert api.call("/token", {"sub": 7}).status == 400
    assert api.call("/token", {"sub": "1", "scopes": [3]}).status == 400
    assert api.call("/token", {"sub": "1", "extra": True}).status == 400
    assert api.call("/token", {"sub": "1", "pad": "x" * 5000}).status == 413
    assert api.call("/token", method="GET").status == 405
    assert api.call("/elsewhere", {}).status == 404


# Callers


def test_only_a_google_id_token_of_an_allowed_caller_for_this_api_is_accepted(
        api, users, other_key, app_key, google):
    alice = users.sign_in("alice@example.com")
    expected = {
        None: 401,
        "": 401,
        "garbage": 401,
        "a.b.c": 401,
        id_token_for(app_key, "https://another-service.a.run.app"): 401,
        id_token_for(other_key): 403,
        api.token: 200,
    }
    for token, status in expected.items():
        answer = api.call("/token", {"sub": alice}, token=token)
        assert answer.status == status, (token, answer.body)
        if status != 200:
            assert "access_token" not in answer.body and answer.body["message"]
    # A user's own Google ID token (another audience: the OAuth client) is no caller either.
    code = google.mint_code(client_id=CLIENT_ID, email="alice@example.com", scopes=ALL_SCOPES)["code"]
    user_id_token = requests.post(f"{google.base_url}/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET, "redirect_uri": "postmessage"}, timeout=10).json()["id_token"]
    assert api.call("/token", {"sub": alice}, token=user_id_token).status == 401
    # Checked before anything else: no route or body is looked at without a caller.
    assert api.call("/elsewhere", {}, token=None).status == 401


def test_a_forged_id_token_is_refused(api, users, app_key):
    alice = users.sign_in("alice@example.com")
    header, claims, signature = api.token.split(".")
    tampered = ".".join([header, claims[:-4] + ("AAAA" if claims[-4:] != "AAAA" else "BBBB"),
                         signature])
    assert api.call("/token", {"sub": alice}, token=tampered).status == 401


# The refresh lease


def lease(users, sub: str, holder: str, seconds: float) -> None:
    until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)
    users.update(sub, {"token_refresh": {"holder": holder, "lease_expires_at": until}})


def test_a_caller_waits_for_another_instances_refresh_and_answers_its_token(
        api, users, google, opener):
    alice = users.sign_in("alice@example.com")
    fresh = users.doc(alice)["access_token"]  # what the other instance will store
    fresh_token = users.open(alice, "access_token")
    users.expire_cached_access_tokens(alice)
    lease(users, alice, "another-instance", 30)
    answers = []
    caller = threading.Thread(target=lambda: answers.append(api.token_for(alice)))
    caller.start()
    time.sleep(0.4)
    assert answers == []  # still waiting for the holder
    users.update(alice, {"access_token": fresh, "token_refresh": firestore.DELETE_FIELD,
                         "access_token_expires_at": dt.datetime.now(dt.timezone.utc)
                         + dt.timedelta(minutes=50)})
    caller.join(10)

    [answer] = answers
    assert answer.status == 200 and answer.body["access_token"] == fresh_token
    assert refresh_calls(google) == 0


def test_a_lapsed_lease_is_taken_over_a_timeout_not_a_dead_grant(api, users, google, capsys):
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    lease(users, alice, "crashed-instance", -1)
    capsys.readouterr()

    answer = api.token_for(alice)

    assert answer.status == 200 and refresh_calls(google) == 1
    assert users.doc(alice)["status"] == "active"
    [line] = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"token_api"' in x]
    assert line["previous_lease_expired"] is True and line["token_source"] == "refreshed"


def test_a_holder_that_never_finishes_gets_a_503_after_the_bounded_wait(
        api, users, google, monkeypatch):
    monkeypatch.setattr(access_tokens, "WAIT_SECONDS", 0.5)
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    lease(users, alice, "slow-instance", 30)

    started = time.monotonic()
    answer = api.token_for(alice)

    assert answer.status == 503 and answer.body["error"] == "service_unavailable"
    assert int(answer.headers["Retry-After"]) >= 1 and time.monotonic() - started < 5
    assert users.doc(alice)["status"] == "active" and refresh_calls(google) == 0


# A refresh token rotated by Google


def test_a_rotated_refresh_token_is_saved_before_the_new_access_token_is_answered(
        api, users, google):
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    rotated = second_tokens(google, "alice@example.com")
    google.fault("/token", 200, rotated, match={"grant_type": "refresh_token"})

    answer = api.token_for(alice)

    assert answer.status == 200 and answer.body["access_token"] == rotated["access_token"]
    assert users.open(alice, "refresh_token") == rotated["refresh_token"]
    assert users.open(alice, "access_token") == rotated["access_token"]


def test_a_rotated_refresh_token_that_cannot_be_saved_is_not_used(api, users, google, monkeypatch):
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    stored = users.open(alice, "refresh_token")
    rotated = second_tokens(google, "alice@example.com")
    google.fault("/token", 200, rotated, match={"grant_type": "refresh_token"})

    def unavailable(self, user, sealed, now, expires_in=None, ids=None):
        raise Unavailable("down", dependency="firestore")

    monkeypatch.setattr(JobStore, "save_refresh_token", unavailable)
    answer = api.token_for(alice)

    assert answer.status == 503 and "access_token" not in answer.body
    assert users.open(alice, "refresh_token") == stored


# Secrets stay secret


def test_tokens_never_reach_a_log_line_or_an_error(api, users, google, capsys, app_token):
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    refresh_token = users.open(alice, "refresh_token")
    capsys.readouterr()
    issued = [api.token_for(alice).body["access_token"] for _ in range(2)]
    google.fault("/token", status=503, times=-1, match={"grant_type": "refresh_token"})
    users.expire_cached_access_tokens(alice)
    api.token_for(alice)
    api.call("/token", {"sub": alice}, token=app_token[:-3] + "xyz")

    out = capsys.readouterr().out
    lines = [json.loads(x) for x in out.splitlines() if '"token_api"' in x]
    assert len(lines) == 4 and all(line["caller"] for line in lines[:3])
    for canary in (*issued, refresh_token, app_token, CLIENT_SECRET, LOG_KEY_B64, alice):
        assert canary not in out
    stored = json.dumps(users.doc(alice), default=str)
    assert all(canary not in stored for canary in (*issued, refresh_token))


def test_the_audiences_and_callers_must_be_configured(token_env):
    from offline_access import wiring
    from offline_access.errors import Misconfigured

    for missing in ("TOKEN_API_AUDIENCES", "TOKEN_API_ALLOWED_CALLERS"):
        env = {k: v for k, v in token_env.items() if k != missing}
        with pytest.raises(Misconfigured) as caught:
            wiring.build_token_api_dependencies(env)
        assert missing in caught.value.fix
    assert AUDIENCE in token_env["TOKEN_API_AUDIENCES"]
