"""The Pub/Sub emulator of `make dev`, its lifecycle events' topic, and a printer of each event.

`start_pubsub` starts the official emulator on its fixed port (shared by every part of `make dev`
that needs Pub/Sub: start it once, pass its `host_port` on). `create_events_topic` makes the
topic the functions publish to and a pull subscription, and `print_events` reads that
subscription in a thread and prints one line per event as it is published, with the real
client library.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TextIO

from .processes import PubSubEmulator

EVENTS_TOPIC_ID = "offline-access-events"
PRINTER_SUBSCRIPTION_ID = "make-dev-printer"


def start_pubsub(port: int, log_dir: Path) -> PubSubEmulator:
    """The emulator on `port`; the client libraries of this process find it by
    `PUBSUB_EMULATOR_HOST`, which is set here (and must be passed to the functions)."""
    emulator = PubSubEmulator(port=port, output=open(log_dir / "pubsub.log", "w"))
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host_port
    return emulator


def create_events_topic(project: str) -> tuple[str, str]:
    """The events topic and the printer's subscription (the emulator forgets both at exit)."""
    from google.cloud import pubsub_v1

    topic = f"projects/{project}/topics/{EVENTS_TOPIC_ID}"
    subscription = f"projects/{project}/subscriptions/{PRINTER_SUBSCRIPTION_ID}"
    pubsub_v1.PublisherClient().create_topic(name=topic)
    pubsub_v1.SubscriberClient().create_subscription(name=subscription, topic=topic)
    return topic, subscription


def describe(event: dict) -> str:
    """One line for an event: its type, subject, id and data."""
    data = json.dumps(event.get("data"), separators=(",", ":"), sort_keys=True)
    return (f"[event] {event.get('type')} subject={event.get('subject')} "
            f"id={event.get('id')} {data}")


def print_events(subscription: str, stop: threading.Event, out: TextIO | None = None) -> threading.Thread:
    """Print each event published to the topic until `stop` is set."""
    from google.cloud import pubsub_v1

    def run() -> None:
        subscriber = pubsub_v1.SubscriberClient()
        while not stop.is_set():
            try:
                answer = subscriber.pull(subscription=subscription, max_messages=50, timeout=5)
            except Exception:  # the emulator is stopping, or slow: try again
                stop.wait(0.5)
                continue
            for message in answer.received_messages:
                try:
                    line = describe(json.loads(message.message.data))
                except ValueError:
                    line = f"[event] (not JSON) {message.message.data[:80]!r}"
                print(line, file=out, flush=True)
            if answer.received_messages:
                subscriber.acknowledge(subscription=subscription,
                                       ack_ids=[m.ack_id for m in answer.received_messages])

    thread = threading.Thread(target=run, name="event-printer", daemon=True)
    thread.start()
    return thread
