"""The token API's reads and writes of user documents: the refresh lease and its results.

At most one instance refreshes a user's access token at a time. The holder of the refresh
lease (the `token_refresh` map of the user document: `holder`, `lease_expires_at`) took it
with a write guarded by the update time of the document it read (optimistic concurrency, as
the job claims users): of two instances that read the same version, one write wins and the
other fails its precondition, re-reads, and sees the lease. Because the winning write was
guarded by that read, the document read is exactly the document at the time the lease was
taken: a fresh token stored by an earlier holder is seen there, and not refreshed again.

The holder then stores the new access token (sealed), the granted scopes if a refresh reported
others, and releases the lease, in one write guarded by the lease's own update time; a
sign-in that wrote meanwhile wins, and only the lease is released. A dead grant is recorded as
`needs_reauth` with its reason, the same way the job records it. With lifecycle events on, the
`user.needs_reauth` and `user.scopes_changed` events go into the outbox in those same writes.

A lease that lapses (its holder crashed or hung) is taken over by the next caller: a timeout,
never a verdict on the user's credentials.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.api_core import exceptions as api_exceptions
from google.cloud import firestore

from ..events.catalog import Event
from .firestore_errors import RETRY, TIMEOUT_SECONDS, maps_firestore_errors
from .job_claims import DueUser
from .job_results import RefreshedToken
from .users import STATUS_NEEDS_REAUTH, UserStore, stored_time

LEASE_FIELD = "token_refresh"
_CONFLICTS = (api_exceptions.FailedPrecondition, api_exceptions.NotFound)


def lease_of(user: DueUser) -> tuple[str | None, dt.datetime | None]:
    """The lease's holder and expiry, or (None, None) when nobody holds it."""
    lease = user.data.get(LEASE_FIELD)
    if not isinstance(lease, dict):
        return None, None
    holder = lease.get("holder")
    return (holder if isinstance(holder, str) else None), stored_time(lease.get("lease_expires_at"))


class TokenRefreshStore:
    """The token API's view of the users collection."""

    def __init__(self, store: UserStore) -> None:
        self.store = store
        self.client = store.client
        self.collection = store.collection

    def _write(self, user: DueUser, fields: dict[str, Any], events: list[Event],
               now: dt.datetime) -> Any:
        """One write guarded by `user.update_time`, with its events in the outbox."""
        outbox = self.store.outbox
        batch = self.client.batch()
        batch.update(self.collection.document(user.sub), fields,
                     option=self.client.write_option(last_update_time=user.update_time))
        staged = outbox.stage(batch, events, now) if outbox is not None else None
        return self.store.commit(batch, staged)[0]

    def _read(self, sub: str) -> DueUser | None:
        snapshot = self.collection.document(sub).get(retry=RETRY, timeout=TIMEOUT_SECONDS)
        return DueUser.from_snapshot(snapshot) if snapshot.exists else None

    @maps_firestore_errors
    def read(self, sub: str) -> DueUser | None:
        """The user document with its update time, or None."""
        return self._read(sub)

    @maps_firestore_errors
    def take_lease(self, user: DueUser, holder: str, now: dt.datetime,
                   ttl: dt.timedelta) -> DueUser | None:
        """Take the lease over the version of the document read; None when it changed since
        (the caller reads again). The answer is that document, as of the lease."""
        fields = {LEASE_FIELD: {"holder": holder, "lease_expires_at": now + ttl}}
        try:
            result = self.collection.document(user.sub).update(
                fields, option=self.client.write_option(last_update_time=user.update_time),
                retry=RETRY, timeout=TIMEOUT_SECONDS)
        except _CONFLICTS:
            return None
        data = {**user.data, LEASE_FIELD: fields[LEASE_FIELD]}
        return DueUser(user.sub, data, result.update_time)

    @maps_firestore_errors
    def store_refreshed(self, user: DueUser, refreshed: RefreshedToken, holder: str,
                        now: dt.datetime) -> bool:
        """Store the new access token and release the lease; False when a sign-in (or the job)
        wrote meanwhile, in which case only our lease is released."""
        fields: dict[str, Any] = {
            "access_token": refreshed.sealed_access_token,
            "access_token_expires_at": refreshed.expires_at,
            LEASE_FIELD: firestore.DELETE_FIELD,
            "updated_at": now,
        }
        events: list[Event] = []
        if set(refreshed.scopes) != set(user.granted_scopes) and refreshed.scopes:
            fields["granted_scopes"] = list(refreshed.scopes)
            outbox = self.store.outbox
            if outbox is not None and outbox.enabled:
                events = outbox.catalog.scopes_changed(user.sub, user.granted_scopes,
                                                       refreshed.scopes, now)
        try:
            self._write(user, fields, events, now)
            return True
        except _CONFLICTS:
            self._release(user.sub, holder)
            return False

    @maps_firestore_errors
    def release(self, user: DueUser, holder: str) -> None:
        """Give the lease back after a failure (a later caller tries again)."""
        self._release(user.sub, holder)

    def _release(self, sub: str, holder: str) -> None:
        for _ in range(3):
            fresh = self._read(sub)
            if fresh is None or lease_of(fresh)[0] != holder:
                return  # gone, or the lease lapsed and someone else holds it now
            try:
                self.collection.document(sub).update(
                    {LEASE_FIELD: firestore.DELETE_FIELD},
                    option=self.client.write_option(last_update_time=fresh.update_time),
                    retry=RETRY, timeout=TIMEOUT_SECONDS)
                return
            except _CONFLICTS:
                continue

    @maps_firestore_errors
    def mark_needs_reauth(self, user: DueUser, reason: str, holder: str, now: dt.datetime) -> bool:
        """Record that the grant is dead, as the job does: status, reason, no access token.

        False when the document changed meanwhile (a sign-in may have brought a new grant:
        nothing is recorded over it).
        """
        fields = {
            "status": STATUS_NEEDS_REAUTH,
            "reauth_reason": reason,
            "access_token": firestore.DELETE_FIELD,
            "access_token_expires_at": firestore.DELETE_FIELD,
            LEASE_FIELD: firestore.DELETE_FIELD,
            "updated_at": now,
        }
        outbox = self.store.outbox
        events = ([outbox.catalog.needs_reauth(user.sub, reason, now)]
                  if outbox is not None and outbox.enabled else [])
        try:
            self._write(user, fields, events, now)
            return True
        except _CONFLICTS:
            self._release(user.sub, holder)
            return False
