"""Fan-out on Pub/Sub against the real stack: the official Pub/Sub emulator, the Firestore
emulator, the local Google and Secret Manager, and the worker either in-process (through the
same HTTP adapter) or as a functions-framework process the emulator pushes to over HTTP.

The emulator neither redelivers nor dead-letters (docs/design.md, "Fan-out"), so the tests make
the deliveries Pub/Sub would make themselves: the same envelope twice, at once or in a row, and
an envelope whose `deliveryAttempt` says it is the last.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
import json
import uuid
from typing import Any

import flask
import pytest

from localdev import pubsub_topology
from offline_access import http_adapter, wiring
from offline_access.offline.work_message import WorkMessage
from offline_access.offline.worker import Worker
from tests.integration.job.conftest import FAST_RETRIES, Users

MAX_ATTEMPTS = 5


@pytest.fixture
def users(google, function_env, opener) -> Users:
    return Users(google, function_env, opener)


@pytest.fixture
def topology(pubsub_emulator, project):
    """A fresh set of the job's topics and subscriptions, pushing to a URL set by the test."""
    made = []

    def make(push_endpoint: str) -> pubsub_topology.WorkTopology:
        made.append(pubsub_topology.create(project, push_endpoint,
                                           prefix=f"t{uuid.uuid4().hex[:8]}",
                                           max_delivery_attempts=MAX_ATTEMPTS))
        return made[-1]

    yield make
    for each in made:
        pubsub_topology.delete(each)


@pytest.fixture
def pubsub_env(function_env, pubsub_emulator, project) -> dict[str, str]:
    return {**function_env, "PUBSUB_EMULATOR_HOST": pubsub_emulator, "JOB_MODE": "pubsub",
            "JOB_WORK_TOPIC": f"projects/{project}/topics/unused",
            "JOB_MAX_DELIVERY_ATTEMPTS": str(MAX_ATTEMPTS), "JOB_MESSAGE_USERS": "3"}


class WorkerInstance:
    """A `run_offline_worker` instance served through the real HTTP adapter, its log captured."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.log = io.StringIO()
        worker.deps.log_stream = self.log
        app = flask.Flask("worker-under-test")
        app.add_url_rule("/", "push", lambda: http_adapter.handle_worker_push(flask.request, lambda: worker),
                         methods=["GET", "POST"])
        self.client = app.test_client()

    def push(self, body: bytes):
        return self.client.post("/", data=body, headers={"Content-Type": "application/json"})

    def lines(self, event: str | None = None) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.log.getvalue().splitlines() if line]
        return [line for line in lines if event is None or line.get("event") == event]


@pytest.fixture
def make_worker(pubsub_env):
    def make(env: dict[str, str] | None = None) -> WorkerInstance:
        worker = wiring.build_worker({**pubsub_env, **(env or {})})
        worker.deps = dataclasses.replace(worker.deps, call_retries=FAST_RETRIES)
        return WorkerInstance(worker)
    return make


def work(run_id: str, *subs: str) -> WorkMessage:
    return WorkMessage(run_id=run_id, users=subs, dispatched_at=dt.datetime.now(dt.timezone.utc))


def envelope(message: WorkMessage | bytes, *, message_id: str = "1001",
             attempt: int | None = 1, subscription: str = "projects/p/subscriptions/s") -> bytes:
    """The body of a push request, as Pub/Sub sends it."""
    data = message if isinstance(message, bytes) else message.encode()
    body: dict[str, Any] = {
        "message": {"data": base64.b64encode(data).decode(), "messageId": message_id,
                    "publishTime": "2026-06-01T12:00:01Z",
                    "attributes": {} if isinstance(message, bytes) else message.attributes()},
        "subscription": subscription,
    }
    if attempt is not None:
        body["deliveryAttempt"] = attempt
    return json.dumps(body).encode()
