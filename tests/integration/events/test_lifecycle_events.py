"""Each lifecycle transition publishes exactly one event, after the change is stored, as a
CloudEvent; a failed publish is retried by the next job run; duplicates carry the same id."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os

from offline_access import wiring
from offline_access.accounts import lifecycle
from offline_access.events.outbox import Outbox
from tests.integration.events.conftest import outbox_docs
from tests.integration.job.conftest import ALL_SCOPES, FAST_RETRIES, JobInstance
from tests.stack_values import DRIVE_APPDATA

PREFIX = "dev.offline-access."


def job_for(env) -> JobInstance:
    return JobInstance(dataclasses.replace(wiring.build_job_dependencies(env),
                                           call_retries=FAST_RETRIES))


def flush(users) -> None:
    assert users.store.outbox.flush(10)


def test_a_first_sign_in_publishes_one_user_connected_cloudevent(users, event_topic):
    alice = users.sign_in("alice@example.com")
    flush(users)

    [received] = event_topic.pull(1)

    event = received.event
    assert received.attributes == {"content-type": "application/cloudevents+json",
                                   "type": PREFIX + "user.connected"}
    assert event["specversion"] == "1.0" and event["type"] == PREFIX + "user.connected"
    assert event["subject"] == alice and event["source"].startswith("//offline-access/projects/")
    assert len(event["id"]) == 32 and event["datacontenttype"] == "application/json"
    assert dt.datetime.fromisoformat(event["time"].replace("Z", "+00:00")).tzinfo is not None
    assert event["data"] == {"status": "active", "offline_access": True,
                             "email": "alice@example.com",
                             "granted_scopes": sorted(event["data"]["granted_scopes"])}
    assert DRIVE_APPDATA in event["data"]["granted_scopes"]
    assert outbox_docs(users) == []  # published, then deleted
    assert "refresh_token" not in json.dumps(event) and "ya29" not in json.dumps(event)


def test_signing_in_again_with_nothing_changed_publishes_nothing(users, event_topic):
    users.sign_in("alice@example.com")
    flush(users)
    event_topic.pull(1)

    users.sign_in("alice@example.com")
    flush(users)

    assert event_topic.pull(0, timeout=1.5) == []


def test_more_scopes_at_a_sign_in_publish_user_scopes_changed(users, event_topic):
    alice = users.sign_in("alice@example.com", granted=["openid", "email", "profile"])
    flush(users)
    event_topic.pull(1)

    users.sign_in("alice@example.com")
    flush(users)

    [received] = event_topic.pull(1)
    assert received.event["type"] == PREFIX + "user.scopes_changed"
    assert received.event["subject"] == alice
    assert received.event["data"]["added"] == [DRIVE_APPDATA]
    assert received.event["data"]["removed"] == []


def test_a_dead_grant_publishes_needs_reauth_and_a_new_sign_in_reconnected(
        users, event_topic, events_env, google):
    alice = users.sign_in("alice@example.com")
    flush(users)
    event_topic.pull(1)
    google.revoke_grant(alice)
    users.expire_cached_access_tokens(alice)
    job = job_for(events_env)

    assert job.run("schedule@2026-06-01T12:00:00Z").needs_reauth == 1

    [received] = event_topic.pull(1)
    assert received.event["type"] == PREFIX + "user.needs_reauth"
    assert received.event["data"] == {"reason": "revoked"}
    assert users.doc(alice)["status"] == "needs_reauth"

    users.sign_in("alice@example.com", prompt="consent")
    flush(users)

    [again] = event_topic.pull(1)
    assert again.event["type"] == PREFIX + "user.reconnected"
    assert again.event["data"]["previous_status"] == "needs_reauth"
    assert again.event["data"]["status"] == "active"


def test_a_job_run_publishes_one_task_completed_per_task_with_its_summary(
        users, event_topic, events_env, google):
    alice = users.sign_in("alice@example.com")
    google.drive_files(alice, [{"name": "a.json"}, {"name": "b.json"}])
    flush(users)
    event_topic.pull(1)

    job_for(events_env).run("schedule@2026-06-01T12:00:00Z")

    received = event_topic.pull(2)
    assert sorted(event_topic.types(received)) == ["offline.task_completed"] * 2
    by_task = {r.event["data"]["task"]: r.event["data"] for r in received}
    assert by_task["drive_appdata"]["summary"] == {"files": 2}
    assert by_task["drive_appdata"]["run_id"] == "schedule@2026-06-01T12:00:00Z"
    assert by_task["drive_appdata"]["outcome"] == "succeeded"
    assert set(by_task) == {"drive_appdata", "userinfo"}
    assert len({r.event["id"] for r in received}) == 2


def test_a_disconnect_publishes_user_disconnected_after_the_delete(users, event_topic, events_env):
    alice = users.sign_in("alice@example.com")
    flush(users)
    event_topic.pull(1)
    deps = wiring.build_disconnect_dependencies(events_env)

    result = lifecycle.revoke_and_delete(deps, alice, requested_by="user")
    assert deps.store.outbox.flush(10)

    assert result.finished
    [received] = event_topic.pull(1)
    assert received.event["type"] == PREFIX + "user.disconnected"
    assert received.event["data"] == {"requested_by": "user", "revoked": "revoked"}
    assert users.doc(alice) is None and outbox_docs(users) == []
    # Again: nothing is left, nothing more is published.
    assert lifecycle.revoke_and_delete(deps, alice, requested_by="user").outcome == "already_gone"
    assert event_topic.pull(0, timeout=1.5) == []


def test_a_failed_publish_keeps_the_change_and_the_next_run_publishes_the_event(
        google, events_env, opener, event_topic, monkeypatch):
    from tests.integration.job.conftest import Users

    live = os.environ["PUBSUB_EMULATOR_HOST"]
    # This instance's Pub/Sub is unreachable (the client reads the variable when it is built).
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")
    users = Users(google, events_env, opener)
    users.store.outbox.publisher.timeout = 1.0
    alice = users.sign_in("alice@example.com")
    flush(users)

    assert users.store.outbox.publisher.failed == 1
    assert users.doc(alice)["status"] == "active"  # the sign-in is not undone
    [left] = outbox_docs(users)
    [event] = left["events"]
    assert event["type"] == PREFIX + "user.connected" and event["subject"] == alice
    assert event_topic.pull(0, timeout=1.5) == []

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", live)
    job_for(events_env).run("schedule@2026-06-01T12:00:00Z")

    received = event_topic.pull(1)
    connected = [r for r in received if r.event["type"] == PREFIX + "user.connected"]
    assert [r.event["id"] for r in connected] == [event["id"]]
    assert outbox_docs(users) == []


def test_a_duplicate_delivery_carries_the_same_id(users, event_topic, events_env, monkeypatch):
    # An instance publishes, then dies before it deletes the outbox record: the next run
    # publishes the same events again.
    monkeypatch.setattr(Outbox, "sent",
                        lambda self, staged: self.publisher.submit(staged.events, lambda: None))
    alice = users.sign_in("alice@example.com")
    flush(users)
    monkeypatch.undo()

    job_for(events_env).run("schedule@2026-06-01T12:00:00Z")

    connected = [r for r in event_topic.pull(2)
                 if r.event["type"] == PREFIX + "user.connected"]
    assert len(connected) == 2 and connected[0].message_id != connected[1].message_id
    assert connected[0].event == connected[1].event and connected[0].event["subject"] == alice
    # What a subscriber does: keep the first of each id.
    assert len({r.event["id"] for r in connected}) == 1


def test_without_a_topic_nothing_is_staged(google, function_env, opener):
    from tests.integration.job.conftest import Users

    users = Users(google, function_env, opener)
    users.sign_in("alice@example.com")
    users.sign_in("alice@example.com", granted=ALL_SCOPES[:3])

    assert not users.store.outbox.enabled and outbox_docs(users) == []


def test_the_token_api_finding_a_dead_grant_publishes_needs_reauth_once(
        users, event_topic, events_env, google, google_server):
    from tests.integration.tokenapi.conftest import APP_SA, AUDIENCE, TokenApi, id_token_for

    alice = users.sign_in("alice@example.com")
    flush(users)
    event_topic.pull(1)
    google.revoke_grant(alice)
    users.expire_cached_access_tokens(alice)
    env = {**events_env, "TOKEN_API_AUDIENCES": AUDIENCE, "TOKEN_API_ALLOWED_CALLERS": APP_SA}
    deps = dataclasses.replace(wiring.build_token_api_dependencies(env), call_retries=FAST_RETRIES)
    api = TokenApi(deps, id_token_for(google_server.service_account_key(APP_SA, "demo-test")))

    assert [api.token_for(alice).status for _ in range(2)] == [409, 409]
    assert deps.store.outbox.flush(10)

    [received] = event_topic.pull(1)
    assert received.event["type"] == PREFIX + "user.needs_reauth"
    assert received.event["data"] == {"reason": "revoked"} and received.event["subject"] == alice
