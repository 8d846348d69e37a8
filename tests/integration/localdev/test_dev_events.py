"""`make dev`'s events: the topic on the Pub/Sub emulator and the printer of each event, with
the real client library (the functions publish as in production)."""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
import time
import uuid

from google.cloud import pubsub_v1

from localdev import dev_events
from offline_access.events.catalog import EventCatalog
from offline_access.events.publisher import to_message


def test_each_published_event_is_printed_as_one_line(pubsub_emulator):
    project = f"demo-dev-events-{uuid.uuid4().hex[:6]}"
    topic, subscription = dev_events.create_events_topic(project)
    assert topic == f"projects/{project}/topics/offline-access-events"
    out, stop = io.StringIO(), threading.Event()
    printer = dev_events.print_events(subscription, stop, out)
    event = EventCatalog("dev.offline-access", project).needs_reauth(
        "100000000000000000001", "revoked", dt.datetime.now(dt.timezone.utc))
    data, attributes = to_message(event)
    pubsub_v1.PublisherClient().publish(topic, data, **attributes).result(timeout=10)
    deadline = time.monotonic() + 15
    while "[event]" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    printer.join(10)

    [line] = out.getvalue().splitlines()
    assert line == (f"[event] dev.offline-access.user.needs_reauth subject=100000000000000000001 "
                    f"id={event['id']} {json.dumps({'reason': 'revoked'}, separators=(',', ':'))}")
