"""Which change makes which lifecycle event: pure, no I/O."""

from __future__ import annotations

import datetime as dt
import json

from offline_access.events.catalog import EventCatalog, rfc3339
from offline_access.events.publisher import CONTENT_TYPE, to_message

NOW = dt.datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)
SCOPES = ["openid", "https://www.googleapis.com/auth/drive.appdata"]
catalog = EventCatalog("com.example.app", "my-project")


def names(events):
    return [e["type"].removeprefix("com.example.app.") for e in events]


def test_an_event_is_a_cloudevent_with_the_sub_as_subject():
    [event] = catalog.sign_in("sub-1", None, {"status": "active", "granted_scopes": SCOPES,
                                              "email": "a@example.com"}, NOW)
    assert set(event) == {"specversion", "id", "source", "type", "subject", "time",
                          "datacontenttype", "data"}
    assert event["specversion"] == "1.0" and event["type"] == "com.example.app.user.connected"
    assert event["subject"] == "sub-1" and event["source"] == "//offline-access/projects/my-project"
    assert event["time"] == "2026-06-01T12:00:00.123456Z" == rfc3339(NOW)
    assert event["data"]["granted_scopes"] == sorted(SCOPES) and event["data"]["offline_access"]


def test_the_same_change_always_has_the_same_id_and_another_change_another():
    first = catalog.needs_reauth("sub-1", "revoked", NOW)
    again = catalog.needs_reauth("sub-1", "revoked", NOW)
    later = catalog.needs_reauth("sub-1", "revoked", NOW + dt.timedelta(seconds=1))
    other_user = catalog.needs_reauth("sub-2", "revoked", NOW)
    assert first == again
    assert len({first["id"], later["id"], other_user["id"]}) == 3 and len(first["id"]) == 32


def test_a_returning_sign_in_makes_events_only_for_what_changed():
    active = {"status": "active", "granted_scopes": SCOPES}
    assert catalog.sign_in("s", active, {"status": "active", "granted_scopes": SCOPES}, NOW) == []
    assert names(catalog.sign_in("s", {**active, "status": "needs_reauth"}, active, NOW)) == [
        "user.reconnected"]
    more = {"status": "active", "granted_scopes": [*SCOPES, "email"]}
    [changed] = catalog.sign_in("s", active, more, NOW)
    assert changed["data"] == {"granted_scopes": sorted(more["granted_scopes"]),
                               "added": ["email"], "removed": []}
    both = catalog.sign_in("s", {"status": "no_offline_access", "granted_scopes": ["openid"]},
                           active, NOW)
    assert names(both) == ["user.reconnected", "user.scopes_changed"]
    # Still no lasting grant: nothing to announce.
    assert catalog.sign_in("s", {"status": "no_offline_access", "granted_scopes": SCOPES},
                           {"status": "no_offline_access", "granted_scopes": SCOPES}, NOW) == []


def test_task_events_are_one_per_task_that_ran_with_its_summary():
    tasks = {"drive_appdata": {"status": "ok", "files": 3}, "userinfo": {"status": "failed"},
             "calendar": {"status": "skipped"}}
    [event] = catalog.tasks_completed("s", "run-1", "partial", tasks, NOW)
    assert event["data"] == {"run_id": "run-1", "task": "drive_appdata", "outcome": "partial",
                             "summary": {"files": 3}}
    assert catalog.tasks_completed("s", "run-1", "partial", tasks, NOW)[0]["id"] == event["id"]


def test_a_disconnect_is_one_change_however_many_workers_finish_it():
    requested = NOW - dt.timedelta(minutes=5)
    one = catalog.disconnected("s", requested_by="user", revoked="revoked", requested_at=requested,
                               now=NOW)
    two = catalog.disconnected("s", requested_by="user", revoked="revoked", requested_at=requested,
                               now=NOW + dt.timedelta(minutes=1))
    assert one["id"] == two["id"] and one["data"] == {"requested_by": "user", "revoked": "revoked"}


def test_the_message_is_the_structured_json_with_content_type_and_type_attributes():
    event = catalog.needs_reauth("s", "revoked", NOW)
    data, attributes = to_message(event)
    assert attributes == {"content-type": CONTENT_TYPE, "type": "com.example.app.user.needs_reauth"}
    assert json.loads(data) == event


def test_security_events_name_the_change_by_its_record_and_only_some_are_published():
    revoked = catalog.security_event("sub-1", "grant_revoked", {"reauth_reason": "revoked_at_google"},
                                     record="r1", now=NOW)
    assert [(e["type"], e["data"]) for e in revoked] == [
        ("com.example.app.user.needs_reauth", {"reason": "revoked_at_google"})]
    # The same record (a redelivery) is the same id; another record another.
    assert catalog.security_event("sub-1", "grant_revoked", {"reauth_reason": "revoked_at_google"},
                                  record="r1", now=NOW)[0]["id"] == revoked[0]["id"]
    assert catalog.security_event("sub-1", "grant_revoked", {}, record="r2", now=NOW)[0]["id"] != revoked[0]["id"]
    [suspended] = catalog.security_event(
        "sub-1", "account_suspended",
        {"status": "suspended", "suspension": {"reason": "account_disabled", "google_reason": None}},
        record="r3", now=NOW)
    assert (suspended["type"], suspended["data"]) == (
        "com.example.app.user.suspended", {"reason": "account_disabled", "google_reason": None})
    [restored] = catalog.security_event("sub-1", "account_restored", {"status": "needs_reauth"},
                                        record="r4", now=NOW)
    assert restored["data"] == {"status": "needs_reauth"}
    for quiet in ("sessions_ended", "security_notice", "disconnect_requested", None):
        assert catalog.security_event("sub-1", quiet, {}, record="r5", now=NOW) == []
