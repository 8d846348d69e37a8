"""One pushed security event token, end to end: verify, find the user, act once, log.

`receive` is the whole receiver behind the HTTP layer (`http_adapter.handle_risc_receiver`):

1. verify the token (`verifier.SetVerifier`); a bad one is refused with 400 and nothing done;
2. for each of its events, find the user: by `sub`, or for `token-revoked` by the keyed
   identifier of the stored refresh token (`store.refresh_token_ids`). A subject the product
   does not know (not a user, or disconnected already) is acknowledged and nothing else;
3. decide the change (`actions.plan`, no I/O) and write it in one atomic batch with the
   event's record (`store.security_events`) and its lifecycle events (`user.needs_reauth`,
   `user.suspended`, `user.restored`: `EventCatalog.security_event`), published once stored:
   a redelivered `jti` finds its record and changes nothing; a user document changed
   meanwhile is read and planned again;
4. for a hijacked account, ask the account lifecycle to finish the disconnect now (the internal
   `disconnect_user` function, as the account API does: this function holds no key that opens
   a token). If that call fails, the user is already `disconnecting`, and the next job run
   revokes the grant and deletes the records;
5. return one log line per event: the event type, the user's hashed reference, what was done.

`verification` events name no user: their `state` is logged and recorded (what
`offline-access risc verify` waits for). Events of unknown types, or whose subject names no
user the way the product knows them, are logged and acknowledged.

Firestore failing is `Unavailable` (503): Google delivers the token again, and the events
already acted on are then recognised by their records.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..accounts import lifecycle
from ..accounts.internal_call import DisconnectCaller
from ..dependencies import SharedDependencies
from ..store import security_events as records
from ..store.firestore_errors import firestore_unavailable
from ..store.job_claims import DueUser
from . import actions
from . import events as ev
from .verifier import SetVerifier

# Writes lost to a concurrent change of the same user before the event is given back to Google.
_ATTEMPTS = 6


@dataclass(kw_only=True)
class RiscDependencies(SharedDependencies):
    """Everything the receiver talks to, built once per instance (`wiring`).

    `disconnect_caller` is None without `DISCONNECT_FUNCTION_URL`: a hijacked account's
    disconnect is then finished by the next job run.
    """

    verifier: SetVerifier
    disconnect_caller: DisconnectCaller | None = None
    events: records.SecurityEventStore = field(init=False)
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self.events = records.SecurityEventStore(self.store)


def warm_up(deps: RiscDependencies) -> None:
    """A new instance's first work: Google's configuration and keys, the log key, Firestore."""
    deps.verifier.warm_up()
    deps.user_refs.check_ready()
    deps.store.connect()


def receive(deps: RiscDependencies, body: bytes) -> list[dict[str, Any]]:
    """Act on one pushed token; one log line's fields per event.

    Raises:
        SecurityEventRejected: the token is malformed, forged or not ours (nothing was done).
        Unavailable: Google's keys or Firestore are unavailable (Google delivers it again).
        Misconfigured: a key this function needs cannot be read.
    """
    claims = deps.verifier.verify(body)
    jti = str(claims["jti"])
    return [_act(deps, jti, event) for event in ev.events_of(claims)]


def _act(deps: RiscDependencies, jti: str, event: ev.SecurityEvent) -> dict[str, Any]:
    log: dict[str, Any] = {"event": "risc_event", "event_type": event.type, "jti": jti}
    if event.problem is not None:
        log.update(outcome="ignored", why=event.problem)
        if event.type == ev.UNSUPPORTED:
            log["event_type_uri"] = event.uri[:200]
        return log
    record = records.record_id(jti, event.uri)
    if deps.events.seen(record):  # a redelivery (the write below would refuse it anyway)
        log["outcome"] = "duplicate"
        return log
    if event.type == ev.VERIFICATION:
        outcome = deps.events.commit(record, {"event_type": event.type, "action": "state_logged",
                                              "verification_state": event.state, "user": None},
                                     deps.now())
        log.update(outcome="duplicate" if outcome == records.DUPLICATE else "state_logged",
                   state=event.state)
        return log
    for attempt in range(_ATTEMPTS):
        user, why = _subject(deps, event)
        if user is None:
            log.update(outcome="unknown_subject" if why is None else "unmatched",
                       **({"why": why} if why else {}))
            if event.sub is not None:
                log["user"] = deps.user_refs.ref(event.sub)
            return log
        log["user"] = deps.user_refs.ref(user.sub)
        now = deps.now()
        plan = actions.plan(event, user, now)
        announced = (deps.events.outbox.catalog.security_event(
            user.sub, plan.lifecycle, plan.user_fields, record=record, now=now)
            if deps.events.outbox is not None else [])
        outcome = deps.events.commit(
            record, {"event_type": event.type, "action": plan.action, "user": log["user"]}, now,
            user, plan.user_fields, announced)
        if outcome == records.DUPLICATE:
            log["outcome"] = "duplicate"
            return log
        if outcome == records.APPLIED:
            log.update(outcome=plan.action, **({"why": plan.why} if plan.why else {}))
            if plan.lifecycle:
                log["lifecycle"] = plan.lifecycle
            if plan.disconnect:
                log["disconnect"] = _disconnect(deps, user.sub)
            return log
        # CONFLICT: the user changed since it was read (a sign-in, the job, another event).
        deps.sleep(random.uniform(0, 0.02 * (attempt + 1)))
    raise firestore_unavailable()


def _subject(deps: RiscDependencies, event: ev.SecurityEvent) -> tuple[DueUser | None, str | None]:
    """The user an event is about, or None with why (None: no such user)."""
    if event.sub is not None:
        return deps.events.user(event.sub), None
    if deps.token_ids is None:
        return None, "no_token_id_key"
    assert event.token_alg is not None and event.token_id is not None  # a valid token-revoked
    query = deps.token_ids.of_event(event.token_alg, event.token_id)
    if query is None:
        return None, "malformed_identifier"
    field_path, value, _ = query
    found = deps.events.users_with(field_path, value)
    if len(found) > 1:
        # Two users share a token prefix: acting on either might end a grant that works.
        return None, "ambiguous"
    return (found[0], None) if found else (None, None)


def _disconnect(deps: RiscDependencies, sub: str) -> str:
    """Ask `disconnect_user` to revoke and delete now; what came of it, for the log."""
    if deps.disconnect_caller is None:
        return "left_to_the_job"
    result = deps.disconnect_caller.request(sub, lifecycle.REQUESTED_BY_SECURITY_EVENT)
    if result is None:
        return "left_to_the_job"
    return result.outcome
