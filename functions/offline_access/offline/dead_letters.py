"""What an operator sees of dead-lettered work: plain functions for the operator CLI.

A work message that failed its last delivery attempt goes to the dead-letter topic, whose pull
subscription keeps it (seven days by default) for an operator; the worker's last attempt also
records each user it could not process as dead-lettered on the user's document
(`job.dead_letter`), until the user's next result clears it. So there are two views:

- `dead_lettered_users`: the users whose last dead-lettered message has not been followed by a
  result (from Firestore; what the metrics' `dead_lettered` outcome counted);
- `peek_dead_letters`: the messages themselves, read from the dead-letter subscription and left
  there (their acknowledgement deadline is set back to zero), including those of a last attempt
  that crashed before it could record anything.

Neither changes a user. The users stay due: the next dispatch sends them again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ..errors import ClientError
from ..store.job_claims import JobStore
from ..store.users import stored_time
from ..structured_log import UserRefs
from .work_message import WorkMessage


@dataclass(frozen=True)
class DeadLetteredUser:
    """A user a dead-lettered message left unprocessed."""

    sub: str
    user: str  # the log reference (`structured_log.UserRefs.ref`)
    at: dt.datetime | None
    run_id: str | None
    message_id: str | None
    reason: str | None
    attempts: int | None
    status: str | None


@dataclass(frozen=True)
class DeadLetter:
    """A message in the dead-letter subscription."""

    message_id: str
    publish_time: dt.datetime | None
    delivery_attempt: int | None
    run_id: str | None
    users: tuple[str, ...]
    malformed: str | None  # why the data is not a work message, if it is not one


def dead_lettered_users(jobs: JobStore, user_refs: UserRefs, limit: int = 100) -> list[DeadLetteredUser]:
    """The users marked dead-lettered and not processed since, newest first.

    Raises:
        Unavailable: Firestore failed or timed out.
    """
    found = []
    for user in jobs.dead_lettered(limit):
        record: dict[str, Any] = user.job.get("dead_letter") or {}
        attempts = record.get("attempts")
        found.append(DeadLetteredUser(
            sub=user.sub, user=user_refs.ref(user.sub), at=stored_time(record.get("at")),
            run_id=record.get("run_id"), message_id=record.get("message_id"),
            reason=record.get("reason"), attempts=attempts if isinstance(attempts, int) else None,
            status=user.data.get("status")))
    return found


def peek_dead_letters(subscriber: Any, subscription: str, max_messages: int = 100,
                      timeout: float = 10.0) -> list[DeadLetter]:
    """Read up to `max_messages` from the dead-letter subscription without removing them.

    `subscriber` is a `google.cloud.pubsub_v1.SubscriberClient`. The messages pulled are handed
    back at once (acknowledgement deadline 0), so they stay for the next look and for the
    backlog metric the alert watches.
    """
    answer = subscriber.pull(subscription=subscription, max_messages=max_messages,
                             timeout=timeout)
    received = list(answer.received_messages)
    if received:
        subscriber.modify_ack_deadline(subscription=subscription,
                                       ack_ids=[m.ack_id for m in received],
                                       ack_deadline_seconds=0)
    letters = []
    for item in received:
        message = item.message
        run_id: str | None = None
        users: tuple[str, ...] = ()
        malformed: str | None = None
        try:
            work = WorkMessage.decode(bytes(message.data))
            run_id, users = work.run_id, work.users
        except ClientError as exc:
            malformed = exc.message
        publish_time = message.publish_time
        letters.append(DeadLetter(
            message_id=message.message_id,
            publish_time=publish_time if isinstance(publish_time, dt.datetime) else None,
            delivery_attempt=item.delivery_attempt or None,
            run_id=run_id, users=users, malformed=malformed))
    return letters
