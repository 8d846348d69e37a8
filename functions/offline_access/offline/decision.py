"""The per-user decision of a run, as a pure function: from what happened to the user's result.

`decide` reads no clock and does no I/O: the caller says what happened (`Attempt`: the error
that ended the work if any, each task's record, what the tasks learned of the profile, a
refreshed access token) and when, and gets a `UserResult` that the job store writes and the
log line reports.

| what happened | outcome | next run | failure count |
|---|---|---|---|
| every task ran or was skipped for a missing scope | `succeeded` | after the interval | 0 |
| some task failed for good | `partial` | after the interval | 0 |
| `GrantError`: the refresh token is dead or does not open | `needs_reauth` + reason | at sign-in | kept |
| any other product error: an outage, an unusable answer | `deferred` | after the deferral backoff | + 1 |
| an unexpected exception (a bug) | `deferred` (`internal_error`) | after the deferral backoff | + 1 |

Only outages (`OfflineAccessError.outage`) count toward the run's circuit breaker.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import GrantError, GrantRevoked, Misconfigured, OfflineAccessError
from ..store.job_claims import DueUser
from ..store.job_results import Outcome, RefreshedToken, UserResult
from ..store.users import PROFILE_FIELDS
from . import reauth_reasons
from .backoff import DEFERRAL, Backoff


@dataclass(frozen=True)
class Policy:
    """The settings the decision depends on."""

    interval: dt.timedelta
    deferral: Backoff = DEFERRAL
    testing_mode: bool = False  # the consent screen is in Testing: refresh tokens die after 7 days


@dataclass(frozen=True)
class Attempt:
    """What happened while the job worked on one claimed user.

    Attributes:
        error: what ended the work before the tasks were done, or None.
        tasks: each task's record (`{"status": "ok" | "skipped" | "failed", ...}`).
        profile: profile fields the tasks read from Google.
        refreshed: the access token a refresh produced, if any.
    """

    error: BaseException | None = None
    tasks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    profile: Mapping[str, Any] = field(default_factory=dict)
    refreshed: RefreshedToken | None = None


def decide(user: DueUser, attempt: Attempt, *, now: dt.datetime, policy: Policy) -> UserResult:
    """The user's result for this run (see the module's table)."""
    error = attempt.error
    if error is None:
        return _done(user, attempt, now, policy)
    if isinstance(error, GrantError):
        return _needs_reauth(user, error, now, policy)
    refreshed = _refreshed_fields(user, attempt)
    failures = user.failure_count
    deferral = {
        "next_run_at": now + dt.timedelta(seconds=policy.deferral.delay(failures)),
        "failure_count": failures + 1,
        **refreshed,
    }
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


def _done(user: DueUser, attempt: Attempt, now: dt.datetime, policy: Policy) -> UserResult:
    failed = [name for name, record in attempt.tasks.items() if record.get("status") == "failed"]
    return UserResult(
        Outcome.PARTIAL if failed else Outcome.SUCCEEDED,
        detail=",".join(failed) or None,
        tasks=attempt.tasks,
        next_run_at=now + policy.interval,
        failure_count=0,
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
