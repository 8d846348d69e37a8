"""The scheduled job's reads and writes of user documents: due pages, claims and results.

Due users are read in pages by keyset pagination on the composite index
(`status == "active"`, `next_run_at <= run start`, ordered by `next_run_at` then document name,
`start_after` the previous page's last document), so a run never holds more than one page.

Each user document is written at most twice per run, and nothing else is written per user:

1. The claim, a write with a precondition on the `update_time` read with the page (optimistic,
   no transaction, no lock waits). It sets `job.claim_run_id`, a `job.claim_id` unique to this
   delivery, `job.claim_expires_at`, and moves `next_run_at` to the claim's expiry. A concurrent
   delivery of the same run (or an overlapping run) that read the same snapshot fails the
   precondition, re-reads, sees the claim and skips the user. Moving `next_run_at` takes the user
   out of every other run's due query, and is also how a crashed run's claim expires: the user
   becomes due again exactly when the claim lapses (`JOB_CLAIM_TTL_SECONDS`).
2. The result, a write guarded by the claim's `update_time`: outcome, next due time, failure
   count, refreshed access token, and the claim released. If the document changed meanwhile (a
   sign-in stored new tokens), only the `job` fields are written, so a concurrent sign-in is never
   overwritten; if another run took the claim over, nothing is written.

A third write happens only if Google ever returns a new refresh token: it is sealed and saved,
under the same precondition, before the new access token is used.

A user the job disconnects (their Workspace domain is no longer allowed) goes through the account
lifecycle's revoke-and-delete (`accounts.lifecycle`), and nothing is written for them here.

With lifecycle events on, the result's events (`user.needs_reauth`, `user.scopes_changed`,
`offline.task_completed`) go into the outbox in the same atomic write as the result
(`events.outbox`), and are published after it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from google.api_core import exceptions as api_exceptions
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

from ..events.catalog import Event
from .firestore_errors import RETRY, TIMEOUT_SECONDS, maps_firestore_errors
from .job_results import Outcome, UserResult
from .users import PROFILE_FIELDS, STATUS_ACTIVE, STATUS_NEEDS_REAUTH, UserStore, stored_time

# Why a due user was not claimed by this run.
SKIP_NOT_ACTIVE = "not_active"
SKIP_NOT_DUE = "not_due"
SKIP_DONE_IN_THIS_RUN = "already_processed"
SKIP_CLAIMED = "claimed_by_another_run"
SKIP_CONTENDED = "contended"
SKIP_GONE = "deleted"

Snapshot = firestore.DocumentSnapshot[firestore.DocumentReference]

# Answers of a write guarded by a precondition: someone else changed or removed the document.
_CONFLICTS = (api_exceptions.FailedPrecondition, api_exceptions.NotFound)


@dataclass
class DueUser:
    """A user document as the job sees it: the id (`sub`), the fields, and their version.

    Tasks receive it read-only; the job keeps `update_time` current as it writes.
    """

    sub: str
    data: dict[str, Any]
    update_time: dt.datetime | None = field(repr=False, default=None)

    @property
    def job(self) -> dict[str, Any]:
        job = self.data.get("job")
        return job if isinstance(job, dict) else {}

    @property
    def granted_scopes(self) -> tuple[str, ...]:
        scopes = self.data.get("granted_scopes")
        return tuple(s for s in scopes if isinstance(s, str)) if isinstance(scopes, list) else ()

    @property
    def failure_count(self) -> int:
        count = self.job.get("failure_count")
        return count if isinstance(count, int) and count >= 0 else 0

    def __repr__(self) -> str:  # never print sealed tokens or profile data
        return f"DueUser(fields={sorted(self.data)})"

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> DueUser:
        return cls(sub=snapshot.id, data=snapshot.to_dict() or {}, update_time=snapshot.update_time)


def skip_reason(user: DueUser, run_id: str, now: dt.datetime,
                due_by: dt.datetime | None = None) -> str | None:
    """Why this run must not claim the user now, or None if it may.

    `due_by` (default `now`) is how late a `next_run_at` still counts as due: a run asked to
    process users ahead of schedule (an operator's `job run --all` or `--user`) passes a later one.
    """
    if user.data.get("status") != STATUS_ACTIVE:
        return SKIP_NOT_ACTIVE
    job = user.job
    if job.get("last_run_id") == run_id:
        return SKIP_DONE_IN_THIS_RUN
    claim_expires = stored_time(job.get("claim_expires_at"))
    if job.get("claim_id") and claim_expires is not None and claim_expires > now:
        return SKIP_CLAIMED
    due = stored_time(user.data.get("next_run_at"))
    if due is None or due > (due_by or now):
        return SKIP_NOT_DUE
    return None


@dataclass(frozen=True)
class ClaimOutcome:
    """A successful claim, or why there was none."""

    user: DueUser | None
    skipped: str | None = None
    took_over_expired: bool = False  # a previous run's claim had lapsed (it crashed or timed out)


class JobStore:
    """The job's view of the users collection."""

    def __init__(self, store: UserStore) -> None:
        self.store = store
        self.client = store.client
        self.collection = store.collection

    @maps_firestore_errors
    def due_page(
        self, due_by: dt.datetime, page_size: int, after: Snapshot | None = None
    ) -> list[Snapshot]:
        """One page of due active users, in `next_run_at` then name order, after `after`.

        Raises:
            Unavailable: Firestore failed or timed out.
        """
        query = (
            self.collection.where(filter=FieldFilter("status", "==", STATUS_ACTIVE))
            .where(filter=FieldFilter("next_run_at", "<=", due_by))
            .order_by("next_run_at")
            .order_by(FieldPath.document_id())
            .limit(page_size)
        )
        if after is not None:
            query = query.start_after(after)
        return list(query.get(retry=RETRY, timeout=TIMEOUT_SECONDS * 2))

    @maps_firestore_errors
    def active_page(self, page_size: int, after: Snapshot | None = None) -> list[Snapshot]:
        """One page of every active user, due or not, in document-name order, after `after`.

        For runs ahead of schedule: the order does not change when a claim moves `next_run_at`,
        so no user comes twice.

        Raises:
            Unavailable: Firestore failed or timed out.
        """
        query = (
            self.collection.where(filter=FieldFilter("status", "==", STATUS_ACTIVE))
            .order_by(FieldPath.document_id())
            .limit(page_size)
        )
        if after is not None:
            query = query.start_after(after)
        return list(query.get(retry=RETRY, timeout=TIMEOUT_SECONDS * 2))

    def _read(self, sub: str) -> DueUser | None:
        snapshot = self.collection.document(sub).get(retry=RETRY, timeout=TIMEOUT_SECONDS)
        return DueUser.from_snapshot(snapshot) if snapshot.exists else None

    def _update(self, user: DueUser, fields: dict[str, Any]) -> Any:
        """The one write of this store: guarded by the update time the job last saw."""
        option = self.client.write_option(last_update_time=user.update_time)
        return self.collection.document(user.sub).update(
            fields, option=option, retry=RETRY, timeout=TIMEOUT_SECONDS
        )

    def _update_announcing(self, user: DueUser, fields: dict[str, Any], events: list[Event],
                           now: dt.datetime) -> Any:
        """`_update`, with `events` written to the outbox in the same atomic write."""
        outbox = self.store.outbox
        if not events or outbox is None or not outbox.enabled:
            return self._update(user, fields)
        batch = self.client.batch()
        batch.update(self.collection.document(user.sub), fields,
                     option=self.client.write_option(last_update_time=user.update_time))
        # One result per write: the user's first, then the outbox record's.
        return self.store.commit(batch, outbox.stage(batch, events, now))[0]

    def _result_events(self, user: DueUser, result: UserResult, run_id: str, now: dt.datetime,
                       own_fields: bool) -> list[Event]:
        """The lifecycle events of a result: the user's own changes only when they are written."""
        outbox = self.store.outbox
        if outbox is None or not outbox.enabled:
            return []
        catalog = outbox.catalog
        events: list[Event] = []
        if own_fields and result.outcome is Outcome.NEEDS_REAUTH:
            events.append(catalog.needs_reauth(user.sub, result.reauth_reason, now))
        if own_fields and result.granted_scopes is not None:
            events.extend(catalog.scopes_changed(user.sub, user.granted_scopes,
                                                 result.granted_scopes, now))
        if result.outcome in (Outcome.SUCCEEDED, Outcome.PARTIAL):
            events.extend(catalog.tasks_completed(user.sub, run_id, str(result.outcome),
                                                  result.tasks, now))
        return events

    @maps_firestore_errors
    def claim(
        self, user: DueUser, *, run_id: str, claim_id: str, now: dt.datetime, ttl: dt.timedelta,
        due_by: dt.datetime | None = None,
    ) -> ClaimOutcome:
        """Claim a due user for this delivery of the run, or say why not (`due_by`: `skip_reason`).

        Raises:
            Unavailable: Firestore failed or timed out.
        """
        for attempt in (1, 2):
            reason = skip_reason(user, run_id, now, due_by)
            if reason is not None:
                return ClaimOutcome(None, skipped=reason)
            previous_claim = user.job.get("claim_id")
            expires = now + ttl
            fields = {
                "job.claim_run_id": run_id,
                "job.claim_id": claim_id,
                "job.claim_expires_at": expires,
                "next_run_at": expires,
            }
            try:
                result = self._update(user, fields)
            except _CONFLICTS:
                fresh = self._read(user.sub)
                if fresh is None:
                    return ClaimOutcome(None, skipped=SKIP_GONE)
                if fresh.job.get("claim_id") == claim_id:
                    # Our write was applied although its answer was lost (retried commit).
                    return ClaimOutcome(fresh, took_over_expired=bool(previous_claim))
                user = fresh
                if attempt == 2:
                    break
                continue
            claimed = DueUser(user.sub, dict(user.data), result.update_time)
            claimed.data["job"] = {**user.job, "claim_run_id": run_id, "claim_id": claim_id,
                                   "claim_expires_at": expires}
            claimed.data["next_run_at"] = expires
            return ClaimOutcome(claimed, took_over_expired=bool(previous_claim))
        return ClaimOutcome(None, skipped=SKIP_CONTENDED)

    @maps_firestore_errors
    def read(self, sub: str) -> DueUser | None:
        """One user document as the job sees it, or None."""
        return self._read(sub)

    @maps_firestore_errors
    def save_refresh_token(self, user: DueUser, sealed: dict[str, Any], now: dt.datetime,
                           expires_in: int | None = None) -> None:
        """Store a new refresh token Google returned, before anything uses it.

        Raises:
            Unavailable: Firestore failed, or the document changed (the token must then not be
                used: the caller defers the user).
        """
        fields = {
            "refresh_token": sealed,
            "refresh_token_issued_at": now,
            "refresh_token_expires_at": (
                now + dt.timedelta(seconds=expires_in) if expires_in is not None else None),
            "updated_at": now,
        }
        result = self._update(user, fields)
        user.update_time = result.update_time
        user.data.update(fields)

    @maps_firestore_errors
    def finish(self, user: DueUser, result: UserResult, *, run_id: str, now: dt.datetime,
               claim_id: str) -> str:
        """Write a user's result and release the claim.

        The run's record (the `job` map and the next due time) is always written; the user's
        fields (tokens, status, profile) only if nobody changed the document since the claim.

        Returns:
            `saved`, `saved_job_only` (a sign-in changed the document meanwhile), or
            `claim_lost` (another run took the user over after our claim expired); `deleted`
            for a user the account lifecycle disconnected (nothing is left to write).

        Raises:
            Unavailable: Firestore failed or timed out.
        """
        if result.disconnect:
            return "deleted"
        job, own = _job_fields(result, run_id, now), _user_fields(result, now)
        released = {"job.claim_id": None, "job.claim_run_id": None, "job.claim_expires_at": None}
        try:
            self._update_announcing(user, {**job, **own, **released},
                                    self._result_events(user, result, run_id, now, own_fields=True),
                                    now)
            return "saved"
        except _CONFLICTS:
            pass
        fresh = self._read(user.sub)
        if fresh is None or fresh.job.get("claim_id") != claim_id:
            if fresh is not None and fresh.job.get("last_run_id") == run_id \
                    and fresh.job.get("claim_id") is None:
                return "saved"  # our own write was applied although its answer was lost
            return "claim_lost"
        # A sign-in that stored a new refresh token made the user due now: keep that. Otherwise
        # the due time is still our claim's expiry and must become the result's.
        if "next_run_at" in own and fresh.data.get("next_run_at") == user.data.get("next_run_at"):
            job["next_run_at"] = own["next_run_at"]
        try:
            self._update_announcing(fresh, {**job, **released},
                                    self._result_events(fresh, result, run_id, now,
                                                        own_fields=False), now)
        except _CONFLICTS:
            return "claim_lost"
        return "saved_job_only"


def _job_fields(result: UserResult, run_id: str, now: dt.datetime) -> dict[str, Any]:
    """The run's own record on the user document (dotted paths into the `job` map)."""
    fields: dict[str, Any] = {
        "job.last_run_id": run_id,
        "job.last_run_at": now,
        "job.result": result.record(),
    }
    if result.failure_count is not None:
        fields["job.failure_count"] = result.failure_count
    if result.refusal_count is not None:
        fields["job.refusal_count"] = result.refusal_count
    if result.outcome in (Outcome.SUCCEEDED, Outcome.PARTIAL):
        fields["job.last_success_at"] = now
    if result.refreshed is not None:
        fields["job.refreshed_at"] = now
    return fields


def _user_fields(result: UserResult, now: dt.datetime) -> dict[str, Any]:
    """The user's fields the result changes: due time, status, tokens, scopes, profile."""
    fields: dict[str, Any] = {"updated_at": now}
    if result.next_run_at is not None:
        fields["next_run_at"] = result.next_run_at
    if result.outcome is Outcome.NEEDS_REAUTH:
        fields.update({
            "status": STATUS_NEEDS_REAUTH,
            "reauth_reason": result.reauth_reason,
            "access_token": firestore.DELETE_FIELD,
            "access_token_expires_at": firestore.DELETE_FIELD,
        })
    # Re-sealed under the primary key; only written with the user's own fields, so never over
    # a token a sign-in stored meanwhile.
    fields.update({name: dict(sealed) for name, sealed in result.resealed.items()})
    if result.refreshed is not None:
        fields["access_token"] = result.refreshed.sealed_access_token
        fields["access_token_expires_at"] = result.refreshed.expires_at
    if result.granted_scopes is not None:
        fields["granted_scopes"] = list(result.granted_scopes)
    fields.update({name: result.profile[name] for name in PROFILE_FIELDS if name in result.profile})
    return fields
