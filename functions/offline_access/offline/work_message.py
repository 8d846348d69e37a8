"""The message the dispatcher publishes and a worker receives: a run id and some users, no token.

Data (UTF-8 JSON, the Pub/Sub message's `data`):

    {"v": 1, "run_id": "offline-access-job@2026-06-01T12:00:00Z",
     "users": ["1098...", "1172..."], "dispatched_at": "2026-06-01T12:00:03.120Z"}

`users` are user document ids (Google's `sub`), 1 to `MAX_USERS` of them, each once. Attributes
repeat `run_id` and the user count for filters and the console; the worker trusts only the
data. Nothing in a message opens anything: the worker reads each user's document, claims it for
the run and works from what it reads.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import ClientError

VERSION = 1
# A message's users are claimed in one BatchWrite, which takes 500 writes.
MAX_USERS = 500
_RUN_ID = re.compile(r"^[A-Za-z0-9_./:@+\-]{1,600}$")
# Firestore document ids: no slash, not `.` or `..`, not `__x__`; Google's subs are digits.
_USER = re.compile(r"^(?!\.\.?$)(?!__.*__$)[^/]{1,255}$")


def _invalid(detail: str) -> ClientError:
    return ClientError(f"The work message is malformed: {detail}.", code="invalid_message")


@dataclass(frozen=True)
class WorkMessage:
    """Users to process for a run."""

    run_id: str
    users: tuple[str, ...]
    dispatched_at: dt.datetime

    def encode(self) -> bytes:
        return json.dumps({
            "v": VERSION,
            "run_id": self.run_id,
            "users": list(self.users),
            "dispatched_at": self.dispatched_at.isoformat().replace("+00:00", "Z"),
        }, separators=(",", ":")).encode()

    def attributes(self) -> dict[str, str]:
        return {"run_id": self.run_id, "users": str(len(self.users))}

    @classmethod
    def decode(cls, data: bytes) -> WorkMessage:
        """The message in `data`.

        Raises:
            ClientError: `data` is not a work message of this version (`invalid_message`).
        """
        try:
            body: Any = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _invalid("not UTF-8 JSON") from None
        if not isinstance(body, dict) or body.get("v") != VERSION:
            raise _invalid(f"not an object of version {VERSION}")
        run_id, users, dispatched = body.get("run_id"), body.get("users"), body.get("dispatched_at")
        if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
            raise _invalid("run_id is missing or malformed")
        if not isinstance(users, list) or not 1 <= len(users) <= MAX_USERS:
            raise _invalid(f"users must be a list of 1 to {MAX_USERS} ids")
        if not all(isinstance(u, str) and _USER.match(u) for u in users):
            raise _invalid("a user id is malformed")
        try:
            at = dt.datetime.fromisoformat(str(dispatched).replace("Z", "+00:00"))
        except ValueError:
            raise _invalid("dispatched_at is not a time") from None
        if at.tzinfo is None:
            raise _invalid("dispatched_at has no time zone")
        # One write per document in a BatchWrite: a user listed twice is listed once.
        return cls(run_id=run_id, users=tuple(dict.fromkeys(users)), dispatched_at=at)
