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
3. stops starting users when the time budget (`JOB_TIME_BUDGET_SECONDS`) is used up, or when
   too many users in a row met an outage (a circuit breaker: the rest are not failed, just left
   for the next run, their claims handed back), and waits for the users in flight;
4. answers with a summary and logs one line for the run (and one per user). The run's line
   carries the backlog gauge: `backlog_age_seconds`, how long the oldest due user had been due
   when the run started (the first user of the first page: the query is in due order).

With `JOB_MODE=pubsub` the scheduled call does not run users itself: it dispatches them to
workers (`offline.dispatch`), which run each message's users through the same batches
(`offline.worker`).

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

from ..errors import OfflineAccessError
from ..store.job_claims import ClaimOutcome, DueUser, Snapshot, backlog_age
from ..store.job_results import Outcome, UserResult
from ..structured_log import emit, user_ref
from .batch import Breaker, ResultWriter, UserPool, claim_batch, release_unstarted, work_on
from .context import JobDependencies, RunContext
from .one_user import process_user

STOPPED_TIME_BUDGET = "time_budget"
STOPPED_UPSTREAM = "upstream_unavailable"


@dataclass
class RunSummary:
    """The run's answer and log line."""

    run_id: str
    counts: Counter[Outcome] = field(default_factory=Counter)
    pages: int = 0
    stopped: str | None = None
    resume_from: dict[str, Any] | None = None
    duration_seconds: float = 0.0
    # Log only (the HTTP answer keeps its contract): the backlog gauge and the claims handed back.
    backlog_age_seconds: float | None = None
    released: int = 0

    def record(self, result: UserResult) -> None:
        self.counts[result.outcome] += 1

    @property
    def processed(self) -> int:
        return sum(n for outcome, n in self.counts.items() if outcome is not Outcome.SKIPPED)

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

    def body(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "users_processed": self.processed,
            **{str(outcome): self.counts[outcome] for outcome in Outcome},
            "pages": self.pages,
            "stopped": self.stopped,
            "resume_from": self.resume_from,
            "duration_seconds": round(self.duration_seconds, 3),
        }


def start_run(deps: JobDependencies, run_id: str) -> RunContext:
    """The context of a run (or of one delivery of a message), once its secrets are readable.

    Raises:
        OfflineAccessError: the client secret or the sealing key is unavailable or missing.
    """
    client_secret = deps.secrets.get(deps.config.client_secret_version).data.decode()
    deps.sealer.check_ready()
    return RunContext(
        run_id=run_id,
        claim_id=uuid.uuid4().hex,
        started_at=deps.now(),
        deadline=deps.clock() + deps.config.job_time_budget_seconds,
        client_secret=client_secret,
    )


def run_offline_job(
    deps: JobDependencies, run_id: str, log_fields: dict[str, Any] | None = None, *,
    batch_writes: bool = True,
) -> RunSummary:
    """Process every due user once for `run_id`, within the time budget.

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
    run = start_run(deps, run_id)
    breaker = Breaker(deps.breaker_threshold)
    lock = threading.Lock()

    def record(result: UserResult) -> None:
        with lock:
            summary.record(result)
        breaker.record(result)

    def stop_reason() -> str | None:
        if deps.clock() >= run.deadline:
            return STOPPED_TIME_BUDGET
        return STOPPED_UPSTREAM if breaker.open else None

    def one_by_one(user: DueUser) -> None:
        record(process_user(deps, user, run))

    pool = UserPool(config.job_concurrency, "offline-job")
    writer = ResultWriter(deps, run)
    failure: OfflineAccessError | None = None
    pages = _due_pages(deps, run.started_at, config.job_page_size)
    try:
        for page in pages:
            if summary.pages == 0:
                summary.backlog_age_seconds = backlog_age(page[0], run.started_at)
            summary.pages += 1
            stop = stop_reason()
            if stop:
                summary.stopped, summary.resume_from = stop, _position(page[0])
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
                        summary.resume_from = _claim_position(claim)
                        summary.released = release_unstarted(deps, claims[index:], run)
                        break
                    pool.start(work_on, deps, claim, run, writer, record)
            else:
                for snapshot in page:
                    pool.wait_for_slot()
                    stop = stop_reason()
                    if stop:
                        pool.give_back_slot()
                        summary.stopped, summary.resume_from = stop, _position(snapshot)
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
    summary.duration_seconds = deps.clock() - started
    _log_run(deps, summary, failure, log_fields or {})
    return summary


def _log_run(deps: JobDependencies, summary: RunSummary, failure: OfflineAccessError | None,
             log_fields: dict[str, Any]) -> None:
    body = summary.body()
    noteworthy = summary.stopped or summary.deferred or summary.needs_reauth
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


def _claim_position(claim: ClaimOutcome) -> dict[str, Any]:
    """Where a run stopped, at a user it had claimed (its due time before the claim)."""
    sub = claim.user.sub if claim.user else ""
    return {"next_run_at": claim.due_before.isoformat() if claim.due_before else None,
            "user": user_ref(sub)}


def _position(snapshot: Snapshot) -> dict[str, Any]:
    data = snapshot.to_dict() or {}
    due = data.get("next_run_at")
    return {
        "next_run_at": due.isoformat() if isinstance(due, dt.datetime) else None,
        "user": user_ref(snapshot.id),
    }
