"""One user in a run: claim, work, decide, record, log.

1. Claim the user for this delivery of the run (`JobStore.claim`); a user another delivery or
   run holds, or no longer due, is skipped.
2. Work: open the sealed refresh token, get an access token (the cached one or a refresh), and
   run the configured tasks with an authorized session, every call within the run's hard
   deadline. Whatever happens is collected in an `Attempt`, errors included, with the values
   to re-seal under the primary key. A user whose Workspace domain is no longer allowed gets
   no work: the account lifecycle revokes their grant and deletes them (`accounts.lifecycle`).
3. Decide the result without I/O (`offline.decision.decide`).
4. Record it (`JobStore.finish`), which also releases the claim, and log one line.

`process_user` does all four for one user. A batch of users (`offline.batch`) claims them all in
one write, then runs steps 2 and 3 for each (`work_claimed`), and records their results together.

Nothing here raises: every failure becomes a result and a log line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from ..accounts import lifecycle
from ..errors import OfflineAccessError, Unavailable
from ..googleapis.token_endpoint import REVOKED, TokenResponse, refresh_access_token
from ..store.job_claims import ClaimOutcome, DueUser
from ..store.job_results import Outcome, UserResult
from ..structured_log import emit
from .api_session import ApiSession
from .backoff import Retrier
from .context import JobDependencies, RunContext
from .decision import Attempt, decide, domain_allowed
from .task_runner import run_tasks
from .tokens import UserTokens


def process_user(deps: JobDependencies, user: DueUser, run: RunContext) -> UserResult:
    """Claim one due user for the run, do their tasks, and record the result."""
    started = deps.clock()
    log = user_log(deps, run, user.sub)
    try:
        claim = deps.jobs.claim(
            user,
            run_id=run.run_id,
            claim_id=run.claim_id,
            now=deps.now(),
            ttl=dt.timedelta(seconds=deps.config.job_claim_ttl_seconds),
            due_by=run.due_by,
        )
    except Unavailable:
        result = UserResult(Outcome.SKIPPED, "firestore_unavailable", outage=True,
                            severity="WARNING")
        log_user(deps, result, log, started)
        return result
    if claim.user is None:
        result = skipped(claim)
        log_user(deps, result, log, started)
        return result
    result, now = work_claimed(deps, claim.user, run, log,
                               took_over_expired=claim.took_over_expired)
    try:
        log["saved"] = deps.jobs.finish(claim.user, result, run_id=run.run_id, now=now,
                                        claim_id=run.claim_id)
    except Unavailable:
        # The claim stays until it expires; the user is due again then.
        result = not_saved(result, log)
    log_user(deps, result, log, started)
    return result


def _disconnect(deps: JobDependencies, sub: str, log: dict[str, Any]) -> Attempt:
    """End the grant of a user whose domain is no longer allowed: the account lifecycle's
    revoke-and-delete, as for a user who disconnects."""
    try:
        done = lifecycle.revoke_and_delete(deps, sub, requested_by=lifecycle.REQUESTED_BY_POLICY,
                                           log_stream=deps.log_stream)
    except OfflineAccessError as exc:
        return Attempt(disconnect_error=exc.reason)
    if done.finished:
        # False: Google already held the grant dead (or the token did not open); none is left.
        log["grant_revoked"] = done.revoked == REVOKED
        return Attempt(disconnected=True)
    return Attempt(disconnect_error=done.error or done.outcome)


def user_log(deps: JobDependencies, run: RunContext, sub: str) -> dict[str, Any]:
    """The start of a user's log line."""
    return {"event": "offline_job_user", "run_id": run.run_id, "user": deps.user_refs.ref(sub)}


def skipped(claim: ClaimOutcome) -> UserResult:
    """The result of a user that was not claimed."""
    return UserResult(Outcome.SKIPPED, claim.skipped, severity="DEBUG")


def not_saved(result: UserResult, log: dict[str, Any]) -> UserResult:
    """A result whose write failed: the claim stays until it expires, the user is due again then."""
    log["saved"] = "failed"
    return replace(result, severity="WARNING") if result.severity == "INFO" else result


def work_claimed(deps: JobDependencies, user: DueUser, run: RunContext, log: dict[str, Any], *,
                 took_over_expired: bool = False) -> tuple[UserResult, dt.datetime]:
    """Work on a claimed user and decide the result (not yet written); and when it was decided."""
    if took_over_expired:
        # The previous holder crashed or ran out of time: a timeout, not a credential problem.
        log["previous_claim_expired"] = True
    now = deps.now()
    if domain_allowed(user, deps.policy):
        attempt = _work(deps, user, run, now, log)
    else:
        log["hd_not_allowed"] = True
        attempt = _disconnect(deps, user.sub, log)
    return decide(user, attempt, now=now, policy=deps.policy), now


def _work(
    deps: JobDependencies, user: DueUser, run: RunContext, now: dt.datetime, log: dict[str, Any]
) -> Attempt:
    """Tokens and tasks for a claimed user; what happened, errors included."""
    config = deps.config
    retrier = Retrier(deps.call_retries, run.deadline, deps.clock, deps.sleep)

    def refresh(refresh_token: str, scopes: tuple[str, ...] | None) -> TokenResponse:
        return refresh_access_token(
            deps.http, deps.endpoints.token, client_id=config.client_id,
            client_secret=run.client_secret, refresh_token=refresh_token, scopes=scopes,
            timeout=retrier.timeout(config.http_timeout_seconds),
        )

    tokens: UserTokens | None = None
    api: ApiSession | None = None
    try:
        tokens = UserTokens(
            user,
            sealer=deps.sealer,
            refresh=refresh,
            save_refresh_token=lambda sealed, expires_in, ids: deps.jobs.save_refresh_token(
                user, sealed, now, expires_in, ids=ids),
            retrier=retrier,
            now=deps.now,
            identify=deps.token_ids.of_token_if_available if deps.token_ids is not None else None,
        )
        # Every run uses the refresh token unless the cached access token is still good, which
        # keeps the grant far from Google's 6-month idle limit and finds dead grants early.
        tokens.access_token()
        api = ApiSession(deps.http, tokens, retrier, deps.endpoints, config.http_timeout_seconds)
        results, profile = run_tasks(deps.tasks, api, user, tokens.granted_scopes)
        attempt = Attempt(tasks=results, profile=profile, refreshed=tokens.refreshed,
                          resealed=tokens.resealed())
        log["tasks"] = {name: r["status"] for name, r in results.items()}
    except Exception as exc:  # decided on by `decide`; a bug costs this user only
        attempt = Attempt(error=exc, refreshed=tokens.refreshed if tokens else None,
                          resealed=_resealed(tokens))
        if not isinstance(exc, OfflineAccessError):
            log["exception_type"] = type(exc).__name__
    if tokens is not None:
        log.update(refresh_calls=tokens.refresh_calls, cached_token=tokens.used_cache,
                   refresh_token_rotated=tokens.rotated)
        if tokens.scope_fallback:
            log["scope_fallback"] = True
    if attempt.resealed:
        log["resealed"] = sorted(attempt.resealed)
    log.update(api_calls=api.calls if api else 0, retries=retrier.retries,
               retry_wait_s=round(retrier.waited, 3))
    return attempt


def _resealed(tokens: UserTokens | None) -> dict[str, dict[str, Any]]:
    """What to re-seal when the work failed midway; nothing if even that fails."""
    if tokens is None:
        return {}
    try:
        return tokens.resealed()
    except OfflineAccessError:
        return {}


def log_user(deps: JobDependencies, result: UserResult, log: dict[str, Any], started: float) -> None:
    """Write the user's one log line."""
    detail = f" ({result.detail})" if result.detail else ""
    if result.fix:
        log["fix"] = result.fix
    emit(
        result.severity,
        f"offline job user: {result.outcome}{detail}",
        stream=deps.log_stream,
        outcome=str(result.outcome),
        detail=result.detail,
        duration_ms=round((deps.clock() - started) * 1000, 1),
        **log,
    )
