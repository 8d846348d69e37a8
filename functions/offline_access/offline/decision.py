"""The per-user decision of a run, as a pure function: from what happened to the user's result.

`decide` reads no clock and does no I/O: the caller says what happened (`Attempt`: the error
that ended the work if any, each task's record, what the tasks learned of the profile, a
refreshed access token) and when, and gets a `UserResult` that the job store writes and the
log line reports.

| what happened | outcome | next run | failure count |
|---|---|---|---|
| the user's domain (`hd`) is no longer allowed; grant revoked | `disconnected` (deleted) | never | - |
| every task ran or was skipped for a missing scope | `succeeded` | after the interval | 0 |
| some task failed for good | `partial` | after the interval | 0 |
| `GrantError`: the refresh token is dead or does not open | `needs_reauth` + reason | at sign-in | kept |
| `RefreshRefused`, `REFUSALS_BEFORE_REAUTH` runs in a row | `needs_reauth` (`refresh_refused`) | at sign-in | + 1 |
| `RefreshRefused`, before that | `deferred` | after the deferral backoff | + 1 |
| `DeadlineReached`: the run's hard deadline came first | `deferred` | now (the next run) | kept |
| any other product error: an outage, an unusable answer | `deferred` | after the deferral backoff | + 1 |
| an unexpected exception (a bug) | `deferred` (`internal_error`) | after the deferral backoff | + 1 |

Only outages (`OfflineAccessError.outage`) count toward the run's circuit breaker: a refusal, a
dead grant, a gone key or the deadline is one user's, never the run's. Whatever the outcome,
values sealed under an older key are re-sealed under the primary (`Attempt.resealed`), unless
the grant is dead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import (
    DeadlineReached,
    GrantError,
    GrantRevoked,
    Misconfigured,
    OfflineAccessError,
    RefreshRefused,
)
from ..store.job_claims import DueUser
from ..store.job_results import Outcome, RefreshedToken, UserResult
from ..store.users import PROFILE_FIELDS
from . import reauth_reasons
from .backoff import DEFERRAL, Backoff

# Refreshes Google refused (a 4xx other than `invalid_grant`) in consecutive runs before the
# user is marked `needs_reauth (refresh_refused)`. Three: one odd answer is not a verdict, and
# Google's 4xx answers repeat; with the deferral backoff the third comes about 15 minutes
# after the first.
REFUSALS_BEFORE_REAUTH = 3


@dataclass(frozen=True)
class Policy:
    """The settings the decision depends on."""

    interval: dt.timedelta
    deferral: Backoff = DEFERRAL
    testing_mode: bool = False  # the consent screen is in Testing: refresh tokens die after 7 days
    # `ALLOWED_HOSTED_DOMAINS` (lower case); empty: any account.
    allowed_hosted_domains: tuple[str, ...] = ()
    refusals_before_reauth: int = REFUSALS_BEFORE_REAUTH


@dataclass(frozen=True)
class Attempt:
    """What happened while the job worked on one claimed user.

    Attributes:
        error: what ended the work before the tasks were done, or None.
        tasks: each task's record (`{"status": "ok" | "skipped" | "failed", ...}`).
        profile: profile fields the tasks read from Google.
        refreshed: the access token a refresh produced, if any.
        resealed: stored values re-sealed under the primary key, by field.
        disconnected: the user's grant was ended because `domain_allowed` said no.
        disconnect_error: `domain_allowed` said no, but the disconnect had to wait (the user
            is now `disconnecting`: the next run finishes it); the failure's short word.
    """

    error: BaseException | None = None
    tasks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    profile: Mapping[str, Any] = field(default_factory=dict)
    refreshed: RefreshedToken | None = None
    resealed: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    disconnected: bool = False
    disconnect_error: str | None = None


def domain_allowed(user: DueUser, policy: Policy) -> bool:
    """Whether the user's stored Workspace domain (`hd`) is still allowed to use the product."""
    if not policy.allowed_hosted_domains:
        return True
    hd = user.data.get("hd")
    return isinstance(hd, str) and hd.lower() in policy.allowed_hosted_domains


def refusal_count(user: DueUser) -> int:
    count = user.job.get("refusal_count")
    return count if isinstance(count, int) and count >= 0 else 0


def decide(user: DueUser, attempt: Attempt, *, now: dt.datetime, policy: Policy) -> UserResult:
    """The user's result for this run (see the module's table)."""
    error = attempt.error
    if attempt.disconnected:
        return UserResult(Outcome.DISCONNECTED, detail="domain_not_allowed",
                          error="domain_not_allowed", disconnect=True, severity="WARNING")
    if attempt.disconnect_error is not None:
        # The user is `disconnecting` now: no further work, and the next run finishes it.
        return UserResult(Outcome.DEFERRED, detail=attempt.disconnect_error,
                          error=attempt.disconnect_error, severity="WARNING")
    if error is None:
        return _done(user, attempt, now, policy)
    if isinstance(error, GrantError):
        return _needs_reauth(user, error, now, policy)
    refreshed = {**_refreshed_fields(user, attempt), "resealed": attempt.resealed}
    if isinstance(error, DeadlineReached):
        return UserResult(Outcome.DEFERRED, detail=error.reason, error=error.reason,
                          next_run_at=now, severity="WARNING", **refreshed)
    failures = user.failure_count
    deferral = {
        "next_run_at": now + dt.timedelta(seconds=policy.deferral.delay(failures)),
        "failure_count": failures + 1,
        **refreshed,
    }
    if isinstance(error, RefreshRefused):
        return _refused(user, error, policy, deferral)
    if isinstance(error, OfflineAccessError):
        return UserResult(
            Outcome.DEFERRED,
            detail=error.reason,
            error=error.reason,
            outage=error.outage,
            severity="ERROR" if isinstance(error, Misconfigured) else "WARNING",
            fix=error.fix if isinstance(error, Misconfigured) else None,
            **deferral,
        )
    # A bug must cost one user this run, not the whole run.
    return UserResult(
        Outcome.DEFERRED, detail="internal_error", error="internal_error", severity="ERROR", **deferral
    )


def _refused(user: DueUser, error: RefreshRefused, policy: Policy,
             deferral: dict[str, Any]) -> UserResult:
    refusals = refusal_count(user) + 1
    refused = {"error": error.google_error, "http_status": error.http_status, "count": refusals}
    if refusals >= policy.refusals_before_reauth:
        # Google keeps refusing this user's refresh: stop, and say so loudly (it may be ours).
        reason = reauth_reasons.REFRESH_REFUSED
        return UserResult(Outcome.NEEDS_REAUTH, detail=reason, reauth_reason=reason,
                          failure_count=deferral["failure_count"], refusal_count=refusals,
                          refused=refused, severity="ERROR")
    return UserResult(Outcome.DEFERRED, detail=error.reason, error=error.reason,
                      refusal_count=refusals, refused=refused, severity="WARNING", **deferral)


def _done(user: DueUser, attempt: Attempt, now: dt.datetime, policy: Policy) -> UserResult:
    failed = [name for name, record in attempt.tasks.items() if record.get("status") == "failed"]
    return UserResult(
        Outcome.PARTIAL if failed else Outcome.SUCCEEDED,
        detail=",".join(failed) or None,
        tasks=attempt.tasks,
        next_run_at=now + policy.interval,
        failure_count=0,
        refusal_count=0 if refusal_count(user) else None,
        resealed=attempt.resealed,
        profile={name: attempt.profile[name] for name in PROFILE_FIELDS if name in attempt.profile},
        severity="WARNING" if failed else "INFO",
        **_refreshed_fields(user, attempt),
    )


def _needs_reauth(user: DueUser, error: GrantError, now: dt.datetime, policy: Policy) -> UserResult:
    if isinstance(error, GrantRevoked):
        reason = reauth_reasons.classify(
            user.data, error_subtype=error.subtype, now=now, testing_mode=policy.testing_mode
        )
    else:
        reason = reauth_reasons.UNREADABLE_TOKEN
    # A token refreshed before the grant died is worthless: it is not stored.
    return UserResult(Outcome.NEEDS_REAUTH, detail=reason, reauth_reason=reason, severity="WARNING")


def _refreshed_fields(user: DueUser, attempt: Attempt) -> dict[str, Any]:
    refreshed = attempt.refreshed
    if refreshed is None:
        return {}
    scopes = refreshed.scopes if set(refreshed.scopes) != set(user.granted_scopes) else None
    return {"refreshed": refreshed, "granted_scopes": scopes}
