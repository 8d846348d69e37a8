"""One run of the scheduled job: every due user, processed with their offline access.

Cloud Scheduler calls `run_offline_job` (at least once per schedule time; duplicates may
overlap). The HTTP adapter derives the run id from Cloud Scheduler's headers, so every delivery
of one schedule time shares it. A run:

1. reads due users page by page (`store.job_claims.JobStore.due_page`: keyset pagination on
   `status`, `next_run_at`, name; at most two pages in memory);
2. claims each page's users in one write (`offline.batch.claim_batch`: at most once per run id,
   across deliveries and instances) and hands each claimed user to a bounded thread pool
   (`JOB_CONCURRENCY`) sharing one pooled HTTP session, where the user's work ends in a result;
   the results are written a hundred at a time (`offline.batch.ResultWriter`);
3. stops starting users shortly before the time budget (`JOB_TIME_BUDGET_SECONDS`) is used up
   (`start_reserve`: a user started then still has one full call's time), or when too many
   users in a row met an outage (a circuit breaker: the rest are not failed, just left for the
   next run, their claims handed back); the budget is also a hard deadline for the users in
   flight: no call starts after it and every call's timeout ends by it, so a run answers within
   the budget plus its last writes, below Cloud Scheduler's attempt deadline, itself below the
   function's timeout;
4. answers with a summary and logs one line for the run (and one per user). The run's line
   carries the backlog gauge: `backlog_age_seconds`, how long the oldest due user had been due
   when the run started (the first user of the first page: the query is in due order).

Before anything else, a run publishes the lifecycle events that earlier publishes left in the
outbox (`events.outbox`), and before it answers it waits briefly for its own to go out.

Before the due users, a run finishes the disconnects still pending (users `disconnecting`
because the account API could not reach Google or the internal function): each goes through
`accounts.lifecycle.revoke_and_delete`, the same function the API and the CLI use, within the
time budget, stopping after a few outages in a row.

With `JOB_MODE=pubsub` the scheduled call does not run users itself: it dispatches them to
workers (`offline.dispatch`), which run each message's users through the same batches
(`offline.worker`).

An operator may also run the job ahead of schedule: `everyone` processes every active user now,
due or not (in document order, so a claim moving `next_run_at` never brings a user twice), and
`run_one_user` processes one user (or finishes their disconnect) whatever their due time.

Resuming needs no saved cursor: a user's `next_run_at` only moves when the user is claimed or
finished, so the users a run did not reach are still due, have the oldest `next_run_at`, and
come first in the next run's query. The run's summary records where it stopped (the first user
it did not start) for the operator; nothing shared is written per user (Firestore sustains
about one write per second on a single document).
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections import Counter
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..accounts import lifecycle
from ..errors import OfflineAccessError
from ..store.accounts import AccountStore
from ..store.job_claims import SKIP_GONE, ClaimOutcome, DueUser, Snapshot, backlog_age
from ..store.job_results import Outcome, UserResult
from ..store.users import STATUS_DISCONNECTING
from ..structured_log import emit
from .batch import Breaker, ResultWriter, UserPool, claim_batch, release_unstarted, work_on
from .context import JobDependencies, RunContext
from .lifecycle_events import flush_events, publish_leftover_events
from .one_user import process_user

STOPPED_TIME_BUDGET = "time_budget"
STOPPED_UPSTREAM = "upstream_unavailable"
# Far enough ahead that every active user counts as due, for runs ahead of schedule.
EVERYONE_DUE_BY = dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc)
# Pending disconnects that met an outage in a row before a run leaves the rest to the next one.
DISCONNECT_OUTAGES_IN_A_ROW = 3


@dataclass
class RunSummary:
    """The run's answer and log line."""

    run_id: str
    counts: Counter[Outcome] = field(default_factory=Counter)
    pages: int = 0
    stopped: str | None = None
    resume_from: dict[str, Any] | None = None
    duration_seconds: float = 0.0
    disconnects_deferred: int = 0  # pending disconnects left for the next run
    detail: str | None = None  # a one-user run: why the user was skipped, deferred or re-authed
    # Log only (the HTTP answer keeps its contract): the backlog gauge and the claims handed back.
    backlog_age_seconds: float | None = None
    released: int = 0

    def record(self, result: UserResult) -> None:
        self.counts[result.outcome] += 1

    @property
    def processed(self) -> int:
        """Users given offline work (a disconnected or skipped user is not)."""
        return sum(n for outcome, n in self.counts.items()
                   if outcome not in (Outcome.SKIPPED, Outcome.DISCONNECTED))

    @property
    def succeeded(self) -> int:
        return self.counts[Outcome.SUCCEEDED]

    @property
    def partial(self) -> int:
        return self.counts[Outcome.PARTIAL]

    @property
    def needs_reauth(self) -> int:
        return self.counts[Outcome.NEEDS_REAUTH]

    @property
    def deferred(self) -> int:
        return self.counts[Outcome.DEFERRED]

    @property
    def skipped(self) -> int:
        return self.counts[Outcome.SKIPPED]

    @property
    def disconnected(self) -> int:
        return self.counts[Outcome.DISCONNECTED]

    def body(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "users_processed": self.processed,
            **{str(outcome): self.counts[outcome] for outcome in Outcome},
            "pages": self.pages,
            "stopped": self.stopped,
            "resume_from": self.resume_from,
            "duration_seconds": round(self.duration_seconds, 3),
            "disconnects_deferred": self.disconnects_deferred,
            **({"detail": self.detail} if self.detail else {}),
        }


def start_reserve(budget_seconds: float, http_timeout_seconds: float) -> float:
    """How long before the hard deadline the run stops starting users: one call's timeout,
    or half the budget when that is shorter (small budgets still start users)."""
    return min(http_timeout_seconds, budget_seconds / 2)


def start_run(deps: JobDependencies, run_id: str, *, everyone: bool = False) -> RunContext:
    """The context of a run (or of one delivery of a message), once its secrets are readable.

    Raises:
        OfflineAccessError: the client secret, the sealing key or the log key is unavailable or
            missing.
    """
    config = deps.config
    client_secret = deps.secrets.get(config.client_secret_version).data.decode()
    deps.sealer.check_ready()
    deps.user_refs.check_ready()
    deadline = deps.clock() + config.job_time_budget_seconds
    return RunContext(
        run_id=run_id,
        claim_id=uuid.uuid4().hex,
        started_at=deps.now(),
        deadline=deadline,
        last_start=deadline - start_reserve(config.job_time_budget_seconds,
                                            config.http_timeout_seconds),
        client_secret=client_secret,
        due_by=EVERYONE_DUE_BY if everyone else None,
    )


def run_offline_job(
    deps: JobDependencies, run_id: str, log_fields: dict[str, Any] | None = None, *,
    everyone: bool = False, batch_writes: bool = True,
) -> RunSummary:
    """Process every due user once for `run_id` (every active user with `everyone`), within the
    time budget, after finishing the pending disconnects.

    `batch_writes=False` claims and records each user with its own writes
    (`one_user.process_user`), as the job did before batching: the benchmark keeps it as the
    baseline it measures the batched job against, in the same run.

    Raises:
        OfflineAccessError: the run could not start (client secret or sealing key unavailable
            or missing, the first page unreadable); users already started are not affected.
    """
    config = deps.config
    started = deps.clock()
    summary = RunSummary(run_id=run_id)
    # Fail before touching any user if a secret is missing.
    run = start_run(deps, run_id, everyone=everyone)
    publish_leftover_events(deps)
    _finish_disconnects(deps, run, summary)
    breaker = Breaker(deps.breaker_threshold)
    lock = threading.Lock()

    def record(result: UserResult) -> None:
        with lock:
            summary.record(result)
        breaker.record(result)

    def stop_reason() -> str | None:
        if deps.clock() >= run.last_start:
            return STOPPED_TIME_BUDGET
        return STOPPED_UPSTREAM if breaker.open else None

    def one_by_one(user: DueUser) -> None:
        record(process_user(deps, user, run))

    pool = UserPool(config.job_concurrency, "offline-job")
    writer = ResultWriter(deps, run)
    failure: OfflineAccessError | None = None
    pages = (_active_pages(deps, config.job_page_size) if everyone
             else _due_pages(deps, run.started_at, config.job_page_size))
    try:
        for page in pages:
            if summary.pages == 0 and not everyone:
                summary.backlog_age_seconds = backlog_age(page[0], run.started_at)
            summary.pages += 1
            stop = stop_reason()
            if stop:
                summary.stopped, summary.resume_from = stop, _position(deps, page[0])
                break
            if batch_writes:
                users = [DueUser.from_snapshot(snapshot) for snapshot in page]
                claims = claim_batch(deps, users, run, record)
                for index, claim in enumerate(claims):
                    pool.wait_for_slot()
                    stop = stop_reason()
                    if stop:
                        pool.give_back_slot()
                        summary.stopped = stop
                        summary.resume_from = _claim_position(deps, claim)
                        summary.released = release_unstarted(deps, claims[index:], run)
                        break
                    pool.start(work_on, deps, claim, run, writer, record)
            else:
                for snapshot in page:
                    pool.wait_for_slot()
                    stop = stop_reason()
                    if stop:
                        pool.give_back_slot()
                        summary.stopped, summary.resume_from = stop, _position(deps, snapshot)
                        break
                    pool.start(one_by_one, DueUser.from_snapshot(snapshot))
            if summary.stopped:
                break
    except OfflineAccessError as exc:
        # A later page failed: the users already started finish; the rest stay due.
        if summary.pages == 0:
            pool.shutdown()
            raise
        failure = exc
        summary.stopped = exc.code
    finally:
        pages.close()
        pool.shutdown()
        writer.flush()
    if summary.pages == 0:
        summary.backlog_age_seconds = 0.0  # nobody due: the gauge reads zero, not nothing
    flush_events(deps)
    summary.duration_seconds = deps.clock() - started
    _log_run(deps, summary, failure, log_fields or {})
    return summary


def run_one_user(deps: JobDependencies, sub: str, run_id: str,
                 log_fields: dict[str, Any] | None = None) -> RunSummary:
    """Process one user now, due or not; finish their disconnect if one is pending.

    Raises:
        OfflineAccessError: the run could not start (see `run_offline_job`).
    """
    started = deps.clock()
    summary = RunSummary(run_id=run_id)
    run = start_run(deps, run_id, everyone=True)
    user = deps.jobs.read(sub)
    if user is None:
        summary.counts[Outcome.SKIPPED] += 1
        summary.detail = SKIP_GONE
    elif user.data.get("status") == STATUS_DISCONNECTING:
        _finish_disconnects(deps, run, summary, [user])
    else:
        result = process_user(deps, user, run)  # a user who is not active is skipped, with why
        summary.counts[result.outcome] += 1
        summary.detail = result.detail
    flush_events(deps)
    summary.duration_seconds = deps.clock() - started
    _log_run(deps, summary, None, log_fields or {})
    return summary


def _finish_disconnects(deps: JobDependencies, run: RunContext, summary: RunSummary,
                        users: list[DueUser] | None = None) -> None:
    """Revoke and delete the users still `disconnecting`, oldest first, within the budget."""
    pending = users if users is not None else AccountStore(deps.store).disconnecting(
        deps.config.job_page_size)
    outages = 0
    for user in pending:
        if deps.clock() >= run.last_start or outages >= DISCONNECT_OUTAGES_IN_A_ROW:
            summary.disconnects_deferred += 1
            continue
        try:
            result = lifecycle.revoke_and_delete(deps, user.sub, requested_by="job",
                                                 log_stream=deps.log_stream)
        except OfflineAccessError:
            result = lifecycle.DisconnectResult(lifecycle.DEFERRED, error="firestore_unavailable")
        if result.outcome == lifecycle.DELETED:
            summary.counts[Outcome.DISCONNECTED] += 1
            outages = 0
        elif result.outcome == lifecycle.DEFERRED:
            summary.disconnects_deferred += 1
            outages += 1


def _log_run(deps: JobDependencies, summary: RunSummary, failure: OfflineAccessError | None,
             log_fields: dict[str, Any]) -> None:
    body = summary.body()
    noteworthy = summary.stopped or summary.deferred or summary.needs_reauth or summary.disconnected
    emit(
        "WARNING" if noteworthy else "INFO",
        f"offline job run: {summary.processed} users, {summary.succeeded} succeeded",
        stream=deps.log_stream,
        event="offline_job",
        outcome="stopped_early" if summary.stopped else "completed",
        **{k: v for k, v in body.items() if k != "duration_seconds"},
        duration_ms=round(summary.duration_seconds * 1000, 1),
        backlog_age_seconds=summary.backlog_age_seconds,
        **({"released": summary.released} if summary.released else {}),
        **({"dependency": getattr(failure, "dependency", "")} if failure else {}),
        **log_fields,
    )


def _due_pages(
    deps: JobDependencies, due_by: dt.datetime, page_size: int
) -> Generator[list[Snapshot], None, None]:
    """The due users, page by page; each next page is read while the current one is worked on.

    A page query costs about as much as the work on a few users, so reading ahead keeps the
    workers busy. At most two pages are in memory.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="offline-job-pages") as reader:
        page = deps.jobs.due_page(due_by, page_size)
        while page:
            following = (
                reader.submit(deps.jobs.due_page, due_by, page_size, page[-1])
                if len(page) == page_size
                else None
            )
            yield page
            if following is None:
                return
            page = following.result()


def _active_pages(deps: JobDependencies, page_size: int) -> Generator[list[Snapshot], None, None]:
    """Every active user, page by page, in document-name order (runs ahead of schedule)."""
    page = deps.jobs.active_page(page_size)
    while page:
        yield page
        if len(page) < page_size:
            return
        page = deps.jobs.active_page(page_size, page[-1])


def _claim_position(deps: JobDependencies, claim: ClaimOutcome) -> dict[str, Any]:
    """Where a run stopped, at a user it had claimed (its due time before the claim)."""
    sub = claim.user.sub if claim.user else ""
    return {"next_run_at": claim.due_before.isoformat() if claim.due_before else None,
            "user": deps.user_refs.ref(sub)}


def _position(deps: JobDependencies, snapshot: Snapshot) -> dict[str, Any]:
    data = snapshot.to_dict() or {}
    due = data.get("next_run_at")
    return {
        "next_run_at": due.isoformat() if isinstance(due, dt.datetime) else None,
        "user": deps.user_refs.ref(snapshot.id),
    }
