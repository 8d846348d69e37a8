"""What each security event does to a user document, decided without I/O.

- `sessions-revoked`: ends every session of the user (`session_generation` + 1):
  `sessions_ended`.
- `tokens-revoked`: deletes the sealed tokens and their identifiers; the user is
  `needs_reauth (revoked_at_google)`: `tokens_deleted`.
- `token-revoked`, matched by the token's identifier: the same for the user holding that
  token: `token_deleted`.
- `account-disabled` with `reason: hijacking`: marks the user `disconnecting` (sessions ended,
  no more offline work) and asks for the disconnect (revoke at Google, delete everything):
  `disconnect_requested`.
- `account-disabled` for `bulk-account` or no reason: status `suspended`, so no offline work,
  and the page says why (sessions are kept so that the user can read it): `suspended`.
- `account-enabled`: ends the suspension, back to `active` (due at once), or `needs_reauth` if
  the grant died meanwhile: `restored`.
- `account-credential-change-required`: a `security_notice` that the page and `/api/me` show
  until the user signs in again: `notice_set`.

Every event for a known user is also appended to the user's `security_events` (the newest
`HISTORY_LENGTH`, with no personal data), which `offline-access users show` lists; that is the
whole write when the event changes nothing (`no_change`, with `why`).

Order and repetition. Google may deliver late, and again: each decision is idempotent (a second
`sessions-revoked` ends sessions begun since, which is what it asks), and events are weighed by
when Google issued them (`iat`), not by when they arrive:

- a grant stored after the event was issued is newer than what Google revoked: it is kept
  (`grant_newer_than_event`);
- an `account-disabled` issued before the last `account-enabled` changes nothing, nor does an
  `account-enabled` issued before the suspension it would end (`superseded`);
- a user already `disconnecting` only gets the event recorded (hijacking asks again for the
  disconnect to be finished).

`lifecycle` names the account lifecycle event an action amounts to (`grant_revoked`,
`sessions_ended`, `disconnect_requested`, `account_suspended`, `account_restored`,
`security_notice`), which the receiver logs and is where lifecycle events are published.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from google.cloud import firestore

from ..accounts.lifecycle import REQUESTED_BY_SECURITY_EVENT
from ..offline.reauth_reasons import REVOKED_AT_GOOGLE
from ..store import accounts as account_fields
from ..store.job_claims import DueUser
from ..store.refresh_token_ids import FIELD as TOKEN_IDS_FIELD
from ..store.users import (
    SECURITY_NOTICE_FIELD,
    STATUS_ACTIVE,
    STATUS_DISCONNECTING,
    STATUS_NEEDS_REAUTH,
    STATUS_SUSPENDED,
    SUSPENSION_FIELD,
    restored_status,
    stored_time,
)
from . import events as ev

IAT_RESOLUTION = dt.timedelta(seconds=1)
HISTORY_FIELD = "security_events"
HISTORY_LENGTH = 20

SESSIONS_ENDED = "sessions_ended"
TOKENS_DELETED = "tokens_deleted"
TOKEN_DELETED = "token_deleted"
DISCONNECT_REQUESTED = "disconnect_requested"
SUSPENDED = "suspended"
RESTORED = "restored"
NOTICE_SET = "notice_set"
NO_CHANGE = "no_change"

# `security_notice.kind` and the suspension's `reason`.
CREDENTIAL_CHANGE_REQUIRED = "credential_change_required"
ACCOUNT_DISABLED = "account_disabled"


@dataclass(frozen=True)
class Plan:
    """What one event does to one user.

    Attributes:
        action: what was decided (see the module's table).
        user_fields: the update of the user document (always the history entry at least).
        why: with `no_change`, the reason (`already_disconnecting`, `grant_newer_than_event`,
            `superseded`, `not_suspended`, `already_suspended`).
        disconnect: the account lifecycle must finish a disconnect (hijacking).
        lifecycle: the lifecycle event this amounts to, or None.
    """

    action: str
    user_fields: dict[str, Any]
    why: str | None = None
    disconnect: bool = False
    lifecycle: str | None = None


def history(user: DueUser) -> list[dict[str, Any]]:
    """The user's recorded security events, oldest first (malformed entries left out)."""
    entries = user.data.get(HISTORY_FIELD)
    return [dict(e) for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _entry(event: ev.SecurityEvent, action: str, why: str | None, now: dt.datetime) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": event.type, "issued_at": event.issued_at, "received_at": now,
                             "action": action}
    if event.reason:
        entry["reason"] = event.reason
    if why:
        entry["why"] = why
    return entry


def _grant_revoked(user: DueUser, now: dt.datetime) -> dict[str, Any]:
    """The fields that end a grant Google revoked: its tokens deleted, the reason recorded."""
    fields: dict[str, Any] = {
        "refresh_token": firestore.DELETE_FIELD,
        TOKEN_IDS_FIELD: firestore.DELETE_FIELD,
        "access_token": firestore.DELETE_FIELD,
        "access_token_expires_at": firestore.DELETE_FIELD,
        "reauth_reason": REVOKED_AT_GOOGLE,
        "updated_at": now,
    }
    # A suspended user stays suspended; the reason tells what they come back to.
    if user.data.get("status") != STATUS_SUSPENDED:
        fields["status"] = STATUS_NEEDS_REAUTH
    return fields


def _grant_is_newer(user: DueUser, event: ev.SecurityEvent) -> bool:
    """The stored refresh token was issued after Google issued the event (whose `iat` has whole
    seconds: a token of the same second may be the one revoked)."""
    issued = stored_time(user.data.get("refresh_token_issued_at"))
    return user.data.get("refresh_token") is not None and issued is not None \
        and issued >= event.issued_at + IAT_RESOLUTION


def _last(user: DueUser, event_type: str) -> dt.datetime | None:
    times = [stored_time(e.get("issued_at")) for e in history(user) if e.get("type") == event_type]
    return max((t for t in times if t is not None), default=None)


def _decide(event: ev.SecurityEvent, user: DueUser, now: dt.datetime
            ) -> tuple[str, dict[str, Any], str | None, str | None]:
    """(action, fields, why, lifecycle) for one event; fields exclude the history entry."""
    status = user.data.get("status")
    if event.type == ev.SESSIONS_REVOKED:
        return SESSIONS_ENDED, account_fields.ending_sessions_fields(now), None, "sessions_ended"
    if event.type == ev.ACCOUNT_DISABLED and event.reason == ev.HIJACKING:
        if status == STATUS_DISCONNECTING:
            return DISCONNECT_REQUESTED, {}, "already_disconnecting", "disconnect_requested"
        fields = account_fields.disconnecting_fields(now, REQUESTED_BY_SECURITY_EVENT)
        return DISCONNECT_REQUESTED, fields, None, "disconnect_requested"
    if status == STATUS_DISCONNECTING:
        return NO_CHANGE, {}, "already_disconnecting", None
    if event.type in (ev.TOKENS_REVOKED, ev.TOKEN_REVOKED):
        if _grant_is_newer(user, event):
            return NO_CHANGE, {}, "grant_newer_than_event", None
        action = TOKENS_DELETED if event.type == ev.TOKENS_REVOKED else TOKEN_DELETED
        return action, _grant_revoked(user, now), None, "grant_revoked"
    if event.type == ev.ACCOUNT_DISABLED:
        enabled = _last(user, ev.ACCOUNT_ENABLED)
        if enabled is not None and enabled > event.issued_at:
            return NO_CHANGE, {}, "superseded", None
        if status == STATUS_SUSPENDED:
            return NO_CHANGE, {}, "already_suspended", None
        suspension = {"reason": ACCOUNT_DISABLED, "google_reason": event.reason,
                      "since": event.issued_at, "received_at": now}
        return SUSPENDED, {"status": STATUS_SUSPENDED, SUSPENSION_FIELD: suspension,
                           "updated_at": now}, None, "account_suspended"
    if event.type == ev.ACCOUNT_ENABLED:
        if status != STATUS_SUSPENDED:
            return NO_CHANGE, {}, "not_suspended", None
        held = user.data.get(SUSPENSION_FIELD)
        since = stored_time(held.get("since")) if isinstance(held, dict) else None
        if since is not None and since > event.issued_at:
            return NO_CHANGE, {}, "superseded", None
        restored = restored_status(user.data)
        restoring: dict[str, Any] = {"status": restored, SUSPENSION_FIELD: firestore.DELETE_FIELD,
                                  "updated_at": now}
        if restored == STATUS_ACTIVE:
            restoring["next_run_at"] = now  # the offline work it missed is due at once
        return RESTORED, restoring, None, "account_restored"
    if event.type == ev.CREDENTIAL_CHANGE_REQUIRED:
        notice = {"kind": CREDENTIAL_CHANGE_REQUIRED, "since": event.issued_at, "received_at": now}
        return NOTICE_SET, {SECURITY_NOTICE_FIELD: notice, "updated_at": now}, None, "security_notice"
    raise ValueError(f"no action for {event.type}")


def plan(event: ev.SecurityEvent, user: DueUser, now: dt.datetime) -> Plan:
    """What `event` (a user event, or a matched `token-revoked`) does to `user`."""
    action, fields, why, lifecycle = _decide(event, user, now)
    disconnect = action == DISCONNECT_REQUESTED  # asked again even when already marked
    if why is not None:
        action, lifecycle = (action if disconnect else NO_CHANGE), None
    entries = history(user) + [_entry(event, action, why, now)]
    fields = {"updated_at": now, **fields, HISTORY_FIELD: entries[-HISTORY_LENGTH:]}
    return Plan(action=action, user_fields=fields, why=why, disconnect=disconnect,
                lifecycle=lifecycle)
