"""Publishes lifecycle events to the Pub/Sub topic, off the request's path.

The client library (`google-cloud-pubsub`, which reads `PUBSUB_EMULATOR_HOST` to use the
emulator) is imported and its client built on first use, in the worker process (a gRPC
channel does not survive gunicorn's fork). Its import costs about 0.4 s of CPU, so it happens
in the background thread of the first publish, once the first sign-in's answer is ready, and
never while the function's module is imported (the cold start). Each batch of events is
handed to a background thread, so a sign-in answers without waiting for Pub/Sub.

On Cloud Run an instance gets little CPU once it has answered and has no request: a publish
still running then may finish only with the instance's next request, or not at all; the
outbox keeps those events, and the next job run publishes them.

Each message is the event in CloudEvents' structured JSON format (the CloudEvents SDK
serialises it), with the attributes `content-type: application/cloudevents+json` (the Pub/Sub
protocol binding's structured mode) and `type` (so a subscription can filter on it).

A few threads publish side by side (`THREADS`): the job hands over one batch per user, and
each batch waits for Pub/Sub's acknowledgement and then deletes its outbox record.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from cloudevents.conversion import to_json
from cloudevents.http import CloudEvent

from ..structured_log import emit
from .catalog import Event

CONTENT_TYPE = "application/cloudevents+json"
PUBLISH_TIMEOUT_SECONDS = 10.0
THREADS = 4


def to_message(event: Event) -> tuple[bytes, dict[str, str]]:
    """The Pub/Sub message of one event: its data and attributes."""
    attributes = {k: v for k, v in event.items() if k != "data"}
    data = to_json(CloudEvent(attributes, event.get("data")))
    return data, {"content-type": CONTENT_TYPE, "type": str(event["type"])}


class EventPublisher:
    """Publishes batches of events to `topic` in the background; `on_done` runs after each
    batch that was published whole (the outbox then deletes its record)."""

    def __init__(self, topic: str, *, timeout: float = PUBLISH_TIMEOUT_SECONDS) -> None:
        self.topic = topic
        self.timeout = timeout
        self._client: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._pending: set[Future[bool]] = set()
        self._lock = threading.Lock()
        self.published = 0
        self.failed = 0

    def client(self) -> Any:
        """The Pub/Sub publisher client, built once per process."""
        with self._lock:
            if self._client is None:
                # ~0.4 s: at first use, never at import.
                from google.cloud import pubsub_v1

                self._client = pubsub_v1.PublisherClient()
            return self._client

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(THREADS, thread_name_prefix="events")
            return self._executor

    def submit(self, events: Sequence[Event], on_done: Callable[[], None]) -> Future[bool]:
        """Publish `events` in the background; the future says whether all of them went out."""
        future = self._pool().submit(self._publish, list(events), on_done)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future[bool]) -> None:
        with self._lock:
            self._pending.discard(future)

    def publish_now(self, events: Sequence[Event]) -> None:
        """Publish in this thread and wait; raises what the client library raised."""
        client = self.client()
        futures = []
        for event in events:
            data, attributes = to_message(event)
            futures.append(client.publish(self.topic, data, timeout=self.timeout, **attributes))
        for future in futures:
            future.result(timeout=self.timeout + 5)

    def _publish(self, events: list[Event], on_done: Callable[[], None]) -> bool:
        try:
            self.publish_now(events)
        except Exception as exc:  # the outbox keeps them: the next job run publishes them
            self.failed += len(events)
            emit("WARNING", "lifecycle events not published yet; the next job run publishes them",
                 event="events_publish_failed", events=len(events),
                 exception_type=type(exc).__name__)
            return False
        self.published += len(events)
        try:
            on_done()
        except Exception as exc:  # a leftover record only means a duplicate later, same ids
            emit("WARNING", "published events stay in the outbox; they will be sent again",
                 event="events_outbox_delete_failed", exception_type=type(exc).__name__)
        return True

    def flush(self, timeout: float = PUBLISH_TIMEOUT_SECONDS + 10) -> bool:
        """Wait until every submitted batch is done (or `timeout`); True when none is left."""
        with self._lock:
            pending = set(self._pending)
        if not pending:
            return True
        _, not_done = wait(pending, timeout=timeout)
        return not not_done
