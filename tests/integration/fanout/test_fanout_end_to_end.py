"""The whole fan-out over real processes and protocols: Cloud Scheduler's call to the job
function in pubsub mode, the real client library publishing to the Pub/Sub emulator, the
emulator pushing each message over HTTP to a worker function process, the worker processing
the users against the Firestore emulator and the local Google."""

from __future__ import annotations

import json
import tempfile
import time

import requests
from google.cloud import pubsub_v1

from localdev.processes import FunctionServer
from offline_access.offline.dead_letters import peek_dead_letters
from tests.integration.fanout.conftest import work
from tests.integration.job.conftest import refreshes

SCHEDULE_TIME = "2026-06-01T12:00:00Z"


def wait_for(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def lines_of(output) -> list[dict]:
    output.seek(0)
    return [json.loads(line) for line in output.read().decode().splitlines() if line.startswith("{")]


def test_a_scheduled_run_fans_out_through_pubsub_to_a_worker_process(
        users, pubsub_env, topology, google):
    subs = [users.sign_in(f"user{i}@example.com") for i in range(7)]
    users.expire_cached_access_tokens(*subs)
    worker_out, job_out = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    worker = FunctionServer("run_offline_worker", {**pubsub_env, "THREADS": "4"}, output=worker_out)
    try:
        names = topology(worker.url + "/")
        job = FunctionServer("run_offline_job", {**pubsub_env, "JOB_WORK_TOPIC": names.topic},
                             output=job_out)
        try:
            answer = requests.post(job.url, data="{}", timeout=60, headers={
                "X-CloudScheduler-ScheduleTime": SCHEDULE_TIME,
                "X-CloudScheduler-JobName": "offline-access-job", "Content-Type": "application/json"})
        finally:
            job.stop()
        run_id = "offline-access-job@" + SCHEDULE_TIME
        assert answer.status_code == 200
        assert answer.json() | {"duration_seconds": 0} == {
            "run_id": run_id, "mode": "pubsub", "users_dispatched": 7, "messages": 3, "pages": 1,
            "stopped": None, "duration_seconds": 0}
        assert wait_for(lambda: all(users.doc(s).get("job", {}).get("last_run_id") == run_id
                                    for s in subs)), "the worker did not process every user"
    finally:
        worker.stop()

    assert refreshes(google) == {sub: 1 for sub in subs}
    for sub in subs:
        assert users.doc(sub)["job"]["result"]["outcome"] == "succeeded"
    dispatch = [line for line in lines_of(job_out) if line.get("event") == "offline_job_dispatch"]
    assert len(dispatch) == 1 and dispatch[0]["backlog_age_seconds"] >= 0
    worker_lines = lines_of(worker_out)
    messages = [line for line in worker_lines
                if line.get("event") == "offline_job_message" and "users" in line]
    assert sorted(m["users"] for m in messages) == [1, 3, 3]
    assert {m["run_id"] for m in messages} == {run_id}
    assert {m["delivery_attempt"] for m in messages} <= {None, 1}
    done = [line for line in worker_lines if line.get("event") == "offline_job_user"]
    assert sorted(line["user"] for line in done) == sorted(map(users.exchange.user_refs.ref, subs))
    assert "@example.com" not in json.dumps(worker_lines)


def test_the_dead_letter_subscription_is_read_without_removing_anything(pubsub_emulator, topology,
                                                                          project):
    names = topology("http://127.0.0.1:9/unused")
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    message = work("offline-access-job@" + SCHEDULE_TIME, "111", "222")
    publisher.publish(names.dead_letter_topic, message.encode(), **message.attributes()).result(10)
    publisher.publish(names.dead_letter_topic, b"garbage").result(10)

    def peek():
        return peek_dead_letters(subscriber, names.dead_letter_subscription)

    assert wait_for(lambda: len(peek()) == 2, timeout=30)
    letters = sorted(peek(), key=lambda letter: letter.malformed or "")
    assert [(letter.run_id, letter.users, letter.malformed) for letter in letters][0] == (
        message.run_id, ("111", "222"), None)
    assert letters[1].users == () and "malformed" in letters[1].malformed
    assert len(peek()) == 2  # still there for the next look
