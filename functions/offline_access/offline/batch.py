"""Users in batches: claimed in one write, worked on a bounded pool, their results written in a few.

Both ways of running the job go through here: `offline.run` hands over each page of due users
(inline mode), `offline.worker` the users of each Pub/Sub message (pubsub mode). For a batch:

1. `claim_batch` claims its users in one `BatchWrite` (`JobStore.claim_many`); each user not
   claimed is recorded as skipped, with why (another delivery holds it, it was done in this run,
   it is no longer due or no longer there).
2. The caller starts each claimed user on a `UserPool` when a thread is free, checking its
   budget and breaker first; users it does not start are handed back (`release_unstarted`).
3. Each user's work ends in a result (`one_user.work_claimed`, which calls the pure `decide`).
   A `ResultWriter` keeps the results until it holds `RESULT_BATCH` of them or the caller
   flushes it, writes them in one `BatchWrite` (`JobStore.finish_many`), then logs each
   user's line with what was saved.

So a page of 200 users costs a claim write and two result writes instead of 400 writes, and
each write carries what `finish` writes for one user, field for field. A result waits in memory
for at most the time the next `RESULT_BATCH` users take; if the instance dies meanwhile, those
users' claims lapse and they are due again then, as after any crash.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..errors import Unavailable
from ..store.job_claims import ClaimOutcome, DueUser, FinishedUser
from ..store.job_results import Outcome, UserResult
from .context import JobDependencies, RunContext
from .one_user import log_user, not_saved, skipped, user_log, work_claimed

# Results written per BatchWrite: large enough that writes cost a few RPCs per page, small enough
# that a result waits well under a second at full speed (BatchWrite's own limit is 500).
RESULT_BATCH = 100

Record = Callable[[UserResult], None]


class UserPool:
    """Threads that work on users, at most `size` at once, with a slot taken before each start.

    Taking the slot first (`wait_for_slot`) means a user is handed over only when a thread is
    free, so a caller's budget and breaker are checked right before each user starts, not
    before the user waits in a queue.
    """

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self._pool = ThreadPoolExecutor(size, thread_name_prefix=name)
        self._slots = threading.BoundedSemaphore(size)

    def wait_for_slot(self) -> None:
        self._slots.acquire()

    def give_back_slot(self) -> None:
        self._slots.release()

    def start(self, work: Callable[..., None], *args: Any) -> Future[None]:
        """Run `work(*args)` on a free thread; the slot taken by `wait_for_slot` is freed after."""

        def run() -> None:
            try:
                work(*args)
            finally:
                self._slots.release()

        return self._pool.submit(run)

    def shutdown(self) -> None:
        """Wait for the users in flight, then stop the threads."""
        self._pool.shutdown(wait=True)


@dataclass
class _Done:
    finished: FinishedUser
    log: dict[str, Any]
    started: float


class ResultWriter:
    """Writes the results of one delivery's users in batches, then logs each user's line."""

    def __init__(self, deps: JobDependencies, run: RunContext, batch_size: int = RESULT_BATCH) -> None:
        self._deps = deps
        self._run = run
        self._batch_size = batch_size
        self._pending: list[_Done] = []
        self._lock = threading.Lock()
        self.writes = 0

    def add(self, user: DueUser, result: UserResult, now: dt.datetime, log: dict[str, Any],
            started: float) -> None:
        """Keep a result; write the batch once it is full."""
        with self._lock:
            self._pending.append(_Done(FinishedUser(user, result, now), log, started))
            full = self._take() if len(self._pending) >= self._batch_size else []
        self._write(full)

    def flush(self) -> None:
        """Write every result still kept."""
        with self._lock:
            kept = self._take()
        self._write(kept)

    def _take(self) -> list[_Done]:
        taken, self._pending = self._pending, []
        return taken

    def _write(self, done: list[_Done]) -> None:
        if not done:
            return
        deps, run = self._deps, self._run
        try:
            saved: list[str] | None = deps.jobs.finish_many(
                [d.finished for d in done], run_id=run.run_id, claim_id=run.claim_id)
            self.writes += 1
        except Unavailable:
            saved = None
        for index, item in enumerate(done):
            result = item.finished.result
            if saved is None:
                result = not_saved(result, item.log)
            else:
                item.log["saved"] = saved[index]
            log_user(deps, result, item.log, item.started)


class Breaker:
    """Opens after `threshold` users in a row met an outage."""

    def __init__(self, threshold: int) -> None:
        self._threshold = threshold
        self._in_a_row = 0
        self._lock = threading.Lock()
        self.open = False

    def record(self, result: UserResult) -> None:
        if result.outcome is Outcome.SKIPPED and not result.outage:
            return
        with self._lock:
            self._in_a_row = self._in_a_row + 1 if result.outage else 0
            if self._in_a_row >= self._threshold:
                self.open = True


def claim_batch(deps: JobDependencies, users: Sequence[DueUser], run: RunContext,
                record: Record) -> list[ClaimOutcome]:
    """Claim `users` for the run in one write; returns the claims made.

    Each user not claimed is recorded and logged as skipped; if Firestore fails, every user is
    skipped with an outage (which counts toward the caller's breaker).
    """
    started = deps.clock()
    try:
        claims = deps.jobs.claim_many(
            users, run_id=run.run_id, claim_id=run.claim_id, now=deps.now(),
            ttl=dt.timedelta(seconds=deps.config.job_claim_ttl_seconds), due_by=run.due_by)
    except Unavailable:
        result = UserResult(Outcome.SKIPPED, "firestore_unavailable", outage=True,
                            severity="WARNING")
        for user in users:
            record(result)
            log_user(deps, result, user_log(deps, run, user.sub), started)
        return []
    made = []
    for user, claim in zip(users, claims, strict=True):
        if claim.user is None:
            result = skipped(claim)
            record(result)
            log_user(deps, result, user_log(deps, run, user.sub), started)
        else:
            made.append(claim)
    return made


def work_on(deps: JobDependencies, claim: ClaimOutcome, run: RunContext, writer: ResultWriter,
            record: Record) -> None:
    """A claimed user's work and decision; the result goes to `writer`, and to `record` at once."""
    user = claim.user
    if user is None:
        return
    started = deps.clock()
    log = user_log(deps, run, user.sub)
    result, now = work_claimed(deps, user, run, log, took_over_expired=claim.took_over_expired)
    record(result)
    writer.add(user, result, now, log, started)


def release_unstarted(deps: JobDependencies, claims: Iterable[ClaimOutcome], run: RunContext) -> int:
    """Hand back the claims of users the run claimed but will not start; how many were released.

    If Firestore fails, the claims lapse at their expiry instead.
    """
    claims = list(claims)
    if not claims:
        return 0
    try:
        return deps.jobs.release_many(claims, run.claim_id)
    except Unavailable:
        return 0
