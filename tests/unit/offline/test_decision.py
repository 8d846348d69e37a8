"""The per-user decision, without I/O: what happened → outcome, next run, failure count, writes."""

from __future__ import annotations

import datetime as dt

import pytest

from offline_access.errors import (
    ApiRefused,
    DeadlineReached,
    GoogleUnavailable,
    GrantRevoked,
    InvalidScope,
    Misconfigured,
    RefreshRefused,
    SealError,
    SealingKeyGone,
    Unavailable,
    UnreadableToken,
    UpstreamInvalid,
)
from offline_access.offline import reauth_reasons
from offline_access.offline.backoff import Backoff
from offline_access.offline.decision import Attempt, Policy, decide, domain_allowed
from offline_access.store.job_claims import DueUser
from offline_access.store.job_results import Outcome, RefreshedToken

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
DRIVE = "https://www.googleapis.com/auth/drive.appdata"
HOUR = dt.timedelta(hours=1)
# Deferral without jitter: 300 s × 2ⁿ, so each case's next run is exact.
POLICY = Policy(interval=HOUR, deferral=Backoff(base=300, multiplier=2, cap=3600, jitter=0,
                                                max_attempts=1))
OK = {"status": "ok", "files": 2}
FAILED = {"status": "failed", "error": "http_403", "reason": "forbidden"}
SKIPPED = {"status": "skipped", "reason": "scope_not_granted", "missing_scopes": [DRIVE]}
REFRESHED = RefreshedToken(sealed_access_token={"v": 1}, expires_at=NOW + HOUR,
                           scopes=("openid", DRIVE))


def user(failures: int = 0, scopes=("openid", DRIVE), consented_days_ago: int = 1,
         refusals: int = 0, hd: str | None = None) -> DueUser:
    return DueUser("sub-1", {
        "status": "active",
        "granted_scopes": list(scopes),
        "signed_in_at": NOW - dt.timedelta(days=consented_days_ago),
        "hd": hd,
        "job": {"failure_count": failures, "refusal_count": refusals},
    })


def deferred_by(failures: int) -> dt.datetime:
    return NOW + dt.timedelta(seconds=min(3600, 300 * 2**failures))


# (case, user, attempt) → (outcome, detail, next_run_at, failure_count, outage, severity)
CASES = [
    ("all tasks ok", user(), Attempt(tasks={"drive": OK}),
     (Outcome.SUCCEEDED, None, NOW + HOUR, 0, False, "INFO")),
    ("a task skipped for a missing scope still succeeds", user(3), Attempt(tasks={"drive": SKIPPED}),
     (Outcome.SUCCEEDED, None, NOW + HOUR, 0, False, "INFO")),
    ("a failed task makes the run partial, not deferred", user(2),
     Attempt(tasks={"drive": FAILED, "userinfo": OK}),
     (Outcome.PARTIAL, "drive", NOW + HOUR, 0, False, "WARNING")),
    ("no task configured", user(), Attempt(),
     (Outcome.SUCCEEDED, None, NOW + HOUR, 0, False, "INFO")),
    ("revoked grant", user(2), Attempt(error=GrantRevoked("invalid_grant")),
     (Outcome.NEEDS_REAUTH, reauth_reasons.REVOKED, None, None, False, "WARNING")),
    ("reauth required by session control", user(), Attempt(error=GrantRevoked("invalid_rapt")),
     (Outcome.NEEDS_REAUTH, reauth_reasons.REAUTH_REQUIRED, None, None, False, "WARNING")),
    ("token does not open", user(), Attempt(error=SealError("tampered")),
     (Outcome.NEEDS_REAUTH, reauth_reasons.UNREADABLE_TOKEN, None, None, False, "WARNING")),
    ("token missing", user(), Attempt(error=UnreadableToken()),
     (Outcome.NEEDS_REAUTH, reauth_reasons.UNREADABLE_TOKEN, None, None, False, "WARNING")),
    ("Google down: deferred, an outage", user(0), Attempt(error=GoogleUnavailable("503")),
     (Outcome.DEFERRED, "google_unavailable", deferred_by(0), 1, True, "WARNING")),
    ("Firestore down: deferred, an outage", user(1),
     Attempt(error=Unavailable("x", dependency="firestore")),
     (Outcome.DEFERRED, "firestore_unavailable", deferred_by(1), 2, True, "WARNING")),
    ("misconfigured: deferred, an outage, an ERROR", user(4), Attempt(error=Misconfigured("fix it")),
     (Outcome.DEFERRED, "misconfigured", deferred_by(4), 5, True, "ERROR")),
    ("an unusable answer: deferred, not an outage", user(), Attempt(error=UpstreamInvalid("junk")),
     (Outcome.DEFERRED, "upstream_invalid", deferred_by(0), 1, False, "WARNING")),
    ("an API refusal outside a task", user(), Attempt(error=ApiRefused(404, "notFound")),
     (Outcome.DEFERRED, "http_404", deferred_by(0), 1, False, "WARNING")),
    ("a bug: deferred, not an outage, an ERROR", user(), Attempt(error=KeyError("oops")),
     (Outcome.DEFERRED, "internal_error", deferred_by(0), 1, False, "ERROR")),
    ("its sealing key is gone: terminal, never an outage", user(2), Attempt(error=SealingKeyGone()),
     (Outcome.NEEDS_REAUTH, reauth_reasons.UNREADABLE_TOKEN, None, None, False, "WARNING")),
    ("a refused refresh: deferred, not an outage", user(), Attempt(error=RefreshRefused("invalid_request", 400)),
     (Outcome.DEFERRED, "refresh_refused", deferred_by(0), 1, False, "WARNING")),
    ("invalid_scope even without scope: a refusal, not a misconfiguration", user(1, refusals=1),
     Attempt(error=InvalidScope()),
     (Outcome.DEFERRED, "refresh_refused", deferred_by(1), 2, False, "WARNING")),
    ("the third refusal in a row: needs_reauth, an ERROR", user(2, refusals=2),
     Attempt(error=RefreshRefused("invalid_request", 400)),
     (Outcome.NEEDS_REAUTH, reauth_reasons.REFRESH_REFUSED, None, 3, False, "ERROR")),
    ("the run's deadline: due at once, nothing counted", user(3), Attempt(error=DeadlineReached()),
     (Outcome.DEFERRED, "deadline_reached", NOW, None, False, "WARNING")),
    ("a disconnected user", user(hd="old.example"), Attempt(disconnected=True),
     (Outcome.DISCONNECTED, "domain_not_allowed", None, None, False, "WARNING")),
]


@pytest.mark.parametrize("case,due_user,attempt,expected", CASES, ids=[c[0] for c in CASES])
def test_decision_table(case, due_user, attempt, expected):
    result = decide(due_user, attempt, now=NOW, policy=POLICY)
    outcome, detail, next_run_at, failure_count, outage, severity = expected
    assert (result.outcome, result.detail, result.next_run_at, result.failure_count,
            result.outage, result.severity) == expected
    if outcome is Outcome.NEEDS_REAUTH:
        assert result.reauth_reason == detail and result.refreshed is None
    if outcome is Outcome.DEFERRED:
        assert result.error == detail


def test_refusals_are_counted_and_recorded_and_reset_by_a_success():
    refused = decide(user(refusals=1), Attempt(error=RefreshRefused("invalid_request", 400)),
                     now=NOW, policy=POLICY)
    assert refused.refusal_count == 2
    assert refused.record() == {"outcome": "deferred", "error": "refresh_refused",
                                "refused": {"error": "invalid_request", "http_status": 400, "count": 2}}
    done = decide(user(refusals=2), Attempt(tasks={"drive": OK}), now=NOW, policy=POLICY)
    assert done.refusal_count == 0
    assert decide(user(), Attempt(tasks={"drive": OK}), now=NOW, policy=POLICY).refusal_count is None


def test_values_under_an_older_key_are_resealed_unless_the_grant_died():
    resealed = {"refresh_token": {"v": 2, "key_id": "2", "ct": b"x"}}
    for attempt in (Attempt(tasks={"drive": OK}, resealed=resealed),
                    Attempt(error=GoogleUnavailable("503"), resealed=resealed),
                    Attempt(error=DeadlineReached(), resealed=resealed),
                    Attempt(error=RefreshRefused("invalid_request", 400), resealed=resealed)):
        assert decide(user(), attempt, now=NOW, policy=POLICY).resealed == resealed
    dead = decide(user(), Attempt(error=GrantRevoked("invalid_grant"), resealed=resealed),
                  now=NOW, policy=POLICY)
    assert dict(dead.resealed) == {}


def test_a_disconnection_deletes_the_document():
    result = decide(user(), Attempt(disconnected=True), now=NOW, policy=POLICY)
    assert result.disconnect and result.record() == {"outcome": "disconnected",
                                                     "error": "domain_not_allowed"}


@pytest.mark.parametrize("allowed,hd,expected", [
    ((), None, True), ((), "any.example", True),
    (("example.org",), "example.org", True), (("example.org",), "EXAMPLE.ORG", True),
    (("example.org",), "other.example", False), (("example.org",), None, False),
])
def test_the_domain_is_checked_again_by_the_job(allowed, hd, expected):
    policy = Policy(interval=HOUR, allowed_hosted_domains=allowed)
    assert domain_allowed(user(hd=hd), policy) is expected


def test_a_refreshed_token_is_kept_unless_the_grant_died():
    ok = decide(user(), Attempt(tasks={"drive": OK}, refreshed=REFRESHED), now=NOW, policy=POLICY)
    assert ok.refreshed is REFRESHED and ok.granted_scopes is None  # the same scopes: no write
    down = decide(user(), Attempt(error=GoogleUnavailable("503"), refreshed=REFRESHED), now=NOW,
                  policy=POLICY)
    assert down.refreshed is REFRESHED
    dead = decide(user(), Attempt(error=GrantRevoked("invalid_grant"), refreshed=REFRESHED),
                  now=NOW, policy=POLICY)
    assert dead.refreshed is None


def test_scopes_are_written_only_when_a_refresh_changed_them():
    fewer = RefreshedToken(sealed_access_token={}, expires_at=NOW, scopes=("openid",))
    result = decide(user(), Attempt(refreshed=fewer), now=NOW, policy=POLICY)
    assert result.granted_scopes == ("openid",)


def test_only_profile_fields_reach_the_result():
    attempt = Attempt(tasks={"userinfo": OK}, profile={"name": "Alice", "token": "x"})
    assert dict(decide(user(), attempt, now=NOW, policy=POLICY).profile) == {"name": "Alice"}


def test_misconfiguration_carries_the_operators_fix():
    result = decide(user(), Attempt(error=Misconfigured("Set X.")), now=NOW, policy=POLICY)
    assert result.fix == "Set X."


def test_testing_mode_names_the_seven_day_expiry():
    testing = Policy(interval=HOUR, testing_mode=True)
    result = decide(user(consented_days_ago=8), Attempt(error=GrantRevoked("invalid_grant")),
                    now=NOW, policy=testing)
    assert result.reauth_reason == reauth_reasons.TESTING_MODE_EXPIRY


def test_the_record_for_the_user_document():
    done = decide(user(), Attempt(tasks={"drive": OK}), now=NOW, policy=POLICY)
    assert done.record() == {"outcome": "succeeded", "tasks": {"drive": OK}}
    dead = decide(user(), Attempt(error=GrantRevoked("invalid_grant")), now=NOW, policy=POLICY)
    assert dead.record() == {"outcome": "needs_reauth", "reason": "revoked"}
    down = decide(user(), Attempt(error=GoogleUnavailable("503")), now=NOW, policy=POLICY)
    assert down.record() == {"outcome": "deferred", "error": "google_unavailable"}
