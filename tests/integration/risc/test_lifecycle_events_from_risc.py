"""What Cross-Account Protection does to an account reaches the app's backend as lifecycle
events: the local Google pushes each security event to the receiver, and the test reads the
CloudEvents from the official Pub/Sub emulator, as a subscriber of the events topic would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.accounts.conftest import DisconnectServer
from tests.integration.events.conftest import EventTopic
from tests.integration.events.conftest import event_topic as event_topic  # the fixture
from tests.integration.risc.test_events_end_to_end import ALICE, push

PREFIX = "dev.offline-access."


@pytest.fixture
def disconnect_server(function_env, event_topic: EventTopic) -> Iterator[DisconnectServer]:
    server = DisconnectServer({**function_env, "EVENTS_TOPIC": event_topic.topic})
    yield server
    server.stop()


@pytest.fixture
def risc_env(risc_env: dict[str, str], event_topic: EventTopic) -> dict[str, str]:
    return {**risc_env, "EVENTS_TOPIC": event_topic.topic}


def signed_in(site, google, event_topic: EventTopic) -> None:
    site.browser().sign_in(google)
    assert site.exchange.store.outbox.flush(10)
    assert "user.connected" in event_topic.types(event_topic.pull(1))


def published(stream, event_topic: EventTopic, at_least: int = 1) -> list:
    assert stream.deps.store.outbox.flush(10)
    return [r for r in event_topic.pull(at_least) if r.event["subject"] == ALICE]


def test_revoked_tokens_publish_needs_reauth_once(site, google, stream, event_topic):
    signed_in(site, google, event_topic)

    sent = push(google, "tokens-revoked", sub=ALICE)

    [received] = published(stream, event_topic)
    assert received.event["type"] == PREFIX + "user.needs_reauth"
    assert received.event["data"] == {"reason": "revoked_at_google"}
    assert received.attributes["content-type"] == "application/cloudevents+json"
    # Google delivers the same token again: nothing changes, nothing is published.
    assert google.risc_wait(google.risc_resend(sent["jti"])["id"])["acked"]
    assert published(stream, event_topic, at_least=0) == []


def test_a_suspension_and_its_end_publish_suspended_then_restored(site, google, stream, event_topic):
    signed_in(site, google, event_topic)

    push(google, "account-disabled", sub=ALICE, reason="bulk-account")
    [suspended] = published(stream, event_topic)
    push(google, "account-enabled", sub=ALICE)
    [restored] = published(stream, event_topic)

    assert suspended.event["type"] == PREFIX + "user.suspended"
    assert suspended.event["data"] == {"reason": "account_disabled", "google_reason": "bulk-account"}
    assert restored.event["type"] == PREFIX + "user.restored"
    assert restored.event["data"] == {"status": "active"}
    assert suspended.event["id"] != restored.event["id"]


def test_a_hijacked_account_publishes_disconnected_once_it_is_done(
        site, google, stream, event_topic, disconnect_server):
    signed_in(site, google, event_topic)

    push(google, "account-disabled", sub=ALICE, reason="hijacking")

    assert disconnect_server.deps.store.outbox.flush(10)
    [received] = published(stream, event_topic)
    assert received.event["type"] == PREFIX + "user.disconnected"
    assert received.event["data"] == {"requested_by": "security_event", "revoked": "revoked"}


@pytest.mark.parametrize("name", ["sessions-revoked", "account-credential-change-required"])
def test_ended_sessions_and_a_password_notice_publish_nothing(site, google, stream, event_topic, name):
    signed_in(site, google, event_topic)

    push(google, name, sub=ALICE)

    assert published(stream, event_topic, at_least=0) == []
