"""A Pub/Sub push delivery: the HTTP request the push subscription sends, as a value.

The body is JSON:

    {"message": {"data": "<base64>", "attributes": {...}, "messageId": "...",
                 "publishTime": "..."},
     "subscription": "projects/P/subscriptions/S", "deliveryAttempt": 3}

`deliveryAttempt` is present when the subscription has a dead-letter policy: it counts this
delivery (1 for the first), so the worker knows its last chance before Pub/Sub forwards the
message to the dead-letter topic. The real service authenticates with an OIDC token, which Cloud
Run checks before the request reaches the function (`run.invoker`); the emulator sends none.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import ClientError

# Pub/Sub messages are at most 10 MB; work messages a few kB. Anything larger is not ours.
MAX_BODY_BYTES = 256 * 1024


def _invalid(detail: str) -> ClientError:
    return ClientError(f"The push request is malformed: {detail}.", code="invalid_push")


@dataclass(frozen=True)
class PushDelivery:
    """One delivery of one message."""

    message_id: str
    data: bytes = field(repr=False)
    attributes: dict[str, str]
    subscription: str
    delivery_attempt: int | None  # None without a dead-letter policy
    publish_time: str = ""

    @classmethod
    def from_body(cls, body: bytes) -> PushDelivery:
        """Parse a push request's body.

        Raises:
            ClientError: the body is not a push envelope (`invalid_push`).
        """
        if len(body) > MAX_BODY_BYTES:
            raise _invalid("the body is too large")
        try:
            envelope: Any = json.loads(body)
        except ValueError:
            raise _invalid("the body is not JSON") from None
        message = envelope.get("message") if isinstance(envelope, dict) else None
        if not isinstance(message, dict):
            raise _invalid("there is no message")
        message_id = message.get("messageId") or message.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            raise _invalid("the message has no id")
        try:
            data = base64.b64decode(message.get("data") or "", validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise _invalid("the message data is not base64") from None
        attributes = message.get("attributes") or {}
        if not isinstance(attributes, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()):
            raise _invalid("the attributes are not strings")
        attempt = envelope.get("deliveryAttempt")
        if attempt is not None and (not isinstance(attempt, int) or isinstance(attempt, bool)
                                    or attempt < 1):
            raise _invalid("deliveryAttempt is not a positive whole number")
        subscription = envelope.get("subscription")
        return cls(
            message_id=message_id,
            data=data,
            attributes=dict(attributes),
            subscription=subscription if isinstance(subscription, str) else "",
            delivery_attempt=attempt,
            publish_time=str(message.get("publishTime") or message.get("publish_time") or ""),
        )
