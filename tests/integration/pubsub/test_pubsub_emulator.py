"""The official Pub/Sub emulator, as the events and the fan-out use it: the real client library
publishes and pulls, and a push subscription delivers to a plain HTTP endpoint the way the real
service does (a JSON envelope with the base64 data, the message id and the attributes)."""

from __future__ import annotations

import base64
import json
import queue
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.cloud import pubsub_v1


def names(project: str) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return (f"projects/{project}/topics/t-{suffix}", f"projects/{project}/subscriptions/s-{suffix}")


def test_publish_then_pull_with_the_client_library(pubsub_emulator, project):
    topic, subscription = names(project)
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=topic)
    ids = {publisher.publish(topic, f"m{i}".encode(), kind="test").result(timeout=10)
           for i in range(3)}
    received = {}
    for _ in range(10):
        answer = subscriber.pull(subscription=subscription, max_messages=10, timeout=10)
        for message in answer.received_messages:
            received[message.message.message_id] = message
        if set(received) >= ids:
            break
    assert set(received) == ids
    assert {m.message.attributes["kind"] for m in received.values()} == {"test"}
    subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in received.values()])


def test_push_delivers_the_envelope_to_an_http_endpoint(pubsub_emulator, project):
    deliveries: queue.Queue[dict] = queue.Queue()

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            length = int(self.headers["Content-Length"])
            deliveries.put({"body": json.loads(self.rfile.read(length)),
                            "authorization": self.headers.get("Authorization")})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        topic, subscription = names(project)
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        publisher.create_topic(name=topic)
        subscriber.create_subscription(request={
            "name": subscription, "topic": topic, "ack_deadline_seconds": 20,
            "push_config": {"push_endpoint": f"http://127.0.0.1:{server.server_port}/push"},
        })
        message_id = publisher.publish(topic, b'{"hello": 1}', run_id="r1").result(timeout=10)
        delivery = deliveries.get(timeout=30)
        envelope = delivery["body"]
        assert envelope["subscription"] == subscription
        assert envelope["message"]["messageId"] == message_id
        assert base64.b64decode(envelope["message"]["data"]) == b'{"hello": 1}'
        assert envelope["message"]["attributes"] == {"run_id": "r1"}
        # The emulator mints no OIDC token: push authentication is Cloud Run IAM's, in production.
        assert delivery["authorization"] is None
    finally:
        server.shutdown()
