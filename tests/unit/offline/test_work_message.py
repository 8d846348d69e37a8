"""The work message: what the dispatcher writes is what the worker reads, and nothing else is."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offline_access.errors import ClientError
from offline_access.offline.dispatch import chunks
from offline_access.offline.work_message import MAX_USERS, WorkMessage

AT = dt.datetime(2026, 6, 1, 12, 0, 3, tzinfo=dt.timezone.utc)


def test_round_trip_and_attributes():
    message = WorkMessage(run_id="offline-access-job@2026-06-01T12:00:00Z", users=("1", "2"),
                          dispatched_at=AT)
    assert WorkMessage.decode(message.encode()) == message
    assert message.attributes() == {"run_id": message.run_id, "users": "2"}
    assert json.loads(message.encode())["dispatched_at"] == "2026-06-01T12:00:03Z"


def test_a_user_listed_twice_is_listed_once():
    data = json.dumps({"v": 1, "run_id": "r", "users": ["1", "2", "1"],
                       "dispatched_at": "2026-06-01T12:00:03Z"}).encode()
    assert WorkMessage.decode(data).users == ("1", "2")


@given(st.lists(st.text(alphabet="0123456789", min_size=1, max_size=21), min_size=1, max_size=40,
                unique=True))
def test_any_list_of_subs_survives_the_trip(subs):
    message = WorkMessage(run_id="r", users=tuple(subs), dispatched_at=AT)
    assert WorkMessage.decode(message.encode()).users == tuple(subs)


def good(**changes) -> bytes:
    body = {"v": 1, "run_id": "r", "users": ["1"], "dispatched_at": "2026-06-01T12:00:03Z"}
    body.update(changes)
    return json.dumps(body).encode()


@pytest.mark.parametrize("data", [
    b"\xff", b"null", b"[]", good(v=2), good(run_id=""), good(run_id="a b"), good(run_id=7),
    good(users=[]), good(users="1"), good(users=[1]), good(users=["a/b"]), good(users=[".."]),
    good(users=["__x__"]), good(users=["x" * 256]), good(users=[str(i) for i in range(MAX_USERS + 1)]),
    good(dispatched_at="yesterday"), good(dispatched_at="2026-06-01T12:00:03"),
])
def test_anything_else_is_refused_as_a_client_error(data):
    with pytest.raises(ClientError) as caught:
        WorkMessage.decode(data)
    assert caught.value.code == "invalid_message" and caught.value.status == 400


def test_users_are_split_into_messages_in_order():
    assert chunks(["a", "b", "c", "d", "e"], 2) == [("a", "b"), ("c", "d"), ("e",)]
    assert chunks([], 3) == []
