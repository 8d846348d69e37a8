"""The scheduled call in pubsub mode: read the due users page by page, publish them as work.

With `JOB_MODE=pubsub`, Cloud Scheduler's call does not process users: it publishes them, in
messages of `JOB_MESSAGE_USERS` users (`offline.work_message`), to `JOB_WORK_TOPIC`, whose push
subscription delivers each message to a worker instance (`offline.worker`). The run id (from
Cloud Scheduler's headers, as in inline mode) travels in each message, so a user is processed
at most once per run id however often a message, or the dispatch itself, is delivered.

The dispatcher writes nothing to Firestore. Its page query is a projection (the due time only),
so reading a user costs one document read and no token leaves Firestore. A user it publishes is
still due until a worker claims it; if the workers fall behind by more than a schedule interval,
the next dispatch publishes such a user again, and whichever message comes second finds the
user claimed or done and skips it (one read). The backlog gauge (`backlog_age_seconds` on the
dispatch's log line) shows that happening long before it matters.

Publishing stops at the time budget; a failure to publish stops the dispatch (the users not
published stay due, first in the next run). A page is published while the next one is read, and
the messages of a page are confirmed before the page after it is read, so a dispatch holds at
most two pages.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ..errors import Misconfigured, OfflineAccessError
from ..store.job_claims import Snapshot, backlog_age
from ..structured_log import emit
from .context import JobDependencies
from .lifecycle_events import publish_leftover_events
from .work_message import WorkMessage

STOPPED_TIME_BUDGET = "time_budget"


@dataclass
class DispatchSummary:
    """The dispatch's answer and log line."""

    run_id: str
    users: int = 0
    messages: int = 0
    pages: int = 0
    stopped: str | None = None
    backlog_age_seconds: float | None = None
    duration_seconds: float = 0.0

    def body(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "mode": "pubsub",
            "users_dispatched": self.users,
            "messages": self.messages,
            "pages": self.pages,
            "stopped": self.stopped,
            "duration_seconds": round(self.duration_seconds, 3),
        }


def chunks(users: list[str], size: int) -> list[tuple[str, ...]]:
    """`users` in consecutive groups of at most `size`."""
    return [tuple(users[i:i + size]) for i in range(0, len(users), size)]


def dispatch_run(deps: JobDependencies, run_id: str,
                 log_fields: dict[str, Any] | None = None) -> DispatchSummary:
    """Publish every due user once for `run_id`, within the time budget.

    Raises:
        Misconfigured: no publisher (JOB_MODE=pubsub without JOB_WORK_TOPIC).
        OfflineAccessError: nothing could be dispatched (the first page unreadable, or the
            first messages not published).
    """
    publisher = deps.publisher
    if publisher is None:
        raise Misconfigured("JOB_MODE is pubsub but no work topic is configured: set JOB_WORK_TOPIC.")
    config = deps.config
    started = deps.clock()
    publish_leftover_events(deps)
    now = deps.now()
    deadline = started + config.job_time_budget_seconds
    summary = DispatchSummary(run_id=run_id)
    pending: list[tuple[Future[str], int]] = []
    failure: OfflineAccessError | None = None
    after: Snapshot | None = None

    def confirm() -> None:
        """Wait for the messages in flight; count them once Pub/Sub has them."""
        publisher.wait([future for future, _ in pending])
        summary.messages += len(pending)
        summary.users += sum(n for _, n in pending)
        pending.clear()

    try:
        while True:
            page = deps.jobs.due_page(now, config.job_page_size, after, select=("status",))
            if summary.pages == 0:
                summary.backlog_age_seconds = backlog_age(page[0], now) if page else 0.0
            confirm()  # the previous page's messages, sent while this page was read
            if not page:
                break
            summary.pages += 1
            if deps.clock() >= deadline:
                summary.stopped = STOPPED_TIME_BUDGET
                break
            for users in chunks([s.id for s in page], config.job_message_users):
                message = WorkMessage(run_id=run_id, users=users, dispatched_at=now)
                pending.append((publisher.publish(message.encode(), message.attributes()),
                                len(users)))
            if len(page) < config.job_page_size:
                confirm()
                break
            after = page[-1]
    except OfflineAccessError as exc:
        if summary.messages == 0:
            raise
        failure = exc
        summary.stopped = exc.code
    summary.duration_seconds = deps.clock() - started
    emit(
        "WARNING" if summary.stopped else "INFO",
        f"offline job dispatch: {summary.users} users in {summary.messages} messages",
        stream=deps.log_stream,
        event="offline_job_dispatch",
        outcome="stopped_early" if summary.stopped else "completed",
        **{k: v for k, v in summary.body().items() if k != "duration_seconds"},
        duration_ms=round(summary.duration_seconds * 1000, 1),
        backlog_age_seconds=summary.backlog_age_seconds,
        **({"dependency": getattr(failure, "dependency", "")} if failure else {}),
        **(log_fields or {}),
    )
    return summary
