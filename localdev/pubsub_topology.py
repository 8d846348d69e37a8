"""The job's Pub/Sub topics and subscriptions on the emulator, as Terraform creates them in the cloud.

`terraform/fanout.tf` is the production twin: a work topic whose push subscription delivers to
the worker (acknowledgement deadline, exponential retry, dead-letter policy), a dead-letter topic
and the pull subscription on it that operators read. The emulator accepts and stores every one of
these settings, pushes over plain HTTP, but neither redelivers nor dead-letters
(docs/design.md, "Fan-out"). Created with the real client library, against
`PUBSUB_EMULATOR_HOST`.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.api_core import exceptions as api_exceptions
from google.cloud import pubsub_v1

ACK_DEADLINE_SECONDS = 180
MAX_DELIVERY_ATTEMPTS = 10


@dataclass(frozen=True)
class WorkTopology:
    """Full names of the job's topics and subscriptions."""

    topic: str
    subscription: str
    dead_letter_topic: str
    dead_letter_subscription: str


def names(project: str, prefix: str) -> WorkTopology:
    return WorkTopology(
        topic=f"projects/{project}/topics/{prefix}-work",
        subscription=f"projects/{project}/subscriptions/{prefix}-work-push",
        dead_letter_topic=f"projects/{project}/topics/{prefix}-work-dead-letter",
        dead_letter_subscription=f"projects/{project}/subscriptions/{prefix}-work-dead-letter",
    )


def create(project: str, push_endpoint: str, *, prefix: str = "offline-access",
           ack_deadline_seconds: int = ACK_DEADLINE_SECONDS,
           max_delivery_attempts: int = MAX_DELIVERY_ATTEMPTS) -> WorkTopology:
    """Create (or keep, if they exist) the job's topics and subscriptions; returns their names."""
    topology = names(project, prefix)
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    for topic in (topology.topic, topology.dead_letter_topic):
        try:
            publisher.create_topic(name=topic)
        except api_exceptions.AlreadyExists:
            pass
    requests = [
        {"name": topology.subscription, "topic": topology.topic,
         "ack_deadline_seconds": ack_deadline_seconds,
         "push_config": {"push_endpoint": push_endpoint},
         "retry_policy": {"minimum_backoff": {"seconds": 10}, "maximum_backoff": {"seconds": 600}},
         "dead_letter_policy": {"dead_letter_topic": topology.dead_letter_topic,
                                "max_delivery_attempts": max_delivery_attempts}},
        {"name": topology.dead_letter_subscription, "topic": topology.dead_letter_topic,
         "ack_deadline_seconds": 60,
         "message_retention_duration": {"seconds": 7 * 24 * 3600}},
    ]
    for request in requests:
        try:
            subscriber.create_subscription(request=request)
        except api_exceptions.AlreadyExists:
            pass
    return topology


def delete(topology: WorkTopology) -> None:
    """Remove the topology (tests create one per test)."""
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    for subscription in (topology.subscription, topology.dead_letter_subscription):
        try:
            subscriber.delete_subscription(subscription=subscription)
        except api_exceptions.NotFound:
            pass
    for topic in (topology.topic, topology.dead_letter_topic):
        try:
            publisher.delete_topic(topic=topic)
        except api_exceptions.NotFound:
            pass
