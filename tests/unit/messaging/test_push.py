"""Push envelopes as Pub/Sub sends them, and everything else refused."""

from __future__ import annotations

import base64
import json

import pytest

from offline_access.errors import ClientError
from offline_access.messaging.push import MAX_BODY_BYTES, PushDelivery


def body(**overrides) -> bytes:
    envelope = {"message": {"data": base64.b64encode(b"payload").decode(), "messageId": "42",
                            "publishTime": "2026-06-01T12:00:00Z", "attributes": {"run_id": "r"}},
                "subscription": "projects/p/subscriptions/s", "deliveryAttempt": 3}
    envelope.update(overrides)
    return json.dumps(envelope).encode()


def test_an_envelope_with_a_delivery_attempt():
    delivery = PushDelivery.from_body(body())
    assert (delivery.message_id, delivery.data, delivery.attributes) == ("42", b"payload", {"run_id": "r"})
    assert (delivery.subscription, delivery.delivery_attempt) == ("projects/p/subscriptions/s", 3)
    assert "payload" not in repr(delivery)


def test_without_a_dead_letter_policy_there_is_no_attempt_count():
    envelope = json.loads(body())
    del envelope["deliveryAttempt"]
    assert PushDelivery.from_body(json.dumps(envelope).encode()).delivery_attempt is None


def test_the_snake_case_fields_the_service_also_sends():
    envelope = {"message": {"data": "", "message_id": "7", "publish_time": "t"}}
    delivery = PushDelivery.from_body(json.dumps(envelope).encode())
    assert (delivery.message_id, delivery.data, delivery.publish_time) == ("7", b"", "t")


@pytest.mark.parametrize("raw", [
    b"", b"[]", b"not json", json.dumps({"message": "x"}).encode(),
    body(message={"data": "***", "messageId": "1"}),
    body(message={"data": "", "messageId": ""}),
    body(message={"data": "", "messageId": "1", "attributes": {"n": 1}}),
    body(deliveryAttempt=0), body(deliveryAttempt="2"), body(deliveryAttempt=True),
    b" " * (MAX_BODY_BYTES + 1),
])
def test_what_is_not_an_envelope_is_a_client_error(raw):
    with pytest.raises(ClientError) as caught:
        PushDelivery.from_body(raw)
    assert caught.value.code == "invalid_push" and caught.value.status == 400
