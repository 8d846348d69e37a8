"""The GIS script and consent popup of the local Google, driven in a real Chromium."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import pytest
import requests
from playwright import sync_api

from localdev.local_google import GoogleControl, LocalGoogle
from tests.browser.flows import press_enter_and_expect_close

CHROMIUM = Path("/usr/lib/chromium/chromium")
CLIENT_ID = "browser-cid.apps.googleusercontent.com"
CLIENT_SECRET = "browser-secret"
APPDATA = "https://www.googleapis.com/auth/drive.appdata"
CALENDAR = "https://www.googleapis.com/auth/calendar"
BOB = "100000000000000000002"

pytestmark = pytest.mark.browser

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>app</title></head>
<body>
<button id="signin">Sign in</button>
<script src="{google}/gsi/client"></script>
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
    (root / "index.html").write_text(PAGE.format(
        google=google.url, client_id=json.dumps(CLIENT_ID),
        scope=json.dumps(f"openid email profile {APPDATA} {CALENDAR}"),
    ))
    handler = functools.partial(_QuietHandler, directory=str(root))
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    origin = f"http://localhost:{site.server_address[1]}"
    google.control.client(CLIENT_ID, javascript_origins=[origin])
    yield origin
    site.shutdown()
    site.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
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
