"""What a person does on the sign-in page and in the local Google's consent popup."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from localdev.processes import REPO

SCREENSHOTS = REPO / "tests" / "artifacts" / "screenshots"
ALICE = "alice@example.com"
BOB = "bob@example.org"
DRIVE_APPDATA = "https://www.googleapis.com/auth/drive.appdata"
DRIVE_NAME = "Store its own app data in your Google Drive"


def expect_signed_out(page: Page) -> None:
    expect(page.locator("#status-text")).to_have_text("You're signed out.")
    expect(page.locator("#signin-button")).to_be_enabled()


def expect_signed_in(page: Page, email: str = ALICE) -> None:
    try:
        expect(page.locator("#status-text")).to_have_text(f"You're signed in as {email}.")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{page_alert(page)}") from None
    expect(page.locator("#account")).to_be_visible()
    expect(page.locator("#account-email")).to_have_text(email)


def page_alert(page: Page) -> str:
    """What the page says went wrong: the kind of failure and its alert, for a test's message."""
    kind = page.locator("#card").get_attribute("data-error", timeout=1_000)
    title = page.locator("#alert-title").text_content(timeout=1_000)
    text = page.locator("#alert-text").text_content(timeout=1_000)
    return f"the page's error: {kind!r}, alert: {title!r} {text!r}"


def expect_error(page: Page, title: str) -> None:
    expect(page.locator("#alert-title")).to_have_text(title)
    expect(page.locator("#alert")).to_be_visible()


def open_consent(page: Page, button: str = "#signin-button") -> Page:
    """Clicks a button that asks Google for a code; returns the consent popup."""
    with page.expect_popup() as popup_info:
        page.click(button)
    popup = popup_info.value
    popup.wait_for_load_state("domcontentloaded")
    expect(page.locator("#status-text")).to_contain_text("Waiting for Google")
    expect(popup.locator("#consent-form")).to_be_visible()
    return popup


def choose(popup: Page, *, account: str = ALICE, untick: tuple[str, ...] = ()) -> None:
    popup.check(f'input[name="account"][data-email="{account}"]')
    for scope in untick:
        popup.uncheck(f'input[name="scope"][data-scope="{scope}"]')


def decide(popup: Page, decision: str = "allow", screenshot: str | None = None) -> None:
    """Clicks Allow or Cancel and waits for the popup to hand its answer back and close."""
    if screenshot:
        save_screenshot(popup, screenshot)
    with popup.expect_event("close"):
        popup.click(f"#{decision}")


def press_enter_and_expect_close(popup: Page) -> None:
    """Presses Enter on the focused control of a popup that closes itself once it has answered."""
    with popup.expect_event("close"):
        try:
            popup.keyboard.press("Enter")
        except PlaywrightError:
            # Enter's keydown submits the form; when the answer comes back fast, the popup is gone
            # before Playwright sends the keyup (TargetClosedError, not public API). Any other
            # error leaves the popup open, and expect_event("close") fails the test; the callers
            # then check what the popup handed back.
            pass


def sign_in(page: Page, *, account: str = ALICE, untick: tuple[str, ...] = (),
            button: str = "#signin-button", screenshot: str | None = None) -> None:
    popup = open_consent(page, button)
    choose(popup, account=account, untick=untick)
    decide(popup, "allow", screenshot)
    expect_signed_in(page, account)


def save_screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


def permission_states(page: Page) -> dict[str, str]:
    """{scope: "Granted" | "Not granted"} as listed on the page."""
    items = page.locator(".permissions li[data-scope]")
    return {
        items.nth(i).get_attribute("data-scope"): items.nth(i).locator(".permission-state").inner_text()
        for i in range(items.count())
    }
