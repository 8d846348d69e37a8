"""Sessions over HTTP: a sign-in starts one, `/api/me` reads it, and every kind of bad cookie is 401."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from offline_access.accounts.sessions import SessionCodec
from tests.integration.accounts.conftest import ALL_SCOPES, POST_HEADERS, Site
from tests.stack_values import CLIENT_ID, DRIVE_APPDATA

ALICE = "100000000000000000001"


def token_calls(google) -> int:
    return google.counters()["requests"].get("POST /token", 0)


def test_a_sign_in_starts_a_session_that_a_reload_finds(browser, google, site):
    body = browser.sign_in(google)
    assert body["user"]["sub"] == ALICE and body["account"]["status"] == "active"

    me = browser.me()

    assert me.status == 200
    assert me.body["status"] == "signed_in"
    assert me.body["user"]["email"] == "alice@example.com"
    assert me.body["offline_access"] is True
    assert DRIVE_APPDATA in me.body["granted_scopes"] and me.body["missing_scopes"] == []
    account = me.body["account"]
    assert account["status"] == "active" and account["reauth_reason"] is None
    assert account["connected_at"].endswith("Z") and account["last_run"] is None
    assert account["next_run_at"] is not None
    assert me.headers["Cache-Control"] == "no-store"
    assert "Access-Control-Allow-Origin" not in me.headers
    for token_field in ("refresh_token", "access_token", "ciphertext"):
        assert token_field not in str(me.body)


def test_me_without_a_cookie_is_401_json(browser):
    answer = browser.me(cookie=None)
    assert answer.status == 401
    assert answer.body["error"] == "not_signed_in" and answer.body["message"]


def test_a_tampered_cookie_is_401(browser, google):
    browser.sign_in(google)
    value = browser.cookie
    for forged in (value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"),
                   value.replace("v1.", "v9.", 1), "v1.1.bm90IGEgY29va2ll", "garbage"):
        assert browser.me(cookie=forged).status == 401, forged
    assert browser.me().status == 200


def test_an_expired_cookie_is_401(site, google):
    browser = site.browser()
    browser.sign_in(google)
    lifetime = site.account.cookies.session_lifetime
    later = SessionCodec(site.account.sessions._keys,  # noqa: SLF001 - the same keys, a later clock
                         clock=lambda: int(dt.datetime.now(dt.timezone.utc).timestamp()) + lifetime + 1)
    site.account = dataclasses.replace(site.account, sessions=later)

    answer = browser.me()

    assert answer.status == 401 and answer.body["error"] == "not_signed_in"


def test_a_cookie_from_before_a_disconnect_is_401_even_after_a_new_sign_in(site, google):
    old = site.browser()
    old.sign_in(google)
    stolen = old.cookie
    assert old.request("POST", "/api/disconnect").status == 200

    fresh = site.browser()
    fresh.sign_in(google)  # the same account comes back: a new document

    assert fresh.me().status == 200
    assert fresh.me(cookie=stolen).status == 401


def test_sign_out_everywhere_bumps_the_generation_and_ends_every_session(site, google):
    laptop, phone = site.browser(), site.browser()
    laptop.sign_in(google)
    phone.sign_in(google)
    generation = site.account.store.get(ALICE)["session_generation"]

    assert phone.request("POST", "/api/sign-out-everywhere").status == 200

    assert site.account.store.get(ALICE)["session_generation"] == generation + 1
    assert laptop.me().status == 401
    assert phone.me().status == 401
    assert phone.request("POST", "/api/sign-out-everywhere", cookie=None).status == 401


def test_sign_out_ends_this_session_only_and_is_idempotent(site, google):
    laptop, phone = site.browser(), site.browser()
    laptop.sign_in(google)
    phone.sign_in(google)

    answer = laptop.request("POST", "/api/sign-out")

    assert answer.status == 200 and answer.body == {"status": "signed_out"}
    assert laptop.cookie is None and laptop.me().status == 401
    assert phone.me().status == 200
    assert laptop.request("POST", "/api/sign-out").status == 200


def test_cookie_flags_on_localhost(browser, google):
    browser.sign_in(google)
    header = browser.set_cookies[-1]
    flags = [part.strip() for part in header.split(";")]
    assert flags[0].startswith("__session=v1.")
    assert set(flags[1:]) == {"Max-Age=1209600", "Path=/api", "HttpOnly", "SameSite=Lax"}


def test_cookie_flags_on_https_are_secure(site_env, google):
    origin = "https://app.example"
    site = Site({**site_env, "ALLOWED_ORIGINS": origin, "SESSION_LIFETIME_SECONDS": "3600"})
    browser = site.browser()
    state_answer = browser.request("POST", "/api/sign-in-attempts",
                                   headers={**POST_HEADERS, "Origin": origin})
    flags = [part.strip() for part in browser.set_cookies[-1].split(";")]
    assert set(flags[1:]) == {"Max-Age=600", "Path=/api", "HttpOnly", "SameSite=Lax", "Secure"}
    code = google.mint_code(client_id=CLIENT_ID, email="alice@example.com", scopes=ALL_SCOPES)["code"]
    answer = browser.request("POST", "/api/exchange", headers={**POST_HEADERS, "Origin": origin,
                                                              "Content-Type": "application/json"},
                             body=f'{{"code": "{code}", "state": "{state_answer.body["state"]}"}}')
    assert answer.status == 200
    flags = [part.strip() for part in browser.set_cookies[-1].split(";")]
    assert set(flags[1:]) == {"Max-Age=3600", "Path=/api", "HttpOnly", "SameSite=Lax", "Secure"}


class TestStateBinding:
    def test_a_mismatching_state_is_400_and_leaves_the_code_unspent(self, browser, google):
        browser.attempt()
        code = google.mint_code(client_id=CLIENT_ID, email="alice@example.com",
                                scopes=ALL_SCOPES)["code"]
        before = token_calls(google)

        answer = browser.exchange(code, "a-state-this-browser-was-never-given")

        assert answer.status == 400 and answer.body["error"] == "state_mismatch"
        assert answer.body["message"]
        assert token_calls(google) == before  # Google was never asked: the code is still good
        assert "Set-Cookie" not in answer.headers
        assert browser.exchange(code, browser.attempt()).status == 200

    def test_an_attempt_is_used_once(self, browser, google):
        state = browser.attempt()
        code = google.mint_code(client_id=CLIENT_ID, email="alice@example.com",
                                scopes=ALL_SCOPES)["code"]
        assert browser.exchange(code, state).status == 200
        again = google.mint_code(client_id=CLIENT_ID, email="alice@example.com",
                                 scopes=ALL_SCOPES)["code"]
        assert browser.exchange(again, state).status == 400

    def test_the_newest_three_attempts_count_one_per_tab(self, browser, google):
        states = [browser.attempt() for _ in range(4)]
        code = google.mint_code(client_id=CLIENT_ID, email="alice@example.com",
                                scopes=ALL_SCOPES)["code"]
        assert browser.exchange(code, states[0]).status == 400  # pushed out by three newer tabs
        assert browser.exchange(code, states[2]).status == 200

    def test_another_browsers_state_does_not_count(self, site, google):
        victim, attacker = site.browser(), site.browser()
        victim.attempt()
        attacker_state = attacker.attempt()
        code = google.mint_code(client_id=CLIENT_ID, email="mallory@example.com",
                                scopes=ALL_SCOPES)["code"]
        assert victim.exchange(code, attacker_state).body["error"] == "state_mismatch"

    @pytest.mark.parametrize("body", ["code-only-raw", "json-without-state"])
    def test_googles_sample_without_state_still_signs_in(self, browser, google, body):
        browser.attempt()  # even a browser holding attempts may send no state at all
        code = google.mint_code(client_id=CLIENT_ID, email="alice@example.com",
                                scopes=ALL_SCOPES)["code"]
        if body == "code-only-raw":
            answer = browser.request("POST", "/api/exchange", body=code, headers={
                **POST_HEADERS, "Content-Type": "application/octet-stream"})
        else:
            answer = browser.exchange(code, None)
        assert answer.status == 200
        assert browser.me().status == 200

    def test_a_client_with_no_cookie_is_unbound_as_before(self, browser, google):
        # An app on another origin sends no cookie: its state is its own check.
        code = google.mint_code(client_id=CLIENT_ID, email="alice@example.com",
                                scopes=ALL_SCOPES)["code"]
        assert browser.exchange(code, "its-own-state", cookie=None).status == 200


def test_a_missing_session_key_fails_before_the_code_is_spent(site_env, google, project):
    site = Site({**site_env,
                 "SESSION_KEY_VERSION": f"projects/{project}/secrets/no-such-key/versions/1"})
    browser = site.browser()
    code = google.mint_code(client_id=CLIENT_ID, email="alice@example.com", scopes=ALL_SCOPES)["code"]

    answer = browser.exchange(code, None, cookie=None)

    assert answer.status == 500 and answer.body["error"] == "server_misconfigured"
    assert token_calls(google) == 0
    assert site.account.store.get(ALICE) is None
