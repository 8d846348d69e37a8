"""Disconnect: revoke at Google, delete every record, end the sessions; idempotent and never undone.

The account API marks the user and calls the internal `disconnect_user` over HTTP with an ID
token; when Google (or that call) fails, the job finishes. Counters of the local Google tell how
many revocations reached it; Firestore tells what is left.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import google.auth.transport.requests as google_requests
import pytest
import requests
from google.oauth2 import id_token as google_id_token

from offline_access import wiring
from offline_access.offline.run import run_offline_job
from tests.integration.accounts.conftest import ACCOUNT_SA, ALL_SCOPES, POST_HEADERS
from tests.integration.job.conftest import FAST_RETRIES, JobInstance
from tests.stack_values import CLIENT_ID

ALICE = "100000000000000000001"


def revokes(google) -> int:
    return google.counters()["requests"].get("POST /revoke", 0)


def live_grants(google, sub: str = ALICE) -> list:
    return [g for g in google.state()["grants"] if g["sub"] == sub]


def user_docs(site) -> dict:
    return {d.id: d.to_dict() for d in site.account.store.collection.stream()}


def subcollection_docs(site, sub: str) -> int:
    return sum(1 for c in site.account.store.ref(sub).collections() for _ in c.stream())


def make_job(env: dict) -> JobInstance:
    deps = wiring.build_job_dependencies(env)
    return JobInstance(dataclasses.replace(deps, call_retries=FAST_RETRIES))


def test_disconnect_revokes_deletes_everything_and_ends_the_session(site, browser, google,
                                                                      disconnect_server):
    browser.sign_in(google)
    # A per-user record under the document, as later features keep them.
    site.account.store.ref(ALICE).collection("events").document("e1").set({"kind": "test"})
    assert live_grants(google)

    answer = browser.request("POST", "/api/disconnect")

    assert answer.status == 200, answer.body
    assert answer.body["status"] == "disconnected" and answer.body["revoked"] == "revoked"
    assert any("revoked at Google" in line for line in answer.body["removed"])
    assert revokes(google) == 1 and live_grants(google) == []
    assert user_docs(site) == {} and subcollection_docs(site, ALICE) == 0
    assert browser.cookie is None
    assert browser.me().status == 401
    # The account API called the internal function with a Google ID token for its URL.
    [authorization] = disconnect_server.authorizations
    scheme, _, token = authorization.partition(" ")
    claims = google_id_token.verify_token(token, google_requests.Request(),
                                          audience=disconnect_server.url,
                                          certs_url=f"{google.base_url}/oauth2/v1/certs")
    assert scheme == "Bearer" and claims["email"] == ACCOUNT_SA


def test_disconnecting_twice_is_the_same_answer_and_one_revoke(site, google):
    browser = site.browser()
    browser.sign_in(google)
    cookie = browser.cookie
    first = browser.request("POST", "/api/disconnect")

    again = browser.request("POST", "/api/disconnect", cookie=cookie)  # a retry after a lost answer

    assert first.status == again.status == 200
    assert again.body["status"] == "disconnected"
    assert revokes(google) == 1


def test_google_down_defers_and_the_next_run_revokes_and_deletes_exactly_once(
        site, browser, google, site_env):
    browser.sign_in(google)
    google.fault("/revoke", status=503, times=-1)

    answer = browser.request("POST", "/api/disconnect")

    assert answer.status == 202, answer.body
    assert answer.body["status"] == "disconnecting"
    assert answer.body["completes_by"].endswith("Z") and "next scheduled run" in answer.body["message"]
    doc = site.account.store.get(ALICE)
    assert doc["status"] == "disconnecting"
    assert doc["disconnect"]["requested_by"] == "user"
    assert doc["disconnect"]["last_error"] == "google_unavailable"
    assert doc["disconnect"]["lease_expires_at"] is None
    assert browser.me().status == 401  # sessions already ended
    assert live_grants(google)  # nothing was revoked

    google.clear_faults()
    before = revokes(google)
    job = make_job(site_env)
    summary = job.run("schedule@2026-06-01T12:00:00Z")

    assert (summary.disconnected, summary.disconnects_deferred) == (1, 0)
    assert summary.processed == 0  # a disconnecting user gets no offline work
    assert revokes(google) - before == 1 and live_grants(google) == []
    assert user_docs(site) == {}
    [audit] = [line for line in job.log_lines() if line.get("event") == "account_disconnected"]
    assert audit["severity"] == "NOTICE" and audit["revoked"] == "revoked"
    assert audit["requested_by"] == "user" and audit["records_deleted"] == 1
    assert set(audit) >= {"user", "requested_at", "completed_at"}
    assert "alice" not in json.dumps(audit).lower() and ALICE not in json.dumps(audit)

    again = make_job(site_env).run("schedule@2026-06-01T12:15:00Z")
    assert (again.disconnected, again.disconnects_deferred) == (0, 0)
    assert revokes(google) - before == 1


def test_a_grant_already_removed_at_google_counts_as_revoked(site, browser, google):
    browser.sign_in(google)
    google.revoke_grant(ALICE)  # the user removed the app in their Google Account

    answer = browser.request("POST", "/api/disconnect")

    assert answer.status == 200 and answer.body["revoked"] == "already_revoked"
    assert user_docs(site) == {}


def test_the_internal_function_down_leaves_it_to_the_job(site, browser, google, site_env,
                                                         disconnect_server):
    browser.sign_in(google)
    disconnect_server.stop()

    answer = browser.request("POST", "/api/disconnect")

    assert answer.status == 202
    assert site.account.store.get(ALICE)["status"] == "disconnecting"
    assert make_job(site_env).run("schedule@2026-06-01T12:00:00Z").disconnected == 1
    assert user_docs(site) == {} and revokes(google) == 1


def test_signing_in_again_cancels_a_pending_disconnect(site, browser, google, site_env):
    browser.sign_in(google)
    google.fault("/revoke", status=503, times=-1)
    assert browser.request("POST", "/api/disconnect").status == 202
    google.clear_faults()

    body = site.browser().sign_in(google)  # no refresh token this time: the grant was kept

    assert body["account"]["status"] == "active"
    doc = site.account.store.get(ALICE)
    assert doc["status"] == "active" and "disconnect" not in doc
    summary = make_job(site_env).run("schedule@2026-06-01T12:00:00Z")
    assert summary.disconnected == 0 and summary.succeeded == 1
    assert revokes(google) == 1  # only the attempt that met the fault


def test_a_disconnect_during_a_running_job_is_not_undone_by_the_job(site, browser, google, site_env):
    browser.sign_in(google)
    # The user's Drive call takes long enough to disconnect while the job holds the user.
    google.fault("/drive/v3/files", latency_ms=1500, times=1)
    job = make_job(site_env)
    result = {}
    runner = threading.Thread(target=lambda: result.update(summary=job.run("schedule@x")))
    runner.start()
    deadline = time.monotonic() + 10
    while not (site.account.store.get(ALICE) or {}).get("job", {}).get("claim_id"):
        assert time.monotonic() < deadline, "the job never claimed the user"
        time.sleep(0.02)

    assert browser.request("POST", "/api/disconnect").status == 200
    runner.join(15)

    assert user_docs(site) == {}  # finish() met a deleted document and wrote nothing
    [line] = job.user_lines()
    assert line["saved"] == "claim_lost"
    assert revokes(google) == 1


def test_the_cli_and_the_api_use_the_same_primitive_so_the_job_finds_nothing_left(site, google,
                                                                                  site_env):
    from offline_access.accounts import lifecycle

    browser = site.browser()
    browser.sign_in(google)
    deps = wiring.build_job_dependencies(site_env)
    result = lifecycle.revoke_and_delete(deps, ALICE, requested_by=lifecycle.REQUESTED_BY_OPERATOR)
    assert result.outcome == "deleted" and result.revoked == "revoked"
    assert browser.me().status == 401
    assert run_offline_job(deps, "schedule@y").disconnected == 0


class TestCsrf:
    ROUTES = ["/api/sign-in-attempts", "/api/sign-out", "/api/sign-out-everywhere", "/api/disconnect"]

    @pytest.mark.parametrize("route", ROUTES)
    @pytest.mark.parametrize("headers, error", [
        ({"Origin": "http://localhost:8080"}, "csrf_check_failed"),
        ({"X-Requested-With": "fetch", "Origin": "http://localhost:8080"}, "csrf_check_failed"),
        ({"X-Requested-With": "XMLHttpRequest", "Origin": "https://evil.example"}, "origin_not_allowed"),
        ({"X-Requested-With": "XMLHttpRequest", "Origin": "http://localhost:8080.evil.example"},
         "origin_not_allowed"),
        ({"X-Requested-With": "XMLHttpRequest", "Origin": "null"}, "origin_not_allowed"),
    ])
    def test_every_post_needs_the_header_and_an_allowed_origin(self, site, google, route, headers,
                                                               error):
        browser = site.browser()
        browser.sign_in(google)
        before = user_docs(site)

        answer = browser.request("POST", route, headers=headers)

        assert answer.status == 403 and answer.body["error"] == error
        assert "Access-Control-Allow-Origin" not in answer.headers
        assert "Set-Cookie" not in answer.headers
        assert user_docs(site) == before and revokes(google) == 0
        assert browser.me().status == 200

    @pytest.mark.parametrize("route", ROUTES + ["/api/me"])
    def test_no_preflight_is_granted_and_no_answer_is_shared_cross_origin(self, browser, route):
        answer = browser.request("OPTIONS", route, headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-requested-with"})
        assert answer.status == 405
        assert not any(h.startswith("Access-Control-") for h in answer.headers.keys())

    def test_unknown_routes_and_methods(self, browser):
        assert browser.request("GET", "/api/nope").status == 404
        assert browser.request("GET", "/api/disconnect").status == 405
        answer = browser.request("POST", "/api/me")
        assert answer.status == 405 and answer.headers["Allow"] == "GET"
        assert browser.request("HEAD", "/api/me").status == 401


class TestInternalFunction:
    def post(self, server, body, **kw):
        return requests.post(server.url, data=body, timeout=10,
                             headers={"Content-Type": "application/json"}, **kw)

    @pytest.mark.parametrize("body", ["", "[]", '{"sub": ""}', '{"sub": "a/b"}', '{"sub": 5}',
                                      '{"sub": "1", "requested_by": "mallory"}', "{", "x" * 5000])
    def test_bad_bodies_are_4xx_and_change_nothing(self, disconnect_server, body):
        answer = self.post(disconnect_server, body)
        assert 400 <= answer.status_code < 500
        assert answer.json()["error"] and answer.json()["message"]

    def test_get_is_405(self, disconnect_server):
        assert requests.get(disconnect_server.url, timeout=10).status_code == 405

    def test_an_unknown_user_is_already_gone(self, disconnect_server):
        answer = self.post(disconnect_server, '{"sub": "199999999999999999999"}')
        assert answer.status_code == 200 and answer.json()["outcome"] == "already_gone"

    def test_a_user_who_never_gave_offline_access_is_revoked_by_access_token(self, site, google,
                                                                               disconnect_server):
        google.mint_code(client_id=CLIENT_ID, email="alice@example.com", scopes=ALL_SCOPES)
        browser = site.browser()  # the second consent brings no refresh token
        body = browser.sign_in(google)
        site.account.store.ref(ALICE).update({"refresh_token": None, "status": "no_offline_access"})
        assert body["user"]["sub"] == ALICE

        answer = self.post(disconnect_server, json.dumps({"sub": ALICE}))

        assert answer.json()["revoked"] == "revoked"
        assert live_grants(google) == []


def test_posts_need_no_body(browser, google):
    browser.sign_in(google)
    answer = browser.request("POST", "/api/sign-out", headers=POST_HEADERS)
    assert answer.status == 200
