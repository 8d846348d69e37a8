"""The account lifecycle's reads and writes of user documents: sessions ended, disconnects, lists.

- `end_sessions` adds one to `session_generation`, which every session cookie must match.
- `mark_disconnecting` is all a public function may do to end an account: status
  `disconnecting` (the job's due query then skips the user), sessions ended, and a `disconnect`
  map recording who asked and when.
- `claim_disconnect` takes a short lease on a disconnecting user (a write guarded by the
  document's update time, as the job claims users), so two workers finishing the same
  disconnect (the internal function and a job run, or two runs) never both revoke.
- `delete_user` deletes the document and everything under it: the product keeps every
  per-user record in `users/{sub}` or its subcollections, so one recursive delete is all of it.
  With lifecycle events on, the subcollections go first, then the document itself in one
  atomic write with its `user.disconnected` event in the outbox (`events.outbox`).
- `users`, `find_by_email`, `disconnecting` and `next_due_at` are the operator's and the job's
  queries.

`ending_sessions_fields` and `disconnecting_fields` say what ending sessions and marking a
disconnect write, for the writers that make them part of a larger write (the RISC receiver's,
`store.security_events`).

Every public method maps Firestore's errors to `Unavailable` (`maps_firestore_errors`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as api_exceptions
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

from ..events.catalog import Event
from .firestore_errors import RETRY, TIMEOUT_SECONDS, maps_firestore_errors
from .job_claims import DueUser
from .users import STATUS_ACTIVE, STATUS_DISCONNECTING, UserStore, stored_time

_CONFLICTS = (api_exceptions.FailedPrecondition, api_exceptions.NotFound)
_ATTEMPTS = 3

# What `claim_disconnect` found.
CLAIMED = "claimed"
GONE = "gone"  # no document: already deleted
NOT_DISCONNECTING = "not_disconnecting"  # the user signed in again meanwhile
IN_PROGRESS = "in_progress"  # another worker holds the lease


def ending_sessions_fields(now: dt.datetime) -> dict[str, Any]:
    """What ending every session of a user writes: the generation every cookie must match + 1."""
    return {"session_generation": firestore.Increment(1), "updated_at": now}


def disconnecting_fields(now: dt.datetime, requested_by: str) -> dict[str, Any]:
    """What marking a user `disconnecting` writes: the status, sessions ended, who asked when."""
    return {
        "status": STATUS_DISCONNECTING,
        **ending_sessions_fields(now),
        "disconnect": {"requested_at": now, "requested_by": requested_by, "attempts": 0},
    }


@dataclass(frozen=True)
class DisconnectClaim:
    """The outcome of `claim_disconnect`; `user` is set when `outcome` is `CLAIMED`."""

    outcome: str
    user: DueUser | None = None


class AccountStore:
    """Account-level writes and queries on the users collection."""

    def __init__(self, store: UserStore) -> None:
        self.store = store
        self.client = store.client
        self.collection = store.collection

    def _snapshot(self, sub: str) -> DueUser | None:
        snapshot = self.collection.document(sub).get(retry=RETRY, timeout=TIMEOUT_SECONDS)
        return DueUser.from_snapshot(snapshot) if snapshot.exists else None

    def _update(self, user: DueUser, fields: dict[str, Any]) -> Any:
        option = self.client.write_option(last_update_time=user.update_time)
        return self.collection.document(user.sub).update(
            fields, option=option, retry=RETRY, timeout=TIMEOUT_SECONDS)

    @maps_firestore_errors
    def get(self, sub: str) -> DueUser | None:
        """The user document with its update time, or None."""
        return self._snapshot(sub)

    @maps_firestore_errors
    def end_sessions(self, sub: str, now: dt.datetime) -> bool:
        """End every session of the user (sign-out everywhere). False when there is no document."""
        try:
            self.collection.document(sub).update(
                ending_sessions_fields(now), retry=RETRY, timeout=TIMEOUT_SECONDS)
        except api_exceptions.NotFound:
            return False
        return True

    @maps_firestore_errors
    def mark_disconnecting(self, sub: str, now: dt.datetime, requested_by: str) -> bool:
        """Mark the user `disconnecting` and end their sessions, once; False when already deleted."""
        for _ in range(_ATTEMPTS):
            user = self._snapshot(sub)
            if user is None:
                return False
            if user.data.get("status") == STATUS_DISCONNECTING:
                return True
            try:
                self._update(user, disconnecting_fields(now, requested_by))
                return True
            except _CONFLICTS:
                continue  # a sign-in or the job wrote meanwhile: read again
        return self._snapshot(sub) is not None

    @maps_firestore_errors
    def claim_disconnect(self, sub: str, now: dt.datetime, lease: dt.timedelta) -> DisconnectClaim:
        """Take the lease on finishing this user's disconnect, or say why not."""
        for _ in range(_ATTEMPTS):
            user = self._snapshot(sub)
            if user is None:
                return DisconnectClaim(GONE)
            if user.data.get("status") != STATUS_DISCONNECTING:
                return DisconnectClaim(NOT_DISCONNECTING)
            disconnect = user.data.get("disconnect")
            disconnect = disconnect if isinstance(disconnect, dict) else {}
            held_until = stored_time(disconnect.get("lease_expires_at"))
            if held_until is not None and held_until > now:
                return DisconnectClaim(IN_PROGRESS)
            try:
                result = self._update(user, {"disconnect.lease_expires_at": now + lease,
                                             "disconnect.attempts": firestore.Increment(1)})
            except _CONFLICTS:
                continue
            return DisconnectClaim(CLAIMED, DueUser(user.sub, user.data, result.update_time))
        return DisconnectClaim(IN_PROGRESS)

    @maps_firestore_errors
    def release_disconnect(self, user: DueUser, error: str, now: dt.datetime) -> None:
        """Give the lease back after a failure the next run retries; records the error's word."""
        try:
            self.collection.document(user.sub).update(
                {"disconnect.lease_expires_at": None, "disconnect.last_error": error,
                 "disconnect.last_attempt_at": now},
                retry=RETRY, timeout=TIMEOUT_SECONDS)
        except api_exceptions.NotFound:
            pass

    @maps_firestore_errors
    def delete_user(self, sub: str, events: list[Event] | None = None,
                    now: dt.datetime | None = None) -> int:
        """Delete the user document and everything under it; the number of documents deleted.

        `events` (the disconnect's) are written with the document's deletion, atomically.
        """
        ref = self.collection.document(sub)
        outbox = self.store.outbox
        if not events or outbox is None or not outbox.enabled or now is None:
            return int(self.client.recursive_delete(ref))
        deleted = sum(int(self.client.recursive_delete(child)) for child in ref.collections())
        batch = self.client.batch()
        batch.delete(ref)
        self.store.commit(batch, outbox.stage(batch, events, now))
        return deleted + 1

    @maps_firestore_errors
    def disconnecting(self, limit: int) -> list[DueUser]:
        """Users whose disconnect is still to be finished, oldest request first."""
        query = (self.collection.where(filter=FieldFilter("status", "==", STATUS_DISCONNECTING))
                 .order_by(FieldPath.document_id()).limit(limit))
        return [DueUser.from_snapshot(s) for s in query.get(retry=RETRY, timeout=TIMEOUT_SECONDS)]

    @maps_firestore_errors
    def next_due_at(self) -> dt.datetime | None:
        """When the next active user is due, or None when there is none."""
        query = (self.collection.where(filter=FieldFilter("status", "==", STATUS_ACTIVE))
                 .order_by("next_run_at").limit(1))
        for snapshot in query.get(retry=RETRY, timeout=TIMEOUT_SECONDS):
            return stored_time((snapshot.to_dict() or {}).get("next_run_at"))
        return None

    @maps_firestore_errors
    def users(self, *, status: str | None = None, reason: str | None = None,
              limit: int = 1000) -> list[DueUser]:
        """Users by document id, optionally with one status and one `reauth_reason`."""
        query: Any = self.collection
        if status:
            query = query.where(filter=FieldFilter("status", "==", status))
        if reason:
            query = query.where(filter=FieldFilter("reauth_reason", "==", reason))
        query = query.order_by(FieldPath.document_id()).limit(limit)
        return [DueUser.from_snapshot(s) for s in query.get(retry=RETRY, timeout=TIMEOUT_SECONDS)]

    @maps_firestore_errors
    def find_by_email(self, email: str) -> list[DueUser]:
        """Users whose stored email is `email` (a Google email may move between accounts)."""
        query = self.collection.where(filter=FieldFilter("email", "==", email)).limit(10)
        return [DueUser.from_snapshot(s) for s in query.get(retry=RETRY, timeout=TIMEOUT_SECONDS)]
