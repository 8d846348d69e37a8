"""The GIS script and consent popup of the local Google, driven in a real Chromium."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest
import requests
from playwright import sync_api

from localdev.local_google import GoogleControl, LocalGoogle
from localdev.processes import REPO
from tests.browser.flows import SCREENSHOTS, press_enter_and_expect_close

CHROMIUM = Path("/usr/lib/chromium/chromium")
CLIENT_ID = "browser-cid.apps.googleusercontent.com"
CLIENT_SECRET = "browser-secret"
APPDATA = "https://www.googleapis.com/auth/drive.appdata"
CALENDAR = "https://www.googleapis.com/auth/calendar"
BOB = "100000000000000000002"
AUTH = "https://www.googleapis.com/auth/"
# Enough scopes that the consent page must scroll in its 500 x 640 popup, and one long URL.
LONG_SCOPES = " ".join(["openid", "email", "profile", APPDATA] + [AUTH + s for s in (
    "drive.file", "calendar.readonly", "calendar.events", "gmail.readonly", "tasks",
    "an.unusually.long.scope.name.for.a.made.up.api.that.goes.on.and.on.readonly")])

pytestmark = pytest.mark.browser

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>app</title></head>
<body>
<button id="signin">Sign in</button>
<script src="{google}/gsi/client"></script>
<script type="module">
  import {{ describe }} from "./scopes.js";
  window.describeScope = describe;
</script>
<script>
  window.results = [];
  window.client = google.accounts.oauth2.initCodeClient({{
    client_id: {client_id},
    scope: {scope},
    ux_mode: "popup",
    state: "st-42",
    callback: function (response) {{ window.results.push({{kind: "callback", response: response}}); }},
    error_callback: function (error) {{ window.results.push({{kind: "error", type: error.type}}); }}
  }});
  document.getElementById("signin").addEventListener("click", function () {{
    window.client.requestCode();
  }});
</script>
</body></html>
"""


@pytest.fixture(scope="module")
def google() -> LocalGoogle:
    server = LocalGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def app_origin(google: LocalGoogle, tmp_path_factory) -> str:
    """A static page on its own origin that loads the local GIS script."""
    root = tmp_path_factory.mktemp("site")
    for name, scope in (("index.html", f"openid email profile {APPDATA} {CALENDAR}"), ("long.html", LONG_SCOPES)):
        (root / name).write_text(PAGE.format(google=google.url, client_id=json.dumps(CLIENT_ID),
                                             scope=json.dumps(scope)))
    shutil.copy(REPO / "static_site" / "scopes.js", root / "scopes.js")  # the sign-in page's scope names
    handler = functools.partial(_QuietHandler, directory=str(root))
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    origin = f"http://localhost:{site.server_address[1]}"
    google.control.client(CLIENT_ID, javascript_origins=[origin])
    yield origin
    site.shutdown()
    site.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript"}

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is missing ({CHROMIUM}): run `make chromium`.", pytrace=False)
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-dev-shm-usage"],
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser, google: LocalGoogle, app_origin: str):
    google.control.reset()
    context = browser.new_context()
    tab = context.new_page()
    tab.goto(f"{app_origin}/index.html")
    yield tab
    context.close()


def first_result(page) -> dict:
    page.wait_for_function("window.results.length > 0", timeout=10000)
    return page.evaluate("window.results[0]")


def test_popup_flow_returns_a_code_the_server_can_redeem(page, google: LocalGoogle, app_origin: str):
    with page.expect_popup() as popup_info:
        page.click("#signin")
    popup = popup_info.value
    popup.wait_for_load_state()
    popup.check("#account-1")
    popup.uncheck(f'input[data-scope="{CALENDAR}"]')
    with popup.expect_event("close"):
        popup.click("#allow")

    result = first_result(page)

    assert result["kind"] == "callback"
    response = result["response"]
    assert response["state"] == "st-42"
    assert response["hd"] == "example.org"
    assert set(response["scope"].split()) == {
        "openid", APPDATA,
        "https://www.googleapis.com/auth/userinfo.email",
        "https://www.googleapis.com/auth/userinfo.profile",
    }
    token = requests.post(f"{google.url}/token", data={
        "grant_type": "authorization_code", "code": response["code"], "redirect_uri": app_origin,
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, timeout=10)
    assert token.status_code == 200, token.text
    assert "refresh_token" in token.json()
    assert GoogleControl(google.url).state()["grants"][0]["sub"] == BOB


def test_keyboard_only_consent(page):
    with page.expect_popup() as popup_info:
        page.click("#signin")
    popup = popup_info.value
    popup.wait_for_load_state()
    popup.focus("#custom-email")
    popup.keyboard.type("kim@example.com")
    popup.focus("#allow")
    press_enter_and_expect_close(popup)

    assert first_result(page)["response"]["code"].startswith("4/")


def test_cancel_is_access_denied(page):
    with page.expect_popup() as popup_info:
        page.click("#signin")
    popup = popup_info.value
    with popup.expect_event("close"):
        popup.click("#cancel")

    assert first_result(page) == {"kind": "callback", "response": {"error": "access_denied", "state": "st-42"}}


def test_closing_the_popup_is_popup_closed(page):
    with page.expect_popup() as popup_info:
        page.click("#signin")
    popup_info.value.close()

    assert first_result(page) == {"kind": "error", "type": "popup_closed"}


def test_blocked_popup_is_popup_failed_to_open(page):
    page.evaluate("window.open = function () { return null; }")
    page.click("#signin")

    assert first_result(page) == {"kind": "error", "type": "popup_failed_to_open"}


def test_unregistered_origin_shows_origin_mismatch(page, google: LocalGoogle, app_origin: str):
    google.control.client(CLIENT_ID, javascript_origins=["http://localhost:1"])
    try:
        with page.expect_popup() as popup_info:
            page.click("#signin")
        popup = popup_info.value
        popup.wait_for_load_state()
        assert "Error 400: origin_mismatch" in popup.inner_text("#error-code")
    finally:
        google.control.client(CLIENT_ID, javascript_origins=[app_origin])


def open_long_consent(page, app_origin: str):
    page.goto(f"{app_origin}/long.html")
    page.wait_for_function("window.describeScope !== undefined")
    with page.expect_popup() as popup_info:
        page.click("#signin")
    popup = popup_info.value
    popup.wait_for_load_state()
    return popup


def in_view(popup, selector: str) -> bool:
    return popup.evaluate("""(selector) => {
        const box = document.querySelector(selector).getBoundingClientRect();
        return box.top >= 0 && box.left >= 0 && box.bottom <= innerHeight && box.right <= innerWidth;
    }""", selector)


def sticking_out(popup) -> list[str]:
    """Elements wider than the popup, and whether the page scrolls sideways."""
    return popup.evaluate("""() => {
        const width = document.documentElement.clientWidth;
        const wide = [...document.querySelectorAll("body *")]
            .filter((e) => e.getBoundingClientRect().right > width + 0.5)
            .map((e) => e.id || e.tagName);
        if (document.documentElement.scrollWidth > width) wide.push("scrollWidth");
        return wide;
    }""")


def test_consent_popup_at_its_default_size_keeps_the_buttons_in_view(page, app_origin):
    popup = open_long_consent(page, app_origin)

    assert popup.evaluate("[innerWidth, innerHeight]") == [500, 640]  # what requestCode opens
    assert popup.evaluate("document.documentElement.scrollHeight > innerHeight")  # it must scroll
    assert in_view(popup, "#allow") and in_view(popup, "#cancel")
    assert sticking_out(popup) == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    popup.screenshot(path=SCREENSHOTS / "local-google-consent-500x640.png")

    popup.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    last_scope = f'input[data-scope="{LONG_SCOPES.split()[-1]}"]'
    assert in_view(popup, "#allow") and in_view(popup, "#cancel") and in_view(popup, last_scope)
    assert sticking_out(popup) == []
    popup.screenshot(path=SCREENSHOTS / "local-google-consent-500x640-scrolled.png")

    with popup.expect_event("close"):
        popup.click("#allow")
    assert first_result(page)["response"]["code"].startswith("4/")


def test_consent_popup_names_scopes_in_the_sign_in_pages_words(page, app_origin):
    popup = open_long_consent(page, app_origin)

    shown = popup.evaluate("""() => Object.fromEntries([...document.querySelectorAll("#scopes [data-scope]")]
        .map((e) => [e.dataset.scope, (e.tagName === "INPUT" ? e.labels[0] : e).firstChild.textContent.trim()]))""")
    expected = page.evaluate("(scopes) => Object.fromEntries(scopes.map((s) => [s, window.describeScope(s)]))",
                             list(shown))

    assert shown == expected
    assert len(shown) == len(LONG_SCOPES.split())
    # Sign-In scopes are listed, not offered as checkboxes; every other scope is.
    assert popup.locator("#identity-scopes input").count() == 0
    assert popup.locator('input[type="checkbox"]').count() == len(LONG_SCOPES.split()) - 3
