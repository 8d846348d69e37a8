"""The dispatcher: due users read by a projection, page by page, and published with the real
client library to the emulator; nothing written to Firestore; failures reported, not hidden."""

from __future__ import annotations

import datetime as dt
import io
import json

import flask
import pytest
from google.cloud import pubsub_v1

from offline_access import http_adapter, wiring
from offline_access.errors import Unavailable
from offline_access.offline.dispatch import dispatch_run
from offline_access.offline.work_message import WorkMessage


def pull_all(subscription: str, expected: int) -> list[WorkMessage]:
    subscriber = pubsub_v1.SubscriberClient()
    received: dict[str, WorkMessage] = {}
    for _ in range(20):
        answer = subscriber.pull(subscription=subscription, max_messages=100, timeout=10)
        for item in answer.received_messages:
            received[item.message.message_id] = WorkMessage.decode(item.message.data)
        if answer.received_messages:
            subscriber.acknowledge(subscription=subscription,
                                   ack_ids=[m.ack_id for m in answer.received_messages])
        if len(received) >= expected:
            break
    return list(received.values())


@pytest.fixture
def pull_topology(topology):
    """The job's topology, with a pull subscription on the work topic to read what was sent."""
    names = topology("http://127.0.0.1:9/nobody-listens")
    pull = names.subscription.replace("-push", "-pull")
    pubsub_v1.SubscriberClient().create_subscription(name=pull, topic=names.topic)
    yield names, pull
    pubsub_v1.SubscriberClient().delete_subscription(subscription=pull)


def dispatcher(pubsub_env, topic: str, **env: str):
    deps = wiring.build_job_dependencies({**pubsub_env, "JOB_WORK_TOPIC": topic, **env})
    deps.log_stream = io.StringIO()
    return deps


def test_due_users_are_published_in_messages_of_the_configured_size(users, pubsub_env,
                                                                     pull_topology, monkeypatch):
    names, pull = pull_topology
    subs = [users.sign_in(f"user{i}@example.com") for i in range(7)]
    later = users.sign_in("later@example.com")
    users.update(later, {"next_run_at": dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)})
    before = {sub: users.doc(sub) for sub in subs}
    deps = dispatcher(pubsub_env, names.topic, JOB_PAGE_SIZE="4")

    summary = dispatch_run(deps, "run-1")

    assert (summary.users, summary.messages, summary.pages, summary.stopped) == (7, 3, 2, None)
    messages = pull_all(pull, 3)
    assert sorted(len(m.users) for m in messages) == [1, 3, 3]
    assert sorted(s for m in messages for s in m.users) == sorted(subs)
    assert {m.run_id for m in messages} == {"run-1"}
    assert all(users.doc(sub) == before[sub] for sub in subs)  # the dispatcher writes nothing
    (line,) = [json.loads(x) for x in deps.log_stream.getvalue().splitlines()]
    assert line["event"] == "offline_job_dispatch" and line["users_dispatched"] == 7
    assert line["backlog_age_seconds"] >= 0
    for message in messages:  # no token, no profile: ids and the run only
        assert b"1//" not in message.encode() and b"@example.com" not in message.encode()


def test_a_topic_that_does_not_exist_fails_the_dispatch_with_503(users, pubsub_env, project):
    users.sign_in("alice@example.com")
    deps = dispatcher(pubsub_env, f"projects/{project}/topics/never-created")
    with pytest.raises(Unavailable) as caught:
        dispatch_run(deps, "run-1")
    assert caught.value.dependency == "pubsub"

    app = flask.Flask("job")
    app.add_url_rule("/", "job", lambda: http_adapter.handle_offline_job(flask.request, lambda: deps),
                     methods=["POST"])
    answer = app.test_client().post("/", data="{}")
    assert answer.status_code == 503 and answer.headers["Retry-After"]


def test_nobody_due_publishes_nothing_and_reads_a_zero_backlog(pubsub_env, pull_topology, users):
    names, _ = pull_topology
    deps = dispatcher(pubsub_env, names.topic)
    summary = dispatch_run(deps, "run-1")
    assert (summary.users, summary.messages, summary.backlog_age_seconds) == (0, 0, 0.0)


def test_pubsub_mode_without_a_topic_is_a_configuration_error(function_env):
    def build():
        return wiring.build_job_dependencies({**function_env, "JOB_MODE": "pubsub"})

    app = flask.Flask("job")
    app.add_url_rule("/", "job", lambda: http_adapter.handle_offline_job(flask.request, build),
                     methods=["POST"])
    answer = app.test_client().post("/", data="{}")
    assert answer.status_code == 500 and answer.get_json()["error"] == "server_misconfigured"
