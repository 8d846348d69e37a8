"""\"Your app\": a page of the app's own (static_site/example-app/) that embeds the sign-in through
the module static_site/offline-access.js in a few lines. It signs in through Google's popup, shows
the user's status from the account API, and disconnects, all through the module."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.flows import ALICE, choose, decide, save_screenshot

EXAMPLE = "/example-app/"


def test_your_app_signs_in_shows_the_status_and_disconnects_through_the_module(
        new_page, stack, firestore_client, google):
    page = new_page(path=EXAMPLE)
    expect(page.locator("#status")).to_have_text("Not connected.")
    expect(page.locator("#connect")).to_be_visible()
    save_screenshot(page, "example-app-signed-out")

    with page.expect_popup() as popup_info:
        page.click("#connect")
    popup = popup_info.value
    popup.wait_for_load_state("domcontentloaded")
    choose(popup, account=ALICE)
    decide(popup)

    expect(page.locator("#status")).to_have_text(f"Connected as {ALICE}: active.")
    expect(page.locator("#disconnect")).to_be_visible()
    save_screenshot(page, "example-app-connected")
    [doc] = [d.to_dict() for d in firestore_client.collection("users").stream()]
    assert doc["email"] == ALICE and doc["status"] == "active"

    # The session is the page origin's: a reload still knows the user, through status().
    page.reload()
    expect(page.locator("#status")).to_have_text(f"Connected as {ALICE}: active.")

    page.click("#disconnect")
    expect(page.locator("#status")).to_have_text(
        "Disconnected: the grant is revoked and your data deleted.")
    expect(page.locator("#connect")).to_be_visible()
    assert list(firestore_client.collection("users").stream()) == []
    assert [g for g in google.state()["grants"] if g["sub"] == "100000000000000000001"] == []


def test_your_app_says_when_the_user_closes_googles_window(new_page, stack):
    page = new_page(path=EXAMPLE)
    expect(page.locator("#connect")).to_be_visible()
    with page.expect_popup() as popup_info:
        page.click("#connect")
    popup = popup_info.value
    popup.wait_for_load_state("domcontentloaded")
    with popup.expect_event("close"):
        popup.close()

    expect(page.locator("#status")).to_have_text("Not connected (popup_closed).")
    expect(page.locator("#connect")).to_be_visible()
