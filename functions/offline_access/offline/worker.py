"""A worker instance in pubsub mode: each push delivery's users, processed as one batch.

The push subscription delivers each work message (`offline.work_message`) to the
`run_offline_worker` function, an instance of which serves a few deliveries at once; their users
share the instance's pool of `JOB_CONCURRENCY` threads, so an instance never has more than that
many users, and calls to Google, in flight. For one delivery (`Worker.handle`):

1. the run's context: the message's run id, a claim id of this delivery's own, and a hard
   deadline `JOB_TIME_BUDGET_SECONDS` away (the subscription's acknowledgement deadline is
   longer, so Pub/Sub does not redeliver a message that is still being worked on);
2. the users' documents in one batched read, then their claims in one `BatchWrite`
   (`offline.batch`): a user another delivery holds, or already done in this run, is skipped,
   which is what makes a duplicate or repeated delivery harmless;
3. each claimed user on the pool, results written together, one log line per user and one for
   the message (`offline_job_message`).

The answer tells Pub/Sub what to do with the message:

- done (some users may have been deferred, like in any run): acknowledged (200);
- stopped at the deadline: acknowledged; the users not started are handed back and stay due;
- the breaker opened (users in a row met an outage), or the run could not start (Secret
  Manager or Firestore unavailable, a misconfiguration): an error, so Pub/Sub redelivers with
  its exponential backoff; the users not processed are handed back first;
- malformed: a client error (400). Pub/Sub redelivers it too, and after the last attempt
  forwards it to the dead-letter topic, where an operator can see it.

On the delivery Pub/Sub says is the last (`deliveryAttempt` >= `JOB_MAX_DELIVERY_ATTEMPTS`), a
failure also records each user it left unprocessed as dead-lettered (`job.dead_letter` on the
user, and an `offline_job_user` line with outcome `dead_lettered`) before answering the error
that sends the message to the dead-letter topic. The users stay due: the next dispatch sends
them again.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import Any

from ..errors import GoogleUnavailable, OfflineAccessError, Unavailable
from ..messaging.push import PushDelivery
from ..store.job_claims import ClaimOutcome
from ..store.job_results import Outcome, UserResult
from ..structured_log import emit
from .batch import Breaker, ResultWriter, UserPool, claim_batch, release_unstarted, work_on
from .context import JobDependencies
from .lifecycle_events import flush_events
from .one_user import log_user, user_log
from .run import STOPPED_TIME_BUDGET, STOPPED_UPSTREAM, start_run
from .work_message import WorkMessage

OUTCOME_DEAD_LETTERED = "dead_lettered"


@dataclass
class MessageSummary:
    """What one delivery did: the worker's answer and log line."""

    run_id: str
    message_id: str
    delivery_attempt: int | None
    users: int
    counts: Counter[Outcome] = field(default_factory=Counter)
    stopped: str | None = None
    released: int = 0
    dead_lettered: int = 0
    duration_seconds: float = 0.0

    def body(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "message_id": self.message_id,
            "delivery_attempt": self.delivery_attempt,
            "users": self.users,
            **{str(outcome): self.counts[outcome] for outcome in Outcome},
            "stopped": self.stopped,
            "released": self.released,
            "duration_seconds": round(self.duration_seconds, 3),
        }


class Worker:
    """One worker instance: its dependencies and the pool its deliveries' users share."""

    def __init__(self, deps: JobDependencies) -> None:
        self.deps = deps
        self.pool = UserPool(deps.config.job_concurrency, "offline-worker")

    def handle(self, delivery: PushDelivery,
               log_fields: dict[str, Any] | None = None) -> MessageSummary:
        """Process one delivery of a work message.

        Raises:
            ClientError: the message is not a work message (`invalid_message`).
            OfflineAccessError: the delivery must be retried (see the module's docstring).
        """
        message = WorkMessage.decode(delivery.data)
        deps = self.deps
        started = deps.clock()
        summary = MessageSummary(run_id=message.run_id, message_id=delivery.message_id,
                                 delivery_attempt=delivery.delivery_attempt,
                                 users=len(message.users))
        unprocessed: list[str] = list(message.users)
        failure: OfflineAccessError | None = None
        try:
            unprocessed = self._process(message, summary)
        except OfflineAccessError as exc:
            failure = exc
            summary.stopped = summary.stopped or exc.code
        if failure is not None and self.is_last_attempt(delivery):
            summary.dead_lettered = self._dead_letter(message, delivery, unprocessed, failure)
        summary.duration_seconds = deps.clock() - started
        self._log(summary, failure, log_fields or {})
        if failure is not None:
            raise failure
        return summary

    def is_last_attempt(self, delivery: PushDelivery) -> bool:
        attempt = delivery.delivery_attempt
        return attempt is not None and attempt >= self.deps.config.job_max_delivery_attempts

    def _process(self, message: WorkMessage, summary: MessageSummary) -> list[str]:
        """Claim, work and record the message's users; returns those left unprocessed.

        Raises:
            OfflineAccessError: the run could not start, or the breaker opened.
        """
        deps = self.deps
        run = start_run(deps, message.run_id)
        breaker = Breaker(deps.breaker_threshold)
        lock = threading.Lock()

        def record(result: UserResult) -> None:
            with lock:
                summary.counts[result.outcome] += 1
            breaker.record(result)

        found = deps.jobs.read_many(message.users)
        for sub in message.users:
            if sub not in found:
                gone = UserResult(Outcome.SKIPPED, "deleted", severity="DEBUG")
                record(gone)
                log_user(deps, gone, user_log(deps, run, sub), deps.clock())
        users = [found[sub] for sub in message.users if sub in found]
        claims = claim_batch(deps, users, run, record)
        if not claims and breaker.open:  # Firestore failed the claims: nobody was claimed
            summary.stopped = STOPPED_UPSTREAM
            raise Unavailable("Firestore failed the claims.", dependency="firestore")
        writer = ResultWriter(deps, run)
        started: list[Future[None]] = []
        left: list[ClaimOutcome] = []
        for index, claim in enumerate(claims):
            self.pool.wait_for_slot()
            stop = (STOPPED_TIME_BUDGET if deps.clock() >= run.last_start
                    else STOPPED_UPSTREAM if breaker.open else None)
            if stop:
                self.pool.give_back_slot()
                summary.stopped = stop
                left = claims[index:]
                break
            started.append(self.pool.start(work_on, deps, claim, run, writer, record))
        wait(started)
        writer.flush()
        flush_events(deps)
        summary.released = release_unstarted(deps, left, run)
        unprocessed = [c.user.sub for c in left if c.user is not None]
        if summary.stopped == STOPPED_UPSTREAM:
            raise GoogleUnavailable("Users in a row met an outage; the rest of the message waits.")
        return unprocessed

    def _dead_letter(self, message: WorkMessage, delivery: PushDelivery, subs: list[str],
                     failure: OfflineAccessError) -> int:
        """Record the users this last delivery leaves unprocessed as dead-lettered."""
        if not subs:
            return 0
        deps = self.deps
        record = {"at": deps.now(), "run_id": message.run_id, "message_id": delivery.message_id,
                  "attempts": delivery.delivery_attempt, "reason": failure.reason}
        try:
            deps.jobs.mark_dead_lettered(subs, record)
            saved = "saved"
        except Unavailable:
            saved = "failed"  # the log lines and the dead-letter topic still show them
        for sub in subs:
            emit("ERROR", f"offline job user: {OUTCOME_DEAD_LETTERED} ({failure.reason})",
                 stream=deps.log_stream, event="offline_job_user", outcome=OUTCOME_DEAD_LETTERED,
                 detail=failure.reason, run_id=message.run_id, user=deps.user_refs.ref(sub),
                 message_id=delivery.message_id, delivery_attempt=delivery.delivery_attempt,
                 saved=saved)
        return len(subs)

    def _log(self, summary: MessageSummary, failure: OfflineAccessError | None,
             log_fields: dict[str, Any]) -> None:
        body = summary.body()
        noteworthy = (summary.stopped or summary.counts[Outcome.DEFERRED]
                      or summary.counts[Outcome.NEEDS_REAUTH])
        emit(
            "ERROR" if summary.dead_lettered else "WARNING" if noteworthy else "INFO",
            f"offline job message: {summary.users} users, "
            f"{summary.counts[Outcome.SUCCEEDED]} succeeded",
            stream=self.deps.log_stream,
            event="offline_job_message",
            outcome="failed" if failure else "stopped_early" if summary.stopped else "completed",
            **{k: v for k, v in body.items() if k != "duration_seconds"},
            duration_ms=round(summary.duration_seconds * 1000, 1),
            **({"dead_lettered": summary.dead_lettered} if summary.dead_lettered else {}),
            **({"error": failure.code, "dependency": getattr(failure, "dependency", "")}
               if failure else {}),
            **log_fields,
        )

