"""What each security event does to a user document (pure logic: `actions.plan`)."""

from __future__ import annotations

import datetime as dt

import pytest
from google.cloud import firestore

from offline_access.risc import actions
from offline_access.risc import events as ev
from offline_access.store.job_claims import DueUser

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
ISSUED = NOW - dt.timedelta(minutes=5)
SUB = "1234"


def user(**fields) -> DueUser:
    data = {"status": "active", "refresh_token": {"v": 2}, "refresh_token_ids": {"key": "1"},
            "access_token": {"v": 2}, "refresh_token_issued_at": ISSUED - dt.timedelta(days=3),
            "session_generation": 7, **fields}
    return DueUser(SUB, data)


def event(kind: str, issued_at: dt.datetime = ISSUED, **kw) -> ev.SecurityEvent:
    return ev.SecurityEvent(kind, ev.EVENT_TYPES[kind], issued_at, sub=SUB, **kw)


def test_sessions_revoked_adds_one_to_the_generation():
    plan = actions.plan(event("sessions-revoked"), user(), NOW)
    assert plan.action == "sessions_ended" and plan.lifecycle == "sessions_ended"
    assert plan.user_fields["session_generation"] == firestore.Increment(1)
    assert "status" not in plan.user_fields


@pytest.mark.parametrize(("kind", "action"), [("tokens-revoked", "tokens_deleted"),
                                              ("token-revoked", "token_deleted")])
def test_a_revoked_grant_loses_its_tokens_and_identifiers(kind, action):
    plan = actions.plan(event(kind), user(), NOW)
    assert plan.action == action and plan.lifecycle == "grant_revoked"
    fields = plan.user_fields
    for name in ("refresh_token", "refresh_token_ids", "access_token", "access_token_expires_at"):
        assert fields[name] is firestore.DELETE_FIELD
    assert (fields["status"], fields["reauth_reason"]) == ("needs_reauth", "revoked_at_google")


def test_a_grant_stored_after_the_event_was_issued_is_kept():
    newer = user(refresh_token_issued_at=ISSUED + dt.timedelta(seconds=2))
    plan = actions.plan(event("tokens-revoked"), newer, NOW)
    assert (plan.action, plan.why) == ("no_change", "grant_newer_than_event")
    assert "refresh_token" not in plan.user_fields and plan.lifecycle is None
    # Within the second of the event's `iat` the token may be the one Google revoked.
    same_second = user(refresh_token_issued_at=ISSUED + dt.timedelta(milliseconds=400))
    assert actions.plan(event("tokens-revoked"), same_second, NOW).action == "tokens_deleted"


def test_a_suspended_user_whose_grant_is_revoked_stays_suspended_and_comes_back_to_reauth():
    suspended = user(status="suspended", suspension={"since": ISSUED - dt.timedelta(hours=1)})
    plan = actions.plan(event("tokens-revoked"), suspended, NOW)
    assert "status" not in plan.user_fields and plan.user_fields["reauth_reason"] == "revoked_at_google"
    restored = actions.plan(event("account-enabled", NOW), user(status="suspended", reauth_reason="x",
                                                                suspension={"since": ISSUED}), NOW)
    assert restored.user_fields["status"] == "needs_reauth" and "next_run_at" not in restored.user_fields


def test_hijacking_marks_the_user_disconnecting_and_asks_for_the_disconnect():
    plan = actions.plan(event("account-disabled", reason="hijacking"), user(), NOW)
    assert plan.action == "disconnect_requested" and plan.disconnect
    fields = plan.user_fields
    assert fields["status"] == "disconnecting"
    assert fields["session_generation"] == firestore.Increment(1)
    assert fields["disconnect"]["requested_by"] == "security_event"


def test_hijacking_of_a_user_already_disconnecting_asks_again_and_marks_nothing():
    plan = actions.plan(event("account-disabled", reason="hijacking"), user(status="disconnecting"), NOW)
    assert plan.disconnect and plan.why == "already_disconnecting"
    assert "status" not in plan.user_fields and plan.lifecycle is None


@pytest.mark.parametrize("reason", ["bulk-account", None])
def test_a_disabled_account_is_suspended_and_keeps_its_grant_and_sessions(reason):
    plan = actions.plan(event("account-disabled", reason=reason), user(), NOW)
    fields = plan.user_fields
    assert plan.action == "suspended" and fields["status"] == "suspended"
    assert fields["suspension"] == {"reason": "account_disabled", "google_reason": reason,
                                    "since": ISSUED, "received_at": NOW}
    assert "refresh_token" not in fields and "session_generation" not in fields


def test_account_enabled_restores_an_active_user_due_at_once():
    suspended = user(status="suspended", suspension={"since": ISSUED - dt.timedelta(hours=1)})
    plan = actions.plan(event("account-enabled"), suspended, NOW)
    assert plan.action == "restored" and plan.lifecycle == "account_restored"
    assert plan.user_fields["status"] == "active" and plan.user_fields["next_run_at"] == NOW
    assert plan.user_fields["suspension"] is firestore.DELETE_FIELD


def test_events_are_weighed_by_when_google_issued_them():
    # An account-enabled issued before the suspension it would end changes nothing...
    suspended = user(status="suspended", suspension={"since": ISSUED})
    early = actions.plan(event("account-enabled", ISSUED - dt.timedelta(minutes=1)), suspended, NOW)
    assert (early.action, early.why) == ("no_change", "superseded")
    # ...nor does an account-disabled issued before the last account-enabled (a late delivery).
    enabled_later = user(security_events=[{"type": "account-enabled", "issued_at": ISSUED,
                                           "action": "restored"}])
    late = actions.plan(event("account-disabled", ISSUED - dt.timedelta(minutes=1)), enabled_later, NOW)
    assert (late.action, late.why) == ("no_change", "superseded")


def test_account_enabled_for_an_active_user_changes_nothing():
    plan = actions.plan(event("account-enabled"), user(), NOW)
    assert (plan.action, plan.why) == ("no_change", "not_suspended")
    assert set(plan.user_fields) == {"updated_at", "security_events"}


def test_credential_change_required_sets_a_notice_and_keeps_the_grant():
    plan = actions.plan(event("account-credential-change-required"), user(), NOW)
    assert plan.action == "notice_set"
    assert plan.user_fields["security_notice"] == {"kind": "credential_change_required",
                                                    "since": ISSUED, "received_at": NOW}
    assert "status" not in plan.user_fields


@pytest.mark.parametrize("kind", ["sessions-revoked", "tokens-revoked", "account-enabled",
                                  "account-credential-change-required", "account-disabled"])
def test_a_disconnecting_user_only_gets_the_event_recorded(kind):
    plan = actions.plan(event(kind), user(status="disconnecting"), NOW)
    if kind == "sessions-revoked":
        assert plan.action == "sessions_ended"  # harmless, and what it asks
        return
    assert (plan.action, plan.why) == ("no_change", "already_disconnecting")
    assert set(plan.user_fields) == {"updated_at", "security_events"}


def test_the_history_keeps_the_newest_entries_without_personal_data():
    old = [{"type": "sessions-revoked", "issued_at": ISSUED, "received_at": ISSUED,
            "action": "sessions_ended"}] * actions.HISTORY_LENGTH
    plan = actions.plan(event("account-disabled", reason="bulk-account"), user(security_events=old), NOW)
    entries = plan.user_fields["security_events"]
    assert len(entries) == actions.HISTORY_LENGTH
    assert entries[-1] == {"type": "account-disabled", "issued_at": ISSUED, "received_at": NOW,
                           "action": "suspended", "reason": "bulk-account"}
    assert SUB not in repr(entries)
