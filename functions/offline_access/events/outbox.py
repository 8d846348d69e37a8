"""The transactional outbox: an event is stored in the same atomic write as the change it
reports, published after that write, and deleted once published.

A store method that changes a user adds `Outbox.stage(batch, events)` to the batch that writes
the change: one document in the `events_outbox` collection (id: the first event's id), holding
the events and when they were staged. After the commit, `Outbox.sent` hands them to the
publisher, off the request's path, and the document is deleted once Pub/Sub has them all. So:

- no event is published before its change is stored (a failed commit stores neither);
- no change is undone because a publish failed: the events stay in the outbox, and the next job
  run publishes what is left (`publish_leftovers`), oldest first;
- delivery is at least once: an event published by an instance that died before deleting its
  record is published again by the job, with the same `id`, and subscribers drop duplicates.

With no topic configured (`EVENTS_TOPIC` unset) the outbox is off: nothing is staged, written
or published.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.cloud import firestore

from ..store.firestore_errors import maps_firestore_errors
from ..structured_log import emit
from .catalog import Event, EventCatalog
from .publisher import EventPublisher

OUTBOX_COLLECTION = "events_outbox"


@dataclass(frozen=True)
class Staged:
    """Events added to a write, to publish once it is committed."""

    ref: firestore.DocumentReference
    events: tuple[Event, ...]


class Outbox:
    """The outbox of one Firestore database, and the publisher that empties it."""

    def __init__(self, client: firestore.Client, catalog: EventCatalog,
                 publisher: EventPublisher | None, collection: str = OUTBOX_COLLECTION) -> None:
        self.client = client
        self.catalog = catalog
        self.publisher = publisher
        self.collection = client.collection(collection)

    @property
    def enabled(self) -> bool:
        return self.publisher is not None

    def stage(self, batch: Any, events: Sequence[Event], now: dt.datetime) -> Staged | None:
        """Add `events` to `batch` (a `WriteBatch`), or nothing when off or there are none."""
        if not self.enabled or not events:
            return None
        ref = self.collection.document(str(events[0]["id"]))
        batch.set(ref, {"events": list(events), "staged_at": now})
        return Staged(ref, tuple(events))

    @maps_firestore_errors
    def stage_intent(self, events: Sequence[tuple[Event, str, str]], now: dt.datetime) -> Staged | None:
        """Record events before the non-atomic write of their changes (the job's batched results).

        Each event comes with the document its change is written to and the run that writes it;
        `publish_leftovers` publishes such an event only if that document says the run's result
        is stored (`job.last_run_id`). One write, whatever the number of events.
        """
        if not self.enabled or not events:
            return None
        listed = [event for event, _, _ in events]
        ref = self.collection.document(str(listed[0]["id"]))
        ref.set({"events": listed, "staged_at": now,
                 "changes": [{"document": path, "run_id": run_id} for _, path, run_id in events]})
        return Staged(ref, tuple(listed))

    def sent(self, staged: Staged | None, events: Sequence[Event] | None = None) -> None:
        """After the commit: publish (all the staged events, or the `events` of the changes that
        were applied) in the background, then delete the outbox record."""
        if staged is None or self.publisher is None:
            return
        publish = staged.events if events is None else tuple(events)
        if not publish:
            staged.ref.delete()
            return
        self.publisher.submit(publish, lambda: staged.ref.delete())

    def flush(self, timeout: float = 20.0) -> bool:
        """Wait for the background publishes (a job run or a CLI command, before it ends)."""
        return self.publisher.flush(timeout) if self.publisher is not None else True

    def _stored_changes_only(self, record: dict[str, Any]) -> list[Any]:
        """The events of an outbox record whose change is stored.

        A record written with its change (`stage`) holds only such events. One written before a
        batch of changes (`stage_intent`) names, per event, the document and run of its change:
        an event is kept only if that document holds the run's result.
        """
        events = list(record.get("events") or [])
        changes = record.get("changes")
        if not isinstance(changes, list) or len(changes) != len(events):
            return events
        paths = sorted({change["document"] for change in changes})
        stored = {snapshot.reference.path: (snapshot.to_dict() or {}).get("job", {}).get("last_run_id")
                  for snapshot in self.client.get_all([self.client.document(p) for p in paths])
                  if snapshot.exists}
        return [event for event, change in zip(events, changes, strict=True)
                if stored.get(change["document"]) == change["run_id"]]

    @maps_firestore_errors
    def publish_leftovers(self, limit: int = 500) -> int:
        """Publish what earlier publishes left in the outbox, oldest first, and delete it.

        Returns the number of events published; stops at the first failure (the rest stays).

        Raises:
            Unavailable: Firestore failed (nothing is lost: the records stay).
        """
        if self.publisher is None:
            return 0
        query = self.collection.order_by("staged_at").limit(limit)
        published = 0
        for snapshot in query.get(timeout=10):
            record = snapshot.to_dict() or {}
            events = self._stored_changes_only(record)
            try:
                self.publisher.publish_now(events)
            except Exception as exc:
                emit("WARNING", "lifecycle events still not published; the next run tries again",
                     event="events_publish_failed", events=len(events),
                     exception_type=type(exc).__name__)
                break
            snapshot.reference.delete()
            published += len(events)
        if published:
            emit("INFO", f"published {published} lifecycle event(s) left in the outbox",
                 event="events_outbox_drained", events=published)
        return published
