"""One run of the scheduled job: every due user, processed with their offline access.

Cloud Scheduler calls `run_offline_job` (at least once per schedule time; duplicates may
overlap). A run:

1. takes its run id from `X-CloudScheduler-JobName` + `X-CloudScheduler-ScheduleTime` (a
   generated one otherwise), so every delivery of one schedule time shares it;
2. reads due users page by page (`job_claims.JobStore.due_page`: keyset pagination on
   `status`, `next_run_at`, name; one page in memory at a time);
3. hands each user to a bounded thread pool (`JOB_CONCURRENCY`) sharing one pooled HTTP session,
   where `process_user` claims the user (at most once per run id, across instances), gets an
   access token, runs the configured tasks (`user_tasks`) and writes the result;
4. stops starting users when the time budget (`JOB_TIME_BUDGET_SECONDS`) is used up, or when
   too many users in a row found Google or Firestore unavailable (a circuit breaker: the rest
   are not failed, just left for the next run), and waits for the users in flight;
5. answers with a summary and logs one line for the run (and one per user).

Resuming needs no saved cursor: a user's `next_run_at` only moves when the user is claimed or
finished, so the users a run did not reach are still due, have the oldest `next_run_at`, and
come first in the next run's query. The run's summary records where it stopped (the first user
it did not start) for the operator; nothing shared is written per user (Firestore sustains
about one write per second on a single document).

`process_user` depends only on the user document and the run (`RunContext`), not on the page
or the pool, so pages could later be fanned out to other instances (Cloud Tasks) unchanged.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

import requests
from google.cloud import firestore

from . import reauth_reasons
from .access_tokens import ApiError, ApiSession, Retrier, UnreadableToken, UserTokens
from .config import Config
from .errors import (
    FlowError,
    GrantRevoked,
    Misconfigured,
    TransientUpstreamError,
    Unavailable,
    UpstreamInvalid,
)
from .google_endpoints import GoogleEndpoints
from .job_claims import DueUser, JobStore
from .retry_policy import CALL_RETRIES, DEFERRAL, Backoff
from .secret_source import SecretSource
from .structured_log import emit, user_ref
from .token_endpoint import refresh_access_token
from .token_sealing import TokenSealer
from .user_store import PROFILE_FIELDS, STATUS_NEEDS_REAUTH, UserStore
from .user_tasks import OfflineTask

# A user's outcome in a run.
SUCCEEDED = "succeeded"
PARTIAL = "partial"  # some task failed for good (e.g. an API refused); the user is fine
NEEDS_REAUTH = "needs_reauth"
DEFERRED = "deferred"
SKIPPED = "skipped"  # not claimed: another delivery or run has it, or it is no longer due

STOPPED_TIME_BUDGET = "time_budget"
STOPPED_UPSTREAM = "upstream_unavailable"

_SCHEDULE_TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{5,20}(Z|[+-][0-9]{2}:?[0-9]{2})?$")
_JOB_NAME = re.compile(r"^[A-Za-z0-9_./\-]{1,500}$")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class JobDependencies:
    """Everything a run talks to, built once per instance (`runtime.build_job_dependencies`)."""

    config: Config
    endpoints: GoogleEndpoints
    secrets: SecretSource
    sealer: TokenSealer
    session: requests.Session
    store: UserStore
    tasks: tuple[OfflineTask, ...]
    testing_mode: bool = False
    call_retries: Backoff = CALL_RETRIES
    deferral: Backoff = DEFERRAL
    # Users in a row that found Google or Firestore unavailable before the run stops starting
    # more: with Google down, the rest would only add load and time.
    breaker_threshold: int = 20
    now: Callable[[], dt.datetime] = _utcnow
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    log_stream: TextIO | None = None
    jobs: JobStore = field(init=False)

    def __post_init__(self) -> None:
        self.jobs = JobStore(self.store)


def run_id_from_headers(headers: Mapping[str, str]) -> str:
    """The run id: the same for every delivery of one Cloud Scheduler schedule time.

    Raises:
        ValueError: the scheduler headers are present but malformed.
    """
    schedule_time = (headers.get("X-CloudScheduler-ScheduleTime") or "").strip()
    if not schedule_time:
        return "manual-" + uuid.uuid4().hex
    if not _SCHEDULE_TIME.match(schedule_time):
        raise ValueError("X-CloudScheduler-ScheduleTime is not an RFC 3339 time")
    job_name = (headers.get("X-CloudScheduler-JobName") or "").strip()
    if job_name and not _JOB_NAME.match(job_name):
        raise ValueError("X-CloudScheduler-JobName is malformed")
    return f"{job_name}@{schedule_time}" if job_name else f"schedule@{schedule_time}"


@dataclass(frozen=True)
class RunContext:
    """What `process_user` needs to know about the run."""

    run_id: str
    claim_id: str  # unique to this delivery: two deliveries of one run id are told apart
    started_at: dt.datetime
    deadline: float  # `deps.clock()` value after which no retry wait may end
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class UserOutcome:
    """One user's result in a run."""

    outcome: str
    detail: str | None = None  # skip reason, reauth reason or error
    upstream_down: bool = False  # counts towards the circuit breaker


@dataclass
class RunSummary:
    """The run's answer and log line."""

    run_id: str
    processed: int = 0
    succeeded: int = 0
    partial: int = 0
    needs_reauth: int = 0
    deferred: int = 0
    skipped: int = 0
    pages: int = 0
    stopped: str | None = None
    resume_from: dict[str, Any] | None = None
    duration_seconds: float = 0.0

    def add(self, outcome: UserOutcome) -> None:
        if outcome.outcome == SKIPPED:
            self.skipped += 1
            return
        self.processed += 1
        if outcome.outcome == SUCCEEDED:
            self.succeeded += 1
        elif outcome.outcome == PARTIAL:
            self.partial += 1
        elif outcome.outcome == NEEDS_REAUTH:
            self.needs_reauth += 1
        else:
            self.deferred += 1

    def body(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "users_processed": self.processed,
            "succeeded": self.succeeded,
            "partial": self.partial,
            "needs_reauth": self.needs_reauth,
            "deferred": self.deferred,
            "skipped": self.skipped,
            "pages": self.pages,
            "stopped": self.stopped,
            "resume_from": self.resume_from,
            "duration_seconds": round(self.duration_seconds, 3),
        }


class _Breaker:
    """Opens after `threshold` users in a row ended with Google or Firestore unavailable."""

    def __init__(self, threshold: int) -> None:
        self._threshold = threshold
        self._in_a_row = 0
        self._lock = threading.Lock()
        self.open = False

    def record(self, outcome: UserOutcome) -> None:
        if outcome.outcome == SKIPPED and not outcome.upstream_down:
            return
        with self._lock:
            self._in_a_row = self._in_a_row + 1 if outcome.upstream_down else 0
            if self._in_a_row >= self._threshold:
                self.open = True


def run_offline_job(
    deps: JobDependencies, run_id: str, log_fields: dict[str, Any] | None = None
) -> RunSummary:
    """Process every due user once for `run_id`, within the time budget.

    Raises:
        FlowError: the run could not start (client secret or sealing key unavailable or
            missing, the first page unreadable); users already started are not affected.
    """
    config = deps.config
    started = deps.clock()
    summary = RunSummary(run_id=run_id)
    # Fail before touching any user if a secret is missing.
    client_secret = deps.secrets.get(config.client_secret_version).data.decode()
    deps.sealer.check_ready()
    run = RunContext(
        run_id=run_id,
        claim_id=uuid.uuid4().hex,
        started_at=deps.now(),
        deadline=started + config.job_time_budget_seconds,
        client_secret=client_secret,
    )
    breaker = _Breaker(deps.breaker_threshold)
    lock = threading.Lock()
    # One slot per worker: a user is handed over only when a worker is free, so the budget and
    # the breaker are checked right before each user starts, not before it waits in a queue.
    slots = threading.BoundedSemaphore(config.job_concurrency)

    def done(outcome: UserOutcome) -> None:
        with lock:
            summary.add(outcome)
        breaker.record(outcome)

    def work(user: DueUser) -> None:
        try:
            done(process_user(deps, user, run))
        finally:
            slots.release()

    failure: FlowError | None = None
    with ThreadPoolExecutor(config.job_concurrency, thread_name_prefix="offline-job") as pool:
        pages = _due_pages(deps, run.started_at, config.job_page_size)
        try:
            for page in pages:
                summary.pages += 1
                for snapshot in page:
                    slots.acquire()
                    stop = (
                        STOPPED_TIME_BUDGET if deps.clock() >= run.deadline
                        else STOPPED_UPSTREAM if breaker.open
                        else None
                    )
                    if stop:
                        slots.release()
                        summary.stopped = stop
                        summary.resume_from = _position(snapshot)
                        break
                    pool.submit(work, DueUser.from_snapshot(snapshot))
                if summary.stopped:
                    break
        except FlowError as exc:
            # A later page failed: the users already started finish; the rest stay due.
            if summary.pages == 0:
                raise
            failure = exc
            summary.stopped = exc.code
        finally:
            pages.close()
    summary.duration_seconds = deps.clock() - started
    body = summary.body()
    severity = "WARNING" if summary.stopped or summary.deferred or summary.needs_reauth else "INFO"
    emit(
        severity,
        f"offline job run: {summary.processed} users, {summary.succeeded} succeeded",
        stream=deps.log_stream,
        event="offline_job",
        outcome="stopped_early" if summary.stopped else "completed",
        **{k: v for k, v in body.items() if k != "duration_seconds"},
        duration_ms=round(summary.duration_seconds * 1000, 1),
        **({"dependency": getattr(failure, "dependency", "")} if failure else {}),
        **(log_fields or {}),
    )
    return summary


def _due_pages(deps: JobDependencies, due_by: dt.datetime, page_size: int) -> Iterator[list]:
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


def _position(snapshot) -> dict[str, Any]:
    data = snapshot.to_dict() or {}
    due = data.get("next_run_at")
    return {
        "next_run_at": due.isoformat() if isinstance(due, dt.datetime) else None,
        "user": user_ref(snapshot.id),
    }


def process_user(deps: JobDependencies, user: DueUser, run: RunContext) -> UserOutcome:
    """Claim one due user for the run, do their tasks, and record the outcome.

    Never raises: every failure becomes an outcome (and a log line).
    """
    started = deps.clock()
    log: dict[str, Any] = {"event": "offline_job_user", "run_id": run.run_id,
                           "user": user_ref(user.sub)}
    try:
        claim = deps.jobs.claim(
            user,
            run_id=run.run_id,
            claim_id=run.claim_id,
            now=deps.now(),
            ttl=dt.timedelta(seconds=deps.config.job_claim_ttl_seconds),
        )
    except Unavailable:
        outcome = UserOutcome(SKIPPED, "firestore_unavailable", upstream_down=True)
        _log_user(deps, outcome, log, started, "WARNING")
        return outcome
    if claim.user is None:
        outcome = UserOutcome(SKIPPED, claim.skipped)
        _log_user(deps, outcome, log, started, "DEBUG")
        return outcome
    if claim.took_over_expired:
        # The previous holder crashed or ran out of time: a timeout, not a credential problem.
        log["previous_claim_expired"] = True
    outcome, fields, severity = _work(deps, claim.user, run, log)
    try:
        log["saved"] = deps.jobs.finish(claim.user, fields, claim_id=run.claim_id)
    except Unavailable:
        # The claim stays until it expires; the user is due again then.
        log["saved"] = "failed"
        severity = "WARNING" if severity == "INFO" else severity
    _log_user(deps, outcome, log, started, severity)
    return outcome


def _work(
    deps: JobDependencies, user: DueUser, run: RunContext, log: dict[str, Any]
) -> tuple[UserOutcome, dict[str, Any], str]:
    """Tokens and tasks for a claimed user: (outcome, fields to write, log severity)."""
    config = deps.config
    now = deps.now()
    retrier = Retrier(deps.call_retries, run.deadline, deps.clock, deps.sleep)
    fields: dict[str, Any] = {
        "job.last_run_id": run.run_id,
        "job.last_run_at": now,
        "updated_at": now,
    }
    tokens: UserTokens | None = None
    api: ApiSession | None = None
    severity = "INFO"
    try:
        tokens = UserTokens(
            user,
            sealer=deps.sealer,
            refresh=functools.partial(
                _refresh, deps.session, deps.endpoints.token, config.client_id, run.client_secret,
                config.http_timeout_seconds,
            ),
            save_refresh_token=lambda sealed: deps.jobs.save_refresh_token(user, sealed, now),
            retrier=retrier,
            now=deps.now,
        )
        # Every run uses the refresh token unless the cached access token is still good, which
        # keeps the grant far from Google's 6-month idle limit and finds dead grants early.
        tokens.access_token()
        api = ApiSession(deps.session, tokens, retrier, deps.endpoints, config.http_timeout_seconds)
        results, profile = _run_tasks(deps.tasks, api, user, tokens)
        failed = [name for name, r in results.items() if r["status"] == "failed"]
        outcome = UserOutcome(PARTIAL if failed else SUCCEEDED, ",".join(failed) or None)
        severity = "WARNING" if failed else "INFO"
        fields.update({
            "job.result": {"outcome": outcome.outcome, "tasks": results},
            "job.failure_count": 0,
            "job.last_success_at": now,
            "next_run_at": now + dt.timedelta(seconds=config.job_interval_seconds),
        })
        fields.update({name: profile[name] for name in PROFILE_FIELDS if name in profile})
        log["tasks"] = {name: r["status"] for name, r in results.items()}
    except (UnreadableToken, GrantRevoked) as exc:
        if isinstance(exc, UnreadableToken):
            reason = reauth_reasons.UNREADABLE_TOKEN
        else:
            reason = reauth_reasons.classify(
                user.data, error_subtype=exc.reason, now=now, testing_mode=deps.testing_mode
            )
        outcome = UserOutcome(NEEDS_REAUTH, reason)
        severity = "WARNING"
        fields.update({
            "status": STATUS_NEEDS_REAUTH,
            "reauth_reason": reason,
            "access_token": firestore.DELETE_FIELD,
            "access_token_expires_at": firestore.DELETE_FIELD,
            "job.result": {"outcome": NEEDS_REAUTH, "reason": reason},
        })
    except (TransientUpstreamError, Unavailable, Misconfigured, UpstreamInvalid) as exc:
        error, upstream_down = _error_code(exc)
        if isinstance(exc, Misconfigured):
            severity = "ERROR"
            log["fix"] = exc.fix
        else:
            severity = "WARNING"
        outcome = UserOutcome(DEFERRED, error, upstream_down=upstream_down)
        fields.update(_deferral(deps, user, now, error))
    except Exception as exc:  # a bug must cost one user this run, not the whole run
        outcome = UserOutcome(DEFERRED, "internal_error")
        severity = "ERROR"
        log["exception_type"] = type(exc).__name__
        fields.update(_deferral(deps, user, now, "internal_error"))
    if tokens is not None and tokens.refreshed is not None and outcome.outcome != NEEDS_REAUTH:
        fields.update({
            "access_token": tokens.refreshed.sealed_access_token,
            "access_token_expires_at": tokens.refreshed.expires_at,
            "job.refreshed_at": now,
        })
        if set(tokens.refreshed.scopes) != set(user.granted_scopes):
            fields["granted_scopes"] = list(tokens.refreshed.scopes)
    if tokens is not None:
        log.update(refresh_calls=tokens.refresh_calls, cached_token=tokens.used_cache,
                   refresh_token_rotated=tokens.rotated)
    log.update(api_calls=api.calls if api else 0, retries=retrier.retries,
               retry_wait_s=round(retrier.waited, 3))
    return outcome, fields, severity


def _refresh(session, token_url, client_id, client_secret, timeout, refresh_token, scopes):
    return refresh_access_token(
        session, token_url, client_id=client_id, client_secret=client_secret,
        refresh_token=refresh_token, scopes=scopes, timeout=timeout,
    )


def _run_tasks(
    tasks: tuple[OfflineTask, ...], api: ApiSession, user: DueUser, tokens: UserTokens
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    profile: dict[str, Any] = {}
    for task in tasks:
        missing = task.missing_scopes(tokens.granted_scopes)
        if missing:
            results[task.name] = {"status": "skipped", "reason": "scope_not_granted",
                                  "missing_scopes": missing}
            continue
        try:
            result = task.run(api, user)
        except (GrantRevoked, TransientUpstreamError, Unavailable, Misconfigured):
            raise
        except ApiError as exc:
            results[task.name] = {"status": "failed", "error": f"http_{exc.status}",
                                  "reason": exc.reason}
        except UpstreamInvalid:
            results[task.name] = {"status": "failed", "error": "upstream_invalid"}
        except Exception as exc:  # a task's bug fails that task only
            results[task.name] = {"status": "failed", "error": "task_error",
                                  "exception_type": type(exc).__name__}
        else:
            results[task.name] = {"status": "ok", **result.summary}
            profile.update({k: v for k, v in result.profile.items() if k in PROFILE_FIELDS})
    return results, profile


def _error_code(exc: Exception) -> tuple[str, bool]:
    """(error code for the document and log, whether it counts towards the breaker)."""
    if isinstance(exc, TransientUpstreamError):
        return "google_unavailable", True
    if isinstance(exc, Unavailable):
        return f"{exc.dependency or 'dependency'}_unavailable", True
    if isinstance(exc, Misconfigured):
        return "misconfigured", True
    return "upstream_invalid", False


def _deferral(deps: JobDependencies, user: DueUser, now: dt.datetime, error: str) -> dict[str, Any]:
    failures = user.failure_count
    delay = deps.deferral.delay(failures)
    return {
        "job.result": {"outcome": DEFERRED, "error": error},
        "job.failure_count": failures + 1,
        "next_run_at": now + dt.timedelta(seconds=delay),
    }


def _log_user(
    deps: JobDependencies, outcome: UserOutcome, log: dict[str, Any], started: float, severity: str
) -> None:
    detail = f" ({outcome.detail})" if outcome.detail else ""
    emit(
        severity,
        f"offline job user: {outcome.outcome}{detail}",
        stream=deps.log_stream,
        outcome=outcome.outcome,
        detail=outcome.detail,
        duration_ms=round((deps.clock() - started) * 1000, 1),
        **log,
    )
