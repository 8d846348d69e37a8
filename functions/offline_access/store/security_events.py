"""What the RISC receiver keeps: a record per security event received, and its user writes.

Each event of a security event token gets a record, `security_event_tokens/{id}`, where `id` is
the SHA-256 (hex) of `jti + "|" + event type URI`: Google redelivers a token with the same
`jti` until it gets a 2xx, and a hash is a valid document id whatever the `jti` holds. Fields:

| field | meaning |
|---|---|
| `received_at` | when this receiver acted on it |
| `expire_at` | `received_at` + `RECORD_LIFETIME`: the TTL policy's field (Terraform) |
| `event_type` | the event's short name (`sessions-revoked`...) |
| `action` | what the receiver did (`risc.actions`) |
| `user` | the log reference of the user it concerned (never the `sub`), or null |
| `verification_state` | a `verification` event's `state` (what `offline-access risc verify` waits for) |
| `claim` | random, unique to the write that created the record |

Firestore's TTL policy on `expire_at` (Terraform's `google_firestore_field`) deletes a record
some time after it expires.

Idempotence comes from one atomic batch per event: `create` the record, which fails when it
exists (a redelivered `jti` changes nothing), together with the update of the user document,
guarded by the update time the receiver read. So the user's change and the record are written
together or not at all, and a write the receiver did not see (a sign-in, the job) is never
overwritten: the batch fails, and the receiver reads and plans again. A commit whose answer was
lost and that the client retried finds its own record (`claim`) and still counts as applied.

Every public method maps Firestore's errors to `Unavailable` (`maps_firestore_errors`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

from google.api_core import exceptions as api_exceptions
from google.cloud.firestore_v1.base_query import FieldFilter

from ..events.catalog import Event
from .firestore_errors import RETRY, TIMEOUT_SECONDS, maps_firestore_errors
from .job_claims import DueUser
from .users import UserStore

COLLECTION = "security_event_tokens"
# Far longer than Google redelivers an unacknowledged event.
RECORD_LIFETIME = dt.timedelta(days=30)
TTL_FIELD = "expire_at"

# What `commit` found.
APPLIED = "applied"
DUPLICATE = "duplicate"  # the record exists: this event was acted on already
CONFLICT = "conflict"  # the user document changed (or went) since it was read: read again


def record_id(jti: str, event_type_uri: str) -> str:
    """The record's document id for one event of one token."""
    return hashlib.sha256(f"{jti}|{event_type_uri}".encode()).hexdigest()


class SecurityEventStore:
    """The receiver's reads and writes: users by `sub` or token identifier, and event records."""

    def __init__(self, store: UserStore, collection: str = COLLECTION) -> None:
        self.client = store.client
        self.users = store.collection
        self.records = store.client.collection(collection)
        # Lifecycle events are written in the same atomic write as the action (None: no events).
        self.outbox = store.outbox if store.events_on else None

    @maps_firestore_errors
    def user(self, sub: str) -> DueUser | None:
        """The user document with its update time, or None."""
        snapshot = self.users.document(sub).get(retry=RETRY, timeout=TIMEOUT_SECONDS)
        return DueUser.from_snapshot(snapshot) if snapshot.exists else None

    @maps_firestore_errors
    def users_with(self, field_path: str, value: str, limit: int = 2) -> list[DueUser]:
        """Users whose `field_path` equals `value` (a refresh-token identifier), at most `limit`."""
        query = self.users.where(filter=FieldFilter(field_path, "==", value)).limit(limit)
        return [DueUser.from_snapshot(s) for s in query.get(retry=RETRY, timeout=TIMEOUT_SECONDS)]

    @maps_firestore_errors
    def seen(self, record: str) -> bool:
        """Whether this event was acted on already."""
        return bool(self.records.document(record).get(retry=RETRY, timeout=TIMEOUT_SECONDS).exists)

    @maps_firestore_errors
    def commit(self, record: str, fields: dict[str, Any], now: dt.datetime,
               user: DueUser | None = None, user_fields: dict[str, Any] | None = None,
               events: Sequence[Event] = ()) -> str:
        """Create the event's record and, in the same atomic write, update the user (guarded
        by `user.update_time`) and stage the lifecycle `events`; `APPLIED`, `DUPLICATE` or
        `CONFLICT`. The events are published only when it is `APPLIED`."""
        claim = uuid.uuid4().hex
        ref = self.records.document(record)
        batch = self.client.batch()
        batch.create(ref, {**fields, "received_at": now, TTL_FIELD: now + RECORD_LIFETIME,
                           "claim": claim})
        if user is not None and user_fields:
            option = self.client.write_option(last_update_time=user.update_time)
            batch.update(self.users.document(user.sub), user_fields, option=option)
        staged = self.outbox.stage(batch, events, now) if self.outbox is not None else None
        try:
            batch.commit(retry=RETRY, timeout=TIMEOUT_SECONDS)
        except api_exceptions.AlreadyExists:
            existing = ref.get(retry=RETRY, timeout=TIMEOUT_SECONDS)
            mine = existing.exists and (existing.to_dict() or {}).get("claim") == claim
            if not mine:
                return DUPLICATE
        except (api_exceptions.FailedPrecondition, api_exceptions.NotFound):
            return CONFLICT
        if staged is not None and self.outbox is not None:
            self.outbox.sent(staged)
        return APPLIED

    @maps_firestore_errors
    def verification(self, state: str) -> dict[str, Any] | None:
        """The record of a `verification` event with this `state`, once the receiver has it."""
        query = self.records.where(filter=FieldFilter("verification_state", "==", state)).limit(1)
        for snapshot in query.get(retry=RETRY, timeout=TIMEOUT_SECONDS):
            return snapshot.to_dict() or {}
        return None
