"""The job's batched results: their events are recorded before the (non-atomic) BatchWrite,
and only the events of the writes that are found stored are ever published."""

from __future__ import annotations

import datetime as dt

from offline_access.events.outbox import Outbox
from tests.integration.events.conftest import outbox_docs
from tests.integration.events.test_lifecycle_events import PREFIX, flush, job_for

RUN = "schedule@2026-06-01T12:00:00Z"
NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


def test_an_intent_left_by_a_dead_instance_publishes_only_the_changes_found_stored(users, event_topic):
    alice, bob = users.sign_in("alice@example.com"), users.sign_in("bob@example.com")
    flush(users)
    event_topic.pull(2)
    outbox = users.store.outbox
    events = [(outbox.catalog.tasks_completed(sub, RUN, "succeeded", {"userinfo": {"status": "ok"}}, NOW)[0],
               users.store.ref(sub).path, RUN) for sub in (alice, bob)]
    # The instance recorded both events, then died: only alice's result reached Firestore.
    outbox.stage_intent(events, NOW)
    users.update(alice, {"job.last_run_id": RUN})
    users.update(bob, {"job.last_run_id": "schedule@2026-06-01T11:00:00Z"})

    assert outbox.publish_leftovers() == 1

    [received] = event_topic.pull(1)
    assert received.event == events[0][0] and received.event["subject"] == alice
    assert outbox_docs(users) == []
    assert outbox.publish_leftovers() == 0 and event_topic.pull(0, timeout=1.5) == []


def test_a_batch_whose_events_were_not_published_is_published_by_the_next_run(
        users, event_topic, events_env, google, monkeypatch):
    alice, bob = users.sign_in("alice@example.com"), users.sign_in("bob@example.com")
    flush(users)
    event_topic.pull(2)
    # The first run's instance stops after its BatchWrite, before it publishes.
    monkeypatch.setattr(Outbox, "sent", lambda self, staged, events=None: None)
    job_for(events_env).run(RUN)
    monkeypatch.undo()
    assert event_topic.pull(0, timeout=1.5) == []
    [intent] = outbox_docs(users)
    assert {change["run_id"] for change in intent["changes"]} == {RUN}
    assert len(intent["events"]) == 4  # two tasks for each of two users

    job_for(events_env).run("schedule@2026-06-01T13:00:00Z")

    received = [r for r in event_topic.pull(4) if r.event["data"]["run_id"] == RUN]
    assert sorted(event_topic.types(received)) == ["offline.task_completed"] * 4
    assert {r.event["subject"] for r in received} == {alice, bob}
    assert sorted(r.event["id"] for r in received) == sorted(e["id"] for e in intent["events"])
    assert all(r.event["type"].startswith(PREFIX) for r in received)


def test_a_job_run_leaves_no_outbox_record(users, event_topic, events_env):
    users.sign_in("alice@example.com")
    flush(users)
    event_topic.pull(1)

    job_for(events_env).run(RUN)
    event_topic.pull(2)

    assert outbox_docs(users) == []
