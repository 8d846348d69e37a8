"""The user documents in Firestore: one per Google account, keyed by the verified `sub`.

A sign-in with a new refresh token does not depend on what is stored, so it is written without
a read: one `create` for a new user, or an `update` after that create finds the user there. A
sign-in without one is read first and written in one atomic write guarded by a precondition on
the document's previous state (optimistic concurrency with bounded time, unlike a Firestore
transaction whose commit retries for up to a minute). A token response without a refresh token
never erases the stored one: Google only sends a refresh token when the user saw the consent
screen.

With lifecycle events on (`outbox`), each sign-in's events (`user.connected`, `reconnected`,
`scopes_changed`) are written in the same atomic write as the sign-in, so a returning user with
a new refresh token is read first too (the events depend on the previous status and scopes),
and that write is guarded by the read's update time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import grpc
from google.api_core import exceptions as api_exceptions
from google.cloud import firestore

from ..events.outbox import Outbox, Staged
from .firestore_errors import RETRY, TIMEOUT_SECONDS, firestore_unavailable, maps_firestore_errors

STATUS_ACTIVE = "active"
STATUS_NO_OFFLINE_ACCESS = "no_offline_access"
STATUS_NEEDS_REAUTH = "needs_reauth"
# The user asked to disconnect: sessions are ended, the job no longer works for them, and the
# grant is revoked and every record deleted as soon as Google can be reached (`accounts.lifecycle`).
STATUS_DISCONNECTING = "disconnecting"
# Google disabled the account (a Cross-Account Protection `account-disabled` event, other than
# for hijacking): not processed, sessions kept so the page can say why, until Google enables it
# again (`account-enabled`) or the user signs in again (which Google allows only once enabled).
STATUS_SUSPENDED = "suspended"
# The flags a security event sets, which a sign-in clears: the suspension, and a notice that
# Google asks the user to change their password (`account-credential-change-required`).
SUSPENSION_FIELD = "suspension"
SECURITY_NOTICE_FIELD = "security_notice"
PROFILE_FIELDS = ("email", "email_verified", "name", "picture", "hd")
_WRITE_ATTEMPTS = 3


def make_client(project: str) -> firestore.Client:
    """A Firestore client; the library itself reads `FIRESTORE_EMULATOR_HOST` to use the emulator."""
    return firestore.Client(project=project)


def initial_session_generation(now: dt.datetime) -> int:
    """A new document's `session_generation`: its creation time in microseconds.

    Ending sessions adds one. A document deleted and created again (disconnect, then a new
    sign-in) starts above any generation its predecessor reached, so no cookie issued before
    the disconnect becomes valid again.
    """
    return int(now.timestamp() * 1_000_000)


def session_generation(record: dict[str, Any]) -> int:
    """The generation a session must carry to be valid (0 for documents older than sessions)."""
    value = record.get("session_generation")
    return value if isinstance(value, int) else 0


def restored_status(record: dict[str, Any]) -> str:
    """The status of a suspended user once the suspension ends: `needs_reauth` if their grant
    died meanwhile (its `reauth_reason` is kept), `active` with a refresh token, else
    `no_offline_access`."""
    if record.get("reauth_reason"):
        return STATUS_NEEDS_REAUTH
    return STATUS_ACTIVE if record.get("refresh_token") else STATUS_NO_OFFLINE_ACCESS


def stored_time(value: Any) -> dt.datetime | None:
    """A timestamp field of a user document as an aware datetime (UTC when stored naive), or
    None when the field is absent or not a time."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return None


@dataclass(frozen=True)
class SignInRecord:
    """What a sign-in stores. Tokens arrive here already sealed."""

    sub: str
    profile: dict[str, Any]
    granted_scopes: tuple[str, ...]
    sealed_refresh_token: dict[str, Any] | None
    sealed_access_token: dict[str, Any]
    access_token_expires_at: dt.datetime
    # Time-based access (`refresh_token_expires_in`): when the new refresh token expires.
    refresh_token_expires_at: dt.datetime | None = None
    # The new refresh token's keyed identifiers (`store.refresh_token_ids`), or None.
    refresh_token_ids: dict[str, str] | None = None


@dataclass(frozen=True)
class SignInOutcome:
    """The user's state after the write."""

    status: str
    created: bool
    # Known when the write created or read the document; None after a blind update.
    session_generation: int | None = None

    @property
    def offline_access(self) -> bool:
        return self.status == STATUS_ACTIVE


class UserStore:
    """Reads and writes user documents."""

    def __init__(self, client: firestore.Client, collection: str = "users",
                 outbox: Outbox | None = None) -> None:
        self.client = client
        self.collection = client.collection(collection)
        # Where lifecycle events are written with the changes they report (None: no events).
        self.outbox = outbox

    @property
    def events_on(self) -> bool:
        return self.outbox is not None and self.outbox.enabled

    def commit(self, batch: Any, staged: Staged | None) -> Any:
        """Commit a write that may carry events; publish them once it is stored."""
        result = batch.commit(retry=RETRY, timeout=TIMEOUT_SECONDS)
        if staged is not None and self.outbox is not None:
            self.outbox.sent(staged)
        return result

    def connect(self, timeout: float = TIMEOUT_SECONDS) -> None:
        """Open the gRPC channel now (no read, no cost), so the first real call does not wait.

        If Firestore is unreachable, the real calls report it.
        """
        try:
            # The client library has no public "connect": its transport holds the channel.
            api = self.client._firestore_api
            channel = api._transport.grpc_channel
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except (AttributeError, grpc.FutureTimeoutError):
            pass  # an optimisation only: the first real call connects anyway

    def ref(self, sub: str) -> firestore.DocumentReference:
        return self.collection.document(sub)

    @maps_firestore_errors
    def get(self, sub: str) -> dict[str, Any] | None:
        snapshot = self.ref(sub).get(retry=RETRY, timeout=TIMEOUT_SECONDS)
        return snapshot.to_dict() if snapshot.exists else None

    @maps_firestore_errors
    def record_sign_in(self, record: SignInRecord, now: dt.datetime) -> SignInOutcome:
        """Store a sign-in atomically; keep a stored refresh token when none came.

        Raises:
            Unavailable: Firestore failed or timed out; nothing was written by this call, or (on a
                timeout of the commit itself) the write may or may not have happened.
        """
        ref = self.ref(record.sub)
        for _ in range(_WRITE_ATTEMPTS):
            try:
                if record.sealed_refresh_token is not None:
                    return self._record_with_refresh_token(ref, record, now)
                snapshot = ref.get(retry=RETRY, timeout=TIMEOUT_SECONDS)
                previous = snapshot.to_dict() if snapshot.exists else None
                fields, status = sign_in_fields(record, previous, now)
                batch = self.client.batch()
                if previous is None:
                    fields["created_at"] = now
                    batch.create(ref, fields)
                else:
                    option = self.client.write_option(last_update_time=snapshot.update_time)
                    batch.update(ref, fields, option=option)
                self.commit(batch, self._stage_sign_in(batch, record.sub, previous, fields, now))
                generation = session_generation(previous if previous is not None else fields)
                return SignInOutcome(status=status, created=previous is None,
                                     session_generation=generation)
            except (
                api_exceptions.AlreadyExists,
                api_exceptions.FailedPrecondition,
                api_exceptions.NotFound,
            ):
                continue  # a concurrent sign-in or deletion of the same user won the race: again
        raise firestore_unavailable()

    def _record_with_refresh_token(
        self, ref: firestore.DocumentReference, record: SignInRecord, now: dt.datetime
    ) -> SignInOutcome:
        # With a new refresh token the written fields do not depend on the stored document, so
        # no read is needed: a new user costs one call, a returning one two (create, update).
        fields, status = sign_in_fields(record, None, now)
        try:
            if self.events_on:
                batch = self.client.batch()
                batch.create(ref, {**fields, "created_at": now})
                self.commit(batch, self._stage_sign_in(batch, record.sub, None, fields, now))
            else:
                ref.create({**fields, "created_at": now}, retry=RETRY, timeout=TIMEOUT_SECONDS)
            return SignInOutcome(status=status, created=True,
                                 session_generation=fields["session_generation"])
        except api_exceptions.AlreadyExists:
            pass
        # The user exists: fields for an update, where `job.failure_count` is a dotted path that
        # keeps the job's other fields (a running claim). NotFound (deleted meanwhile) is retried.
        fields, status = sign_in_fields(record, {}, now)
        if self.events_on:
            # The events depend on what was there: read it, and write only over that version
            # (a conflict, FailedPrecondition, is retried by the caller's loop).
            snapshot = ref.get(retry=RETRY, timeout=TIMEOUT_SECONDS)
            if not snapshot.exists:
                raise api_exceptions.NotFound("deleted meanwhile")  # type: ignore[no-untyped-call]
            batch = self.client.batch()
            batch.update(ref, fields,
                         option=self.client.write_option(last_update_time=snapshot.update_time))
            self.commit(batch, self._stage_sign_in(batch, record.sub, snapshot.to_dict() or {},
                                                   fields, now))
        else:
            ref.update(fields, retry=RETRY, timeout=TIMEOUT_SECONDS)
        return SignInOutcome(status=status, created=False)

    def _stage_sign_in(self, batch: Any, sub: str, previous: dict[str, Any] | None,
                       fields: dict[str, Any], now: dt.datetime) -> Staged | None:
        if not self.events_on or self.outbox is None:
            return None
        return self.outbox.stage(batch, self.outbox.catalog.sign_in(sub, previous, fields, now), now)


def sign_in_fields(
    record: SignInRecord, previous: dict[str, Any] | None, now: dt.datetime
) -> tuple[dict[str, Any], str]:
    """The fields a sign-in writes, and the user's status after it.

    `previous` is the stored document (`{}` for an update that need not read it, None for a
    create).
    """
    fields: dict[str, Any] = {
        "sub": record.sub,
        "granted_scopes": list(record.granted_scopes),
        "access_token": record.sealed_access_token,
        "access_token_expires_at": record.access_token_expires_at,
        "signed_in_at": now,
        "updated_at": now,
    }
    for name in PROFILE_FIELDS:
        fields[name] = record.profile.get(name)
    if record.sealed_refresh_token is not None:
        fields["refresh_token"] = record.sealed_refresh_token
        # `signed_in_at` moves with every sign-in; Google's clocks start when the refresh token
        # is issued (Testing mode's 7 days, the 6-month idle limit, time-based access).
        fields["refresh_token_issued_at"] = now
        fields["refresh_token_expires_at"] = record.refresh_token_expires_at
        if record.refresh_token_ids is not None:
            fields["refresh_token_ids"] = dict(record.refresh_token_ids)
        elif previous is not None:
            fields["refresh_token_ids"] = firestore.DELETE_FIELD  # the old token's: never matched again
        fields["status"] = STATUS_ACTIVE
        fields["reauth_reason"] = None
        fields["next_run_at"] = now
        fields["job.failure_count"] = 0
    else:
        previous_status = (previous or {}).get("status")
        has_token = bool((previous or {}).get("refresh_token"))
        if previous_status in (STATUS_ACTIVE, STATUS_NEEDS_REAUTH) and has_token:
            fields["status"] = previous_status
        elif previous_status == STATUS_DISCONNECTING and has_token:
            fields["status"] = STATUS_ACTIVE  # the pending disconnect is cancelled: the grant is kept
        elif previous_status == STATUS_SUSPENDED:
            # Google let the user sign in: the account is enabled again.
            fields["status"] = restored_status(previous or {})
        else:
            fields["status"] = STATUS_NO_OFFLINE_ACCESS
    if previous is None:
        fields["session_generation"] = initial_session_generation(now)
        # `update` takes dotted paths; `create` needs the nested map itself.
        if "job.failure_count" in fields:
            fields["job"] = {"failure_count": fields.pop("job.failure_count")}
    else:
        # Signing in again cancels a disconnect that has not completed yet; it also ends a
        # suspension (Google lets only enabled accounts sign in) and answers a security notice.
        fields["disconnect"] = firestore.DELETE_FIELD
        fields[SUSPENSION_FIELD] = firestore.DELETE_FIELD
        fields[SECURITY_NOTICE_FIELD] = firestore.DELETE_FIELD
    return fields, fields["status"]
