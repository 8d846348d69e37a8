"""What one run did for one user, as a value: the job decides it, the job store writes it.

`offline.decision.decide` turns what happened into a `UserResult` without any I/O, and
`JobStore.finish` alone turns a `UserResult` into Firestore writes. Between the two there is no
protocol of field paths: only these types.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """A user's outcome in a run."""

    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # some task failed for good (e.g. an API refused); the user is fine
    NEEDS_REAUTH = "needs_reauth"  # the grant is dead: no further attempts until a sign-in
    DEFERRED = "deferred"  # an outage or an unusable answer: tried again later, with backoff
    DISCONNECTED = "disconnected"  # no longer allowed (its domain): grant revoked, document deleted
    SKIPPED = "skipped"  # not claimed: another delivery or run has it, or it is no longer due


@dataclass(frozen=True)
class RefreshedToken:
    """A new access token from a refresh, sealed, to store for the next run."""

    sealed_access_token: dict[str, Any] = field(repr=False)
    expires_at: dt.datetime
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class UserResult:
    """One user's result in a run.

    Attributes:
        outcome: what the run came to for the user.
        detail: the failed tasks, the skip or reauth reason, or the error (for the log and summary).
        outage: the failure was not the user's (Google, Firestore or Secret Manager down, or a
            misconfiguration): it counts toward the run's circuit breaker.
        tasks: each task's record (`{"status": "ok", ...summary}`, `skipped` or `failed`).
        reauth_reason: with `NEEDS_REAUTH`, why the grant likely died (`offline.reauth_reasons`).
        error: with `DEFERRED`, the error's short word (`google_unavailable`...).
        next_run_at: when the user is due again; None keeps the stored time.
        failure_count: the new count of consecutive deferrals; None keeps the stored count.
        refreshed: a new access token to store, if the run refreshed one.
        granted_scopes: the granted scopes to store, when a refresh reported a different set.
        profile: profile fields (`PROFILE_FIELDS`) a task found changed.
        severity: the log line's severity.
        fix: with a misconfiguration, the operator's sentence for the log.
        refusal_count: the new count of refreshes Google refused in a row (`RefreshRefused`);
            None keeps the stored count.
        refused: with a refusal, Google's error and HTTP status, recorded on the document.
        resealed: sealed values to store again under the primary key, by field.
        disconnect: the account lifecycle deleted the user (`DISCONNECTED`): nothing to write.
    """

    outcome: Outcome
    detail: str | None = None
    outage: bool = False
    tasks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    reauth_reason: str | None = None
    error: str | None = None
    next_run_at: dt.datetime | None = None
    failure_count: int | None = None
    refreshed: RefreshedToken | None = None
    granted_scopes: tuple[str, ...] | None = None
    profile: Mapping[str, Any] = field(default_factory=dict)
    severity: str = "INFO"
    fix: str | None = None
    refusal_count: int | None = None
    refused: Mapping[str, Any] | None = None
    resealed: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    disconnect: bool = False

    def record(self) -> dict[str, Any]:
        """The run's record for the user document's `job.result`."""
        refused = {"refused": dict(self.refused)} if self.refused else {}
        if self.outcome is Outcome.NEEDS_REAUTH:
            return {"outcome": str(self.outcome), "reason": self.reauth_reason, **refused}
        if self.outcome in (Outcome.DEFERRED, Outcome.DISCONNECTED):
            return {"outcome": str(self.outcome), "error": self.error, **refused}
        return {"outcome": str(self.outcome), "tasks": {k: dict(v) for k, v in self.tasks.items()}}
