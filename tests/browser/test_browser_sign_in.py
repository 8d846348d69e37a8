"""The sign-in page in a real browser: the whole one-time-code flow through the consent popup.

Everything runs for real: Chromium, the page served with its production headers, the local
Google's GIS script and consent popup, the `exchange_code` function as a functions-framework
process, the local Secret Manager and the Firestore emulator.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.browser.flows import (
    ALICE,
    BOB,
    DRIVE_APPDATA,
    DRIVE_NAME,
    choose,
    decide,
    expect_error,
    expect_signed_in,
    expect_signed_out,
    open_consent,
    permission_states,
    press_enter_and_expect_close,
    save_screenshot,
    sign_in,
)
from tests.stack_values import SCOPES

pytestmark = pytest.mark.browser

USERINFO_EMAIL = "https://www.googleapis.com/auth/userinfo.email"
USERINFO_PROFILE = "https://www.googleapis.com/auth/userinfo.profile"


def user_doc(firestore_client, email: str) -> tuple[str, dict]:
    docs = [d for d in firestore_client.collection("users").stream()
            if d.to_dict().get("email") == email]
    assert len(docs) == 1, f"expected one document for {email}, found {len(docs)}"
    return docs[0].id, docs[0].to_dict()


def all_strings(value) -> list[str]:
    """Every string and bytes value anywhere in a Firestore document, decoded leniently."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in all_strings(v)] + list(map(str, value))
    if isinstance(value, list):
        return [s for v in value for s in all_strings(v)]
    if isinstance(value, bytes):
        return [value.decode("latin-1")]
    return [str(value)]


def issued_refresh_tokens(google, sub: str) -> list[str]:
    return [t["token"] for t in google.state()["refresh_tokens"] if t["sub"] == sub]


def test_full_sign_in_stores_a_sealed_refresh_token(page: Page, stack, firestore_client):
    popup = open_consent(page)
    query = parse_qs(urlsplit(popup.url).query)
    assert query["scope"] == [SCOPES]
    assert query["include_granted_scopes"] == ["true"]
    assert query["redirect_uri"] == [stack.page_url]
    assert len(query["state"][0]) >= 32
    assert "prompt" not in query and "login_hint" not in query
    exchange_posts = []
    page.on("request", lambda r: exchange_posts.append(r)
            if r.method == "POST" and r.url == stack.exchange_url else None)
    decide(popup, "allow", screenshot="test_full_sign_in__consent_popup")
    expect_signed_in(page)

    [post] = exchange_posts
    assert post.headers["x-requested-with"] == "XMLHttpRequest"
    assert post.headers["content-type"] == "application/json"
    assert post.post_data_json["state"] == query["state"][0]

    expect(page.locator("#account-name")).to_have_text("Alice Example")
    expect(page.locator("#offline")).to_contain_text("Offline access is on")
    expect(page.locator("#missing")).to_be_hidden()
    states = permission_states(page)
    assert states[DRIVE_APPDATA] == "Granted"
    assert set(states) >= {DRIVE_APPDATA, USERINFO_EMAIL, USERINFO_PROFILE, "openid"}
    expect(page.locator(f'#permissions li[data-scope="{DRIVE_APPDATA}"]')).to_contain_text(DRIVE_NAME)
    # The picture claim is served by the local Google; the CSP lets it load.
    expect(page.locator("#avatar")).to_be_visible()

    sub, doc = user_doc(firestore_client, ALICE)
    assert doc["status"] == "active"
    assert DRIVE_APPDATA in doc["granted_scopes"]
    sealed = doc["refresh_token"]
    assert isinstance(sealed, dict)
    # HPKE to the public key: the encapsulated key (1,120 bytes for ML-KEM-768 + X25519), then
    # the ciphertext and its 16-byte tag.
    assert sealed["v"] == 2 and isinstance(sealed["ct"], bytes) and len(sealed["ct"]) > 1120 + 16
    [refresh_token] = issued_refresh_tokens(stack.google, sub)
    strings = all_strings(doc)
    assert not any(refresh_token in s or s.startswith("1//") or "ya29." in s for s in strings)


def test_consent_denied_says_so_and_allows_a_retry(page: Page, firestore_client):
    popup = open_consent(page)
    decide(popup, "cancel")

    expect_error(page, "You didn't give access")
    expect(page.locator("#alert-text")).to_contain_text("choose Allow")
    expect(page.locator("#signin-button")).to_be_enabled()
    expect(page.locator("#signin-button")).to_be_focused()
    assert list(firestore_client.collection("users").stream()) == []


def test_popup_closed_says_so(page: Page):
    popup = open_consent(page)
    save_screenshot(page, "test_popup_closed__waiting_for_google")
    popup.close()

    expect_error(page, "The Google window was closed")
    expect(page.locator("#status-text")).to_have_text("Sign-in didn't finish.")
    expect(page.locator("#signin-button")).to_be_enabled()


def test_answer_for_another_attempt_is_ignored(page: Page, stack):
    """The page checks the `state` it sent: a different one never reaches the server."""
    popup = open_consent(page)
    exchange_calls = []
    page.on("request", lambda r: exchange_calls.append(r) if r.url == stack.exchange_url else None)
    # The consent form posts back to its own URL, which carries the state: tamper with it.
    popup.eval_on_selector(
        "#consent-form",
        "f => { const u = new URL(f.action); u.searchParams.set('state', 'forged-state');"
        " f.action = u.toString(); }",
    )
    decide(popup, "allow")

    expect_error(page, "Sign-in couldn't be verified")
    assert exchange_calls == []


def test_missing_configuration_is_explained(new_page, stack):
    page = new_page(path="/favicon.svg")
    page.route(f"{stack.page_url}/config.js", lambda route: route.fulfill(status=404, body=""))
    page.goto(stack.page_url)

    expect_error(page, "This page isn't configured")
    expect(page.locator("#alert-text")).to_contain_text("make dev")
    expect(page.locator("#signin-button")).to_be_disabled()


def test_popup_blocked_says_how_to_fix_it(new_page):
    page = new_page()
    expect_signed_out(page)
    # What a pop-up blocker does: window.open returns null.
    page.evaluate("window.open = () => null")
    page.click("#signin-button")

    expect_error(page, "The Google window didn't open")
    expect(page.locator("#alert-text")).to_contain_text("Allow pop-ups for this site")


def test_partial_scopes_name_the_missing_permission_and_grant_it(page: Page, stack,
                                                                  firestore_client):
    sign_in(page, untick=(DRIVE_APPDATA,), screenshot="test_partial_scopes__drive_unticked")

    expect(page.locator("#missing")).to_be_visible()
    expect(page.locator("#missing-text")).to_contain_text(DRIVE_NAME)
    assert permission_states(page)[DRIVE_APPDATA] == "Not granted"
    assert permission_states(page)[USERINFO_EMAIL] == "Granted"
    _, doc = user_doc(firestore_client, ALICE)
    assert DRIVE_APPDATA not in doc["granted_scopes"]
    save_screenshot(page, "test_partial_scopes__missing_permission")

    # "Grant missing permissions" asks again for the same account (login_hint).
    popup = open_consent(page, "#grant-button")
    query = parse_qs(urlsplit(popup.url).query)
    assert query["login_hint"] == [ALICE]
    assert query["include_granted_scopes"] == ["true"]
    expect(popup.locator(f'input[name="account"][data-email="{ALICE}"]')).to_be_checked()
    expect(popup.locator(f'input[data-scope="{DRIVE_APPDATA}"]')).to_be_checked()
    decide(popup, "allow")

    expect_signed_in(page)
    expect(page.locator("#missing")).to_be_hidden()
    assert permission_states(page)[DRIVE_APPDATA] == "Granted"
    _, doc = user_doc(firestore_client, ALICE)
    assert DRIVE_APPDATA in doc["granted_scopes"]
    assert doc["status"] == "active"


def test_second_sign_in_keeps_offline_access(page: Page, stack, firestore_client):
    sign_in(page)
    sub, first = user_doc(firestore_client, ALICE)

    page.click("#signout-button")
    expect(page.locator("#status-text")).to_contain_text("You're signed out")
    sign_in(page)

    expect(page.locator("#offline")).to_contain_text("Offline access is on")
    # The local Google gave no refresh token the second time; the stored one is kept.
    assert len(issued_refresh_tokens(stack.google, sub)) == 1
    _, second = user_doc(firestore_client, ALICE)
    assert second["status"] == "active"
    assert second["refresh_token"] == first["refresh_token"]
    assert second["signed_in_at"] > first["signed_in_at"]


def test_switching_account(page: Page, firestore_client):
    sign_in(page)
    popup = open_consent(page, "#switch-button")
    assert parse_qs(urlsplit(popup.url).query)["prompt"] == ["select_account"]
    choose(popup, account=BOB)
    decide(popup, "allow")

    expect_signed_in(page, BOB)
    expect(page.locator("#account-name")).to_have_text("Bob Builder")
    emails = sorted(d.to_dict()["email"] for d in firestore_client.collection("users").stream())
    assert emails == [ALICE, BOB]


def test_server_down_then_back(page: Page, stack):
    stack.stop_exchange()
    popup = open_consent(page)
    decide(popup, "allow")

    expect_error(page, "The sign-in service is unavailable")
    expect(page.locator("#alert-text")).to_contain_text("try again")
    expect(page.locator("#signin-button")).to_be_enabled()
    save_screenshot(page, "test_server_down__unavailable")

    stack.start_exchange()
    sign_in(page)
    expect(page.locator("#alert")).to_be_hidden()


def test_google_token_endpoint_unavailable_is_a_temporary_error(page: Page, stack):
    stack.google.fault("/token", status=503, times=-1)
    popup = open_consent(page)
    decide(popup, "allow")

    expect_error(page, "The sign-in service is unavailable")
    stack.google.clear_faults()
    sign_in(page)


def test_rejected_code_asks_to_sign_in_again(page: Page, stack):
    stack.google.fault("/token", status=400,
                       body={"error": "invalid_grant", "error_description": "Bad Request"})
    popup = open_consent(page)
    decide(popup, "allow")

    expect_error(page, "Google didn't accept this sign-in")
    expect(page.locator("#alert-text")).to_contain_text("Sign in again")
    sign_in(page)


def test_keyboard_only_sign_in(page: Page):
    page.keyboard.press("Tab")
    button = page.locator("#signin-button")
    expect(button).to_be_focused()
    outline = button.evaluate("b => getComputedStyle(b).outlineStyle")
    assert outline != "none", "the focused button shows no focus ring"
    save_screenshot(page, "test_keyboard_only__button_focused")

    with page.expect_popup() as popup_info:
        page.keyboard.press("Enter")
    popup = popup_info.value
    popup.wait_for_load_state("domcontentloaded")
    # In the popup: Tab into the account list, arrow to Bob, then Tab to Allow.
    popup.keyboard.press("Tab")
    expect(popup.locator(f'input[data-email="{ALICE}"]')).to_be_focused()
    popup.keyboard.press("ArrowDown")
    expect(popup.locator(f'input[data-email="{BOB}"]')).to_be_checked()
    for _ in range(12):
        if popup.evaluate("document.activeElement.id") == "allow":
            break
        popup.keyboard.press("Tab")
    expect(popup.locator("#allow")).to_be_focused()
    press_enter_and_expect_close(popup)

    expect_signed_in(page, BOB)
    # Focus moves to the result, so a screen reader or keyboard user continues from there.
    expect(page.locator("#account-name")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#switch-button")).to_be_focused()


def test_google_script_fails_to_load_then_retry(new_page, stack):
    context_page = new_page(path="/favicon.svg")
    gis = re.compile(re.escape(stack.gis_script_url))
    context_page.route(gis, lambda route: route.abort())
    context_page.goto(stack.page_url)
    expect_error(context_page, "Google sign-in couldn't load")
    expect(context_page.locator("#signin-button")).to_be_enabled()

    context_page.unroute(gis)
    context_page.click("#signin-button")
    expect_signed_out(context_page)
    sign_in(context_page)


def test_small_screen_layout(new_page):
    page = new_page(viewport={"width": 360, "height": 740})
    expect_signed_out(page)
    sign_in(page, untick=(DRIVE_APPDATA,))
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, "the page scrolls sideways on a phone-sized screen"


def test_google_sample_request_is_accepted(new_page, stack, firestore_client):
    page = new_page(path="/legacy.html")
    minted = stack.google.mint_code(SCOPES, email=ALICE)
    sent = []
    page.on("request", lambda r: sent.append(r) if r.method == "POST" else None)

    answer = page.evaluate("code => window.sendCodeLikeGoogleSample(code)", minted["code"])

    assert answer["status"] == 200, answer
    assert answer["body"]["status"] == "signed_in"
    assert answer["body"]["user"]["email"] == ALICE
    [request] = sent
    headers = request.all_headers()
    # Chromium rewrites the charset of a string body to "UTF-8", as it did under jQuery.
    assert headers["content-type"].lower() == "application/octet-stream; charset=utf-8"
    assert headers["x-requested-with"] == "XMLHttpRequest"
    assert headers["origin"] == stack.page_url
    assert request.post_data == minted["code"]
    _, doc = user_doc(firestore_client, ALICE)
    assert doc["refresh_token"]["v"] == 2 and isinstance(doc["refresh_token"]["ct"], bytes)
    expect(page.locator("#status")).to_have_text("Server answered 200.")


def test_page_headers_and_markup_need_no_unsafe_inline(stack):
    response = requests.get(stack.page_url + "/", timeout=5)
    policy = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"].split() == ["'self'", stack.google_url]
    assert "frame-ancestors 'none'" in policy
    html = response.text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script> in index.html"
    assert "<style" not in html and " style=" not in html
    assert "jquery" not in html.lower()
    # config.js first, then the page's code; the GIS script is injected from the config.
    assert html.index('src="config.js"') < html.index('src="app.js"')
    assert "gsi/client" not in html
