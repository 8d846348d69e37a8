"""The account in a real browser: the session across reloads, sign-out, Reconnect, Disconnect, branding.

The page runs on its own origin with `/api/*` forwarded to the functions, as on Firebase
Hosting; the job runs in this process against the same emulator to change what the page shows.
Screenshots of each state land in tests/artifacts/screenshots/.
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from localdev.site_config import config_js
from offline_access import wiring
from offline_access.offline.run import run_offline_job
from tests.browser.flows import (
    ALICE,
    DRIVE_APPDATA,
    choose,
    decide,
    expect_signed_in,
    expect_signed_out,
    open_consent,
    permission_states,
    save_screenshot,
    sign_in,
)
from tests.stack_values import CLIENT_ID, SCOPES

pytestmark = pytest.mark.browser

ALICE_SUB = "100000000000000000001"
CAROL = "carol@example.net"


def users(firestore_client) -> dict:
    return {d.id: d.to_dict() for d in firestore_client.collection("users").stream()}


def run_job(stack, **kw):
    run_id = f"browser-test-{uuid.uuid4().hex[:8]}"
    return run_offline_job(wiring.build_job_dependencies(stack.env), run_id, **kw)


def api_calls(page: Page, stack) -> list:
    calls: list = []
    page.on("request", lambda r: calls.append(f"{r.method} {urlsplit(r.url).path}")
            if "/api/" in r.url else None)
    return calls


def test_a_reload_keeps_the_signed_in_view(page: Page, stack, firestore_client):
    sign_in(page)
    run_job(stack)

    page.reload()

    expect_signed_in(page)
    expect(page.locator("#offline")).to_contain_text("Offline access is on")
    expect(page.locator("#last-run-text")).to_contain_text("everything went well")
    expect(page.locator('#last-run-tasks li[data-task="drive_appdata"]')).to_contain_text(
        "Looked at its folder in your Google Drive: 0 files")
    expect(page.locator("#reconnect")).to_be_hidden()
    expect(page.locator("#alert")).to_be_hidden()
    assert permission_states(page)[DRIVE_APPDATA] == "Granted"
    save_screenshot(page, "account__signed_in_after_reload")
    # The session cookie is HttpOnly: the page's own script cannot read it.
    assert page.evaluate("document.cookie") == ""


def test_sign_out_ends_the_session(page: Page, stack):
    sign_in(page)
    calls = api_calls(page, stack)

    page.click("#signout-button")

    expect(page.locator("#status-text")).to_have_text("You're signed out.")
    expect(page.locator("#alert")).to_have_class("alert alert-notice")
    expect(page.locator("#alert-text")).to_contain_text("choose Disconnect")
    assert "POST /api/sign-out" in calls
    page.reload()
    expect_signed_out(page)


def test_disconnect_revokes_deletes_and_signs_out(page: Page, stack, firestore_client):
    sign_in(page)
    assert users(firestore_client)

    page.click("#disconnect-button")
    dialog = page.locator("#disconnect-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#dialog-title")).to_have_text("Disconnect Offline Access Demo?")
    expect(page.locator("#disconnect-cancel")).to_be_focused()  # the safe choice first
    save_screenshot(page, "account__disconnect_confirmation")
    page.click("#disconnect-cancel")
    expect(dialog).to_be_hidden()
    assert users(firestore_client)  # cancelling changes nothing

    page.click("#disconnect-button")
    page.click("#disconnect-confirm")

    expect(page.locator("#disconnected-title")).to_have_text("Offline Access Demo is disconnected")
    expect(page.locator("#removed-list")).to_contain_text("revoked at Google")
    expect(page.locator("#status-text")).to_have_text("You're signed out.")
    expect(page.locator("#signin-button")).to_be_enabled()
    save_screenshot(page, "account__disconnected")
    assert stack.google.counters()["requests"].get("POST /revoke") == 1
    assert [g for g in stack.google.state()["grants"] if g["sub"] == ALICE_SUB] == []
    assert users(firestore_client) == {}
    page.reload()
    expect_signed_out(page)


def test_disconnect_with_google_down_says_when_it_completes(page: Page, stack, firestore_client):
    sign_in(page)
    stack.google.fault("/revoke", status=503, times=-1)

    page.click("#disconnect-button")
    page.click("#disconnect-confirm")

    expect(page.locator("#disconnected-title")).to_have_text("Offline Access Demo is disconnecting")
    expect(page.locator("#disconnected-text")).to_contain_text("Expected by")
    save_screenshot(page, "account__disconnecting")
    assert users(firestore_client)[ALICE_SUB]["status"] == "disconnecting"
    stack.google.clear_faults()
    assert run_job(stack).disconnected == 1
    assert users(firestore_client) == {}


def test_needs_reauth_shows_reconnect_with_the_reason_and_reconnecting_restores_it(
        page: Page, stack, firestore_client):
    sign_in(page)
    stack.google.revoke_grant(ALICE_SUB)  # the user removed the app in their Google Account
    users_before = users(firestore_client)
    stack_run = run_job(stack, everyone=True)
    assert stack_run.needs_reauth == 1

    page.reload()

    expect(page.locator("#reconnect")).to_be_visible()
    expect(page.locator("#reconnect-title")).to_have_text(
        "Offline Access Demo lost access to your Google Account.")
    expect(page.locator("#reconnect-reason")).to_contain_text(
        "You removed this app's access in your Google Account")
    expect(page.locator("#offline")).to_be_hidden()
    save_screenshot(page, "account__reconnect")
    assert users_before[ALICE_SUB]["status"] == "active"

    popup = open_consent(page, "#reconnect-button")
    query = parse_qs(urlsplit(popup.url).query)
    assert query["login_hint"] == [ALICE] and "select_account" not in query.get("prompt", [])
    decide(popup, "allow")

    expect_signed_in(page)
    expect(page.locator("#reconnect")).to_be_hidden()
    expect(page.locator("#offline")).to_contain_text("Offline access is on")
    doc = users(firestore_client)[ALICE_SUB]
    assert doc["status"] == "active" and doc["reauth_reason"] is None
    assert run_job(stack, everyone=True).succeeded == 1
    save_screenshot(page, "account__reconnected")


def test_an_unverified_email_is_pointed_out(page: Page):
    sign_in(page, account=CAROL)
    expect(page.locator("#email-note")).to_be_visible()
    expect(page.locator("#email-note")).to_contain_text(
        f"Google hasn't verified the email address {CAROL}")
    save_screenshot(page, "account__unverified_email")


def test_no_offline_permission_is_not_called_offline_access(page: Page):
    sign_in(page, untick=(DRIVE_APPDATA,))
    expect(page.locator("#offline")).not_to_contain_text("Offline access is on")
    expect(page.locator("#offline")).to_contain_text(
        "you didn't give Offline Access Demo any permission to use while you're away")
    expect(page.locator("#missing")).to_be_visible()


def test_cancelling_from_the_signed_in_view_is_a_notice_naming_its_button(page: Page):
    sign_in(page, untick=(DRIVE_APPDATA,))
    popup = open_consent(page, "#grant-button")
    decide(popup, "cancel")

    expect_signed_in(page)
    expect(page.locator("#alert")).to_have_class("alert alert-notice")
    expect(page.locator("#alert-text")).to_contain_text("Your permissions are unchanged")
    expect(page.locator("#alert-text")).to_contain_text("Grant missing permissions")
    expect(page.locator("#alert-text")).not_to_contain_text("Sign in with Google")
    expect(page.locator("#grant-button")).to_be_focused()
    save_screenshot(page, "account__grant_cancelled_notice")


def test_the_waiting_message_reads_well(page: Page):
    open_consent(page)
    expect(page.locator("#status-text")).to_have_text(
        "Waiting for Google: continue in the Google window.")


def test_the_page_sends_the_servers_state_and_the_exchange_binds_it(new_page, stack):
    page = new_page(path="/favicon.svg")
    calls = api_calls(page, stack)
    page.goto(stack.page_url)
    expect_signed_out(page)
    popup = open_consent(page)
    sent_state = parse_qs(urlsplit(popup.url).query)["state"][0]
    exchanges = []
    page.on("request", lambda r: exchanges.append(r.post_data_json)
            if r.url == stack.exchange_url else None)
    decide(popup, "allow")
    expect_signed_in(page)

    assert calls[:2] == ["GET /api/me", "POST /api/sign-in-attempts"]
    assert exchanges == [{"code": exchanges[0]["code"], "state": sent_state}]


def test_the_branded_page(new_page, stack):
    page = new_page(path="/favicon.svg")
    branded = config_js(client_id=CLIENT_ID, exchange_url="/api/exchange", account_api_url="/api",
                        scopes=SCOPES, gis_script_url=stack.gis_script_url, brand={
                            "appName": "Acme Planner", "logoUrl": "favicon.svg",
                            "privacyPolicyUrl": "https://acme.example/privacy",
                            "termsUrl": "https://acme.example/terms",
                            "supportUrl": "mailto:help@acme.example"})
    page.route(f"{stack.page_url}/config.js", lambda route: route.fulfill(
        status=200, body=branded, content_type="text/javascript"))
    page.goto(stack.page_url)
    expect_signed_out(page)

    expect(page).to_have_title("Sign in · Acme Planner")
    expect(page.locator("#title")).to_have_text("Acme Planner")
    expect(page.locator("#lede")).to_contain_text("so Acme Planner can work with your data")
    expect(page.locator("#brand-logo")).to_be_visible()
    expect(page.locator("#privacy-link")).to_have_attribute("href", "https://acme.example/privacy")
    expect(page.locator("#terms-link")).to_have_attribute("href", "https://acme.example/terms")
    expect(page.locator("#support-link")).to_have_attribute("href", "mailto:help@acme.example")
    expect(page.locator("#footer-text")).to_contain_text("Acme Planner keeps a sealed copy")
    assert "this app" not in page.locator("#card").inner_text()
    save_screenshot(page, "account__branded_signed_out")
    sign_in(page)
    expect(page.locator("#offline")).to_contain_text("Acme Planner can use the granted permissions")
    save_screenshot(page, "account__branded_signed_in")


def test_an_app_on_another_origin_signs_in_without_a_session(new_page, stack, firestore_client):
    page = new_page(site=stack.other_site.url)
    expect_signed_out(page)
    posts = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
    popup = open_consent(page)
    choose(popup)
    decide(popup, "allow")
    expect_signed_in(page)

    [post] = posts
    assert post.url == stack.direct_exchange_url  # cross-origin, no cookie sent or kept
    assert "cookie" not in {name.lower() for name in post.all_headers()}
    expect(page.locator("#end-access")).to_be_hidden()  # no account API on this origin
    assert ALICE_SUB in users(firestore_client)
    page.reload()
    expect_signed_out(page)


def test_a_forged_state_never_reaches_the_server_and_a_stale_one_is_refused(page: Page, stack):
    # The page drops an answer whose state differs; the server refuses one this browser was not
    # given (here: a state sent by hand with a real code).
    minted = stack.google.mint_code(SCOPES, email=ALICE, client_id=CLIENT_ID)
    answer = page.evaluate("""async (code) => {
        const r = await fetch('/api/exchange', {method: 'POST', credentials: 'same-origin',
          headers: {'Content-Type': 'application/json', 'X-Requested-With': 'XMLHttpRequest'},
          body: JSON.stringify({code, state: 'not-from-this-server'})});
        return {status: r.status, body: await r.json()};
    }""", minted["code"])
    assert answer["status"] == 400 and answer["body"]["error"] == "state_mismatch"
    assert stack.google.counters()["token_grants"].get("authorization_code", 0) == 0
    assert json.dumps(answer).count("not-from-this-server") == 0
