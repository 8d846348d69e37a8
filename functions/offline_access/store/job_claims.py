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

Batched, the same writes cost a few RPCs per page instead of two per user: `claim_many` claims
a page's users (or a Pub/Sub message's) in one `BatchWrite`, and `finish_many` writes many
results in another. A `BatchWrite` applies each write on its own, with its own precondition and
its own status, so one user's conflict never fails the others': each write that fails its
precondition (or fails at all) goes through the per-user path above, which re-reads the document
and decides as `claim` and `finish` do. Every write is an `update` guarded by an update time,
never a `set`: a user deleted meanwhile fails it and is not written again (nor brought back).
`release_many` hands back the claims of users a run claimed but did not start (it stopped at its
budget or its breaker), so they stay first in line for the next run instead of waiting for their
claims to lapse.

A user the job disconnects (their Workspace domain is no longer allowed) goes through the account
lifecycle's revoke-and-delete (`accounts.lifecycle`), and nothing is written for them here.

With lifecycle events on, the result's events (`user.needs_reauth`, `user.scopes_changed`,
`offline.task_completed`) go into the outbox in the same atomic write as the result
(`events.outbox`), and are published after it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.api_core import exceptions as api_exceptions
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.bulk_batch import BulkWriteBatch
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
# The fields that release a claim, written with every result.
_RELEASED = {"job.claim_id": None, "job.claim_run_id": None, "job.claim_expires_at": None}
# google.rpc.Code.OK: the status of each write of a BatchWrite that was applied.
_OK = 0
# A BatchWrite takes at most 500 writes: larger batches are sent in parts.
MAX_BATCH_WRITES = 500


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


def backlog_age(snapshot: Snapshot, now: dt.datetime) -> float | None:
    """How long the user of `snapshot` has been due at `now`, in seconds (0 if not yet due)."""
    due = stored_time((snapshot.to_dict() or {}).get("next_run_at"))
    return round(max((now - due).total_seconds(), 0.0), 1) if due else None


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
    # The user's due time before the claim moved it: what `release_many` puts back.
    due_before: dt.datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class FinishedUser:
    """A claimed user's result, waiting to be written (`JobStore.finish_many`)."""

    user: DueUser
    result: UserResult
    now: dt.datetime


def _claim_fields(run_id: str, claim_id: str, expires: dt.datetime) -> dict[str, Any]:
    return {
        "job.claim_run_id": run_id,
        "job.claim_id": claim_id,
        "job.claim_expires_at": expires,
        "next_run_at": expires,
    }


def _claimed(user: DueUser, run_id: str, claim_id: str, expires: dt.datetime,
             update_time: dt.datetime | None) -> ClaimOutcome:
    """The user as our claim left it, at the update time of that write."""
    claimed = DueUser(user.sub, dict(user.data), update_time)
    claimed.data["job"] = {**user.job, "claim_run_id": run_id, "claim_id": claim_id,
                           "claim_expires_at": expires}
    claimed.data["next_run_at"] = expires
    return ClaimOutcome(claimed, took_over_expired=bool(user.job.get("claim_id")),
                        due_before=stored_time(user.data.get("next_run_at")))


class JobStore:
    """The job's view of the users collection."""

    def __init__(self, store: UserStore) -> None:
        self.store = store
        self.client = store.client
        self.collection = store.collection

    @maps_firestore_errors
    def due_page(
        self, due_by: dt.datetime, page_size: int, after: Snapshot | None = None,
        select: Sequence[str] | None = None,
    ) -> list[Snapshot]:
        """One page of due active users, in `next_run_at` then name order, after `after`.

        `select` reads only those fields (a projection: the dispatcher needs ids and due times,
        not tokens); `next_run_at` is always among them, for the next page's cursor.

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
        if select is not None:
            query = query.select(sorted({"next_run_at", *select}))
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
        return self._claim(user, run_id=run_id, claim_id=claim_id, now=now, ttl=ttl, due_by=due_by)

    def _claim(self, user: DueUser, *, run_id: str, claim_id: str, now: dt.datetime,
               ttl: dt.timedelta, attempts: int = 2,
               due_by: dt.datetime | None = None) -> ClaimOutcome:
        """Write the claim (at most `attempts` times), re-reading the document after a conflict."""
        for attempt in range(1, attempts + 1):
            reason = skip_reason(user, run_id, now, due_by)
            if reason is not None:
                return ClaimOutcome(None, skipped=reason)
            expires = now + ttl
            try:
                result = self._update(user, _claim_fields(run_id, claim_id, expires))
            except _CONFLICTS:
                fresh = self._read(user.sub)
                if fresh is None:
                    return ClaimOutcome(None, skipped=SKIP_GONE)
                if fresh.job.get("claim_id") == claim_id:
                    # Our write was applied although its answer was lost (retried commit).
                    return ClaimOutcome(fresh, took_over_expired=bool(user.job.get("claim_id")),
                                        due_before=stored_time(user.data.get("next_run_at")))
                user = fresh
                if attempt == attempts:
                    break
                continue
            return _claimed(user, run_id, claim_id, expires, result.update_time)
        return ClaimOutcome(None, skipped=SKIP_CONTENDED)

    @maps_firestore_errors
    def read(self, sub: str) -> DueUser | None:
        """One user document as the job sees it, or None."""
        return self._read(sub)

    @maps_firestore_errors
    def claim_many(
        self, users: Sequence[DueUser], *, run_id: str, claim_id: str, now: dt.datetime,
        ttl: dt.timedelta, due_by: dt.datetime | None = None,
    ) -> list[ClaimOutcome]:
        """Claim many due users in one `BatchWrite`; one outcome per user, in order.

        Each write has its own precondition and its own result. A write that failed (someone
        else changed the document since it was read, or it was deleted) is decided as `claim`
        decides a conflict: the document is re-read, and claimed again at most once.

        Raises:
            Unavailable: Firestore failed or timed out (no outcome is known).
        """
        if len(users) > MAX_BATCH_WRITES:
            return [*self.claim_many(users[:MAX_BATCH_WRITES], run_id=run_id, claim_id=claim_id,
                                     now=now, ttl=ttl, due_by=due_by),
                    *self.claim_many(users[MAX_BATCH_WRITES:], run_id=run_id, claim_id=claim_id,
                                     now=now, ttl=ttl, due_by=due_by)]
        outcomes: list[ClaimOutcome | None] = [None] * len(users)
        expires = now + ttl
        batch = BulkWriteBatch(self.client)
        sent: list[int] = []
        for index, user in enumerate(users):
            reason = skip_reason(user, run_id, now, due_by)
            if reason is not None:
                outcomes[index] = ClaimOutcome(None, skipped=reason)
                continue
            self._add_update(batch, user, _claim_fields(run_id, claim_id, expires))
            sent.append(index)
        for index, status, update_time in self._commit(batch, len(sent)):
            user = users[sent[index]]
            if status == _OK:
                outcomes[sent[index]] = _claimed(user, run_id, claim_id, expires, update_time)
                continue
            fresh = self._read(user.sub)
            if fresh is None:
                outcomes[sent[index]] = ClaimOutcome(None, skipped=SKIP_GONE)
            elif fresh.job.get("claim_id") == claim_id:  # applied by a retried BatchWrite
                outcomes[sent[index]] = ClaimOutcome(
                    fresh, took_over_expired=bool(user.job.get("claim_id")),
                    due_before=stored_time(user.data.get("next_run_at")))
            else:
                outcomes[sent[index]] = self._claim(fresh, run_id=run_id, claim_id=claim_id,
                                                    now=now, ttl=ttl, attempts=1, due_by=due_by)
        return [outcome or ClaimOutcome(None, skipped=SKIP_CONTENDED) for outcome in outcomes]

    @maps_firestore_errors
    def release_many(self, claims: Iterable[ClaimOutcome], claim_id: str) -> int:
        """Hand back claims of users that were claimed but never started; returns how many.

        Each user gets back the due time it had before the claim, so the next run takes it first.
        A write that fails its precondition is left alone: the document changed (a sign-in made
        the user due now, say), and a claim that stays simply lapses at its expiry.

        Raises:
            Unavailable: Firestore failed or timed out.
        """
        claims = list(claims)
        if len(claims) > MAX_BATCH_WRITES:
            return (self.release_many(claims[:MAX_BATCH_WRITES], claim_id)
                    + self.release_many(claims[MAX_BATCH_WRITES:], claim_id))
        batch = BulkWriteBatch(self.client)
        count = 0
        for claim in claims:
            user = claim.user
            if user is None or user.job.get("claim_id") != claim_id or claim.due_before is None:
                continue
            self._add_update(batch, user, {**_RELEASED, "next_run_at": claim.due_before})
            count += 1
        return sum(status == _OK for _, status, _ in self._commit(batch, count))

    @maps_firestore_errors
    def read_many(self, subs: Sequence[str]) -> dict[str, DueUser]:
        """The user documents named by `subs` that exist, by sub, in one batched read.

        Raises:
            Unavailable: Firestore failed or timed out.
        """
        refs = [self.collection.document(sub) for sub in subs]
        found: dict[str, DueUser] = {}
        for snapshot in self.client.get_all(refs, retry=RETRY, timeout=TIMEOUT_SECONDS * 2):
            if snapshot.exists:
                found[snapshot.id] = DueUser.from_snapshot(snapshot)
        return found

    def _add_update(self, batch: BulkWriteBatch, user: DueUser, fields: dict[str, Any]) -> None:
        """Add this store's one kind of write to a batch: guarded by the update time last seen."""
        option = self.client.write_option(last_update_time=user.update_time)
        batch.update(self.collection.document(user.sub), fields, option=option)

    def _commit(self, batch: BulkWriteBatch, count: int) -> list[tuple[int, int, Any]]:
        """Send a batch's writes; (index, status code, update time) of each, in order."""
        if count == 0:
            return []
        response = batch.commit(retry=RETRY, timeout=TIMEOUT_SECONDS * 2)
        return [(index, status.code, result.update_time if status.code == _OK else None)
                for index, (status, result) in enumerate(zip(response.status,
                                                             response.write_results, strict=True))]

    @maps_firestore_errors
    def save_refresh_token(self, user: DueUser, sealed: dict[str, Any], now: dt.datetime,
                           expires_in: int | None = None, ids: dict[str, str] | None = None) -> None:
        """Store a new refresh token Google returned, before anything uses it, with its keyed
        identifiers (`store.refresh_token_ids`; without them the old token's are removed).

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
        result = self._update(user, {**fields, "refresh_token_ids": dict(ids) if ids else firestore.DELETE_FIELD})
        user.update_time = result.update_time
        user.data.update(fields)
        if ids:
            user.data["refresh_token_ids"] = dict(ids)
        else:
            user.data.pop("refresh_token_ids", None)

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
        try:
            self._update_announcing(user, _result_write(user, job, own),
                                    self._result_events(user, result, run_id, now, own_fields=True),
                                    now)
            return "saved"
        except _CONFLICTS:
            pass
        return self._finish_after_conflict(user, result, job, own, run_id=run_id, now=now,
                                           claim_id=claim_id)

    @maps_firestore_errors
    def finish_many(self, finished: Sequence[FinishedUser], *, run_id: str,
                    claim_id: str) -> list[str]:
        """Write many users' results in one `BatchWrite`; what `finish` returns, per user.

        The fields are `finish`'s, user by user (`_job_fields`, `_user_fields`). A write that
        failed its precondition is decided as `finish` decides a conflict, on a fresh read.

        A `BatchWrite` is not atomic across documents, so the results' lifecycle events cannot
        ride in the users' writes as `finish`'s do. They are recorded first, in one outbox
        record that names the run each event's change belongs to (`Outbox.stage_intent`); after
        the batch, only the events of the writes that were applied are published. An instance
        that dies in between leaves the record, and the next run publishes from it the events
        whose change is found stored (`job.last_run_id`), and no other.

        Raises:
            Unavailable: Firestore failed or timed out (no result is known to be written).
        """
        if len(finished) > MAX_BATCH_WRITES:
            return [*self.finish_many(finished[:MAX_BATCH_WRITES], run_id=run_id, claim_id=claim_id),
                    *self.finish_many(finished[MAX_BATCH_WRITES:], run_id=run_id, claim_id=claim_id)]
        batch = BulkWriteBatch(self.client)
        saved = ["saved"] * len(finished)
        sent: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
        events: dict[int, list[Event]] = {}
        for index, item in enumerate(finished):
            if item.result.disconnect:
                saved[index] = "deleted"  # the account lifecycle deleted the user: nothing to write
                continue
            job, own = _job_fields(item.result, run_id, item.now), _user_fields(item.result, item.now)
            sent.append((index, job, own))
            self._add_update(batch, item.user, _result_write(item.user, job, own))
            announced = self._result_events(item.user, item.result, run_id, item.now,
                                            own_fields=True)
            if announced:
                events[index] = announced
        outbox = self.store.outbox
        intent = (outbox.stage_intent(
            [(event, self.collection.document(finished[i].user.sub).path, run_id)
             for i, listed in events.items() for event in listed], finished[0].now)
            if events and outbox is not None else None)
        applied: list[Event] = []
        for position, status, _ in self._commit(batch, len(sent)):
            index, job, own = sent[position]
            if status == _OK:
                applied.extend(events.get(index, ()))
            else:
                item = finished[index]
                saved[index] = self._finish_after_conflict(item.user, item.result, job, own,
                                                           run_id=run_id, now=item.now,
                                                           claim_id=claim_id)
        if intent is not None and outbox is not None:
            outbox.sent(intent, applied)
        return saved

    def _finish_after_conflict(self, user: DueUser, result: UserResult, job: dict[str, Any],
                               own: dict[str, Any], *, run_id: str, now: dt.datetime,
                               claim_id: str) -> str:
        """The document changed since our claim: write the run's record only, if still ours."""
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
            self._update_announcing(fresh, {**job, **_RELEASED, **_cleared(fresh)},
                                    self._result_events(fresh, result, run_id, now,
                                                        own_fields=False), now)
        except _CONFLICTS:
            return "claim_lost"
        return "saved_job_only"

    @maps_firestore_errors
    def mark_dead_lettered(self, subs: Sequence[str], record: dict[str, Any]) -> int:
        """Record on each user that a message holding them was dead-lettered; returns how many.

        Only `job.dead_letter` is written, with an `update` (the document must exist): a user
        deleted meanwhile is not brought back, and nothing a sign-in wrote is touched. The next
        result written for the user clears it.

        Raises:
            Unavailable: Firestore failed or timed out.
        """
        if len(subs) > MAX_BATCH_WRITES:
            return (self.mark_dead_lettered(subs[:MAX_BATCH_WRITES], record)
                    + self.mark_dead_lettered(subs[MAX_BATCH_WRITES:], record))
        batch = BulkWriteBatch(self.client)
        for sub in subs:
            batch.update(self.collection.document(sub), {"job.dead_letter": record})
        return sum(status == _OK for _, status, _ in self._commit(batch, len(subs)))

    @maps_firestore_errors
    def dead_lettered(self, limit: int) -> list[DueUser]:
        """Users whose last dead-lettered message has not been followed by a result, newest first.

        Raises:
            Unavailable: Firestore failed or timed out.
        """
        query = (self.collection.where(filter=FieldFilter("job.dead_letter.at", ">", _EPOCH))
                 .order_by("job.dead_letter.at", direction=firestore.Query.DESCENDING)
                 .limit(limit))
        return [DueUser.from_snapshot(s) for s in query.get(retry=RETRY, timeout=TIMEOUT_SECONDS * 2)]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _result_write(user: DueUser, job: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """The fields of a result's write guarded by the claim's update time: the user's own, and the
    run's record (`_job_fields`, the claim released, a dead-letter record cleared) folded into the
    `job` map the claim left.

    The precondition guarantees that map is still the stored one, so writing it whole changes
    exactly what the dotted paths would, with one field path instead of ten: the client
    library's cost of building a write grows with its field paths.
    """
    record = dict(user.job)
    for path, value in {**job, **_RELEASED, **_cleared(user)}.items():
        key = path.removeprefix("job.")
        if key == path or "." in key:  # not a plain field of the job map: keep the dotted write
            return {**job, **own, **_RELEASED, **_cleared(user)}
        if value is firestore.DELETE_FIELD:
            record.pop(key, None)
        else:
            record[key] = value
    return {"job": record, **own}


def _cleared(user: DueUser) -> dict[str, Any]:
    """A result clears the user's dead-letter record, when there is one (no extra field otherwise)."""
    return {"job.dead_letter": firestore.DELETE_FIELD} if "dead_letter" in user.job else {}


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
