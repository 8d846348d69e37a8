"""Lifecycle events against the official Pub/Sub emulator: a topic per test, and a pull
subscription read with the real client library."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from google.cloud import pubsub_v1

from tests.integration.job.conftest import Users


@dataclass
class Received:
    event: dict[str, Any]
    attributes: dict[str, str]
    message_id: str


@dataclass
class EventTopic:
    """A topic the functions publish to, and a subscription the test pulls from."""

    topic: str
    subscription: str
    subscriber: Any = field(repr=False)
    received: list[Received] = field(default_factory=list)

    def pull(self, at_least: int = 1, timeout: float = 15.0, settle: float = 1.0) -> list[Received]:
        """Messages until at least `at_least` arrived, then `settle` seconds more for extras."""
        got: list[Received] = []
        deadline = time.monotonic() + timeout
        quiet_until = None
        while time.monotonic() < deadline:
            answer = self.subscriber.pull(subscription=self.subscription, max_messages=100,
                                          timeout=2)
            messages = answer.received_messages
            for m in messages:
                got.append(Received(json.loads(m.message.data), dict(m.message.attributes),
                                    m.message.message_id))
            if messages:
                self.subscriber.acknowledge(subscription=self.subscription,
                                            ack_ids=[m.ack_id for m in messages])
            if len(got) >= at_least:
                quiet_until = quiet_until or time.monotonic() + settle
                if time.monotonic() >= quiet_until:
                    break
            else:
                time.sleep(0.05)
        self.received.extend(got)
        return got

    def types(self, received: list[Received]) -> list[str]:
        return [r.event["type"].removeprefix("dev.offline-access.") for r in received]


@pytest.fixture
def event_topic(pubsub_emulator, project) -> EventTopic:
    suffix = uuid.uuid4().hex[:8]
    topic = f"projects/{project}/topics/offline-access-events-{suffix}"
    subscription = f"projects/{project}/subscriptions/app-{suffix}"
    pubsub_v1.PublisherClient().create_topic(name=topic)
    subscriber = pubsub_v1.SubscriberClient()
    subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=30)
    return EventTopic(topic, subscription, subscriber)


@pytest.fixture
def events_env(function_env, event_topic) -> dict[str, str]:
    return {**function_env, "EVENTS_TOPIC": event_topic.topic}


@pytest.fixture
def users(google, events_env, opener) -> Users:
    return Users(google, events_env, opener)


def outbox_docs(users: Users) -> list[dict]:
    return [d.to_dict() for d in users.store.client.collection("events_outbox").stream()]
