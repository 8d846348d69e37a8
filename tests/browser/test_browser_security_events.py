"""A user flagged by Google's security events sees what happened and what to do, in Chromium.

The user signs in on the page; the local Google then pushes a Cross-Account Protection event to
a real receiver (the production handler on a free port in this process, built from the stack's
environment); the page, reloaded, shows the account as `/api/me` now describes it.
Screenshots land in tests/artifacts/screenshots/.
"""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Page, expect

from localdev.stack_secrets import public_only
from offline_access import wiring
from offline_access.offline.run import run_one_user
from tests.browser.flows import ALICE, decide, expect_signed_in, open_consent, save_screenshot, sign_in
from tests.integration.risc.conftest import ReceiverServer

pytestmark = pytest.mark.browser

ALICE_SUB = "100000000000000000001"


@pytest.fixture
def receiver(stack):
    server = ReceiverServer(public_only(stack.env))  # as deployed: no key that opens tokens
    stack.google.risc_settings(backoff_seconds=0.05, max_backoff_seconds=0.2)
    stack.google.set_risc_stream(server.url)
    yield server
    server.stop()


def push(stack, name: str, **kw) -> None:
    sent = stack.google.risc_event(name, sub=ALICE_SUB, **kw)
    assert stack.google.risc_wait(sent["jti"])["answers"] == [202]


def test_a_disabled_account_is_told_why_the_app_stopped(page: Page, stack, receiver, firestore_client):
    sign_in(page)

    push(stack, "account-disabled", reason="bulk-account")
    page.reload()

    expect_signed_in(page)
    notice = page.locator("#security-notice")
    expect(notice).to_be_visible()
    expect(page.locator("#security-notice-title")).to_have_text("Google disabled your Google Account")
    expect(page.locator("#security-notice-text")).to_contain_text("stopped working with your account")
    link = page.locator("#security-notice-link")
    expect(link).to_have_text("How to ask Google to restore your account")
    expect(link).to_have_attribute("href", "https://support.google.com/accounts/answer/40695")
    expect(page.locator("#security-notice-button")).to_be_hidden()
    # Nothing to reconnect, and no claim of offline access.
    expect(page.locator("#reconnect")).to_be_hidden()
    expect(page.locator("#offline")).to_be_hidden()
    save_screenshot(page, "account__disabled_by_google")
    run = run_one_user(wiring.build_job_dependencies(stack.env), ALICE_SUB, f"b-{uuid.uuid4().hex[:6]}")
    assert run.skipped == 1  # not processed while suspended

    push(stack, "account-enabled")
    page.reload()

    expect(notice).to_be_hidden()
    expect(page.locator("#offline")).to_contain_text("Offline access is on")


def test_a_password_change_request_is_shown_until_the_user_signs_in_again(page: Page, stack, receiver):
    sign_in(page)

    push(stack, "account-credential-change-required")
    page.reload()

    expect(page.locator("#security-notice-title")).to_have_text("Google asks you to change your password")
    expect(page.locator("#security-notice-link")).to_have_attribute(
        "href", "https://myaccount.google.com/security")
    expect(page.locator("#offline")).to_contain_text("Offline access is on")  # the grant still works
    button = page.locator("#security-notice-button")
    expect(button).to_be_visible()
    save_screenshot(page, "account__password_change_asked")

    popup = open_consent(page, "#security-notice-button")
    decide(popup, "allow")

    expect_signed_in(page, ALICE)
    expect(page.locator("#security-notice")).to_be_hidden()


def test_sessions_revoked_signs_the_page_out(page: Page, stack, receiver):
    sign_in(page)

    push(stack, "sessions-revoked")
    page.reload()

    expect(page.locator("#status-text")).to_have_text("You're signed out.")
    save_screenshot(page, "account__sessions_revoked")
