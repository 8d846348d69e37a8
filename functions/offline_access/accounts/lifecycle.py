"""Ending an account: disconnect = sessions ended, the grant revoked at Google, every record deleted.

`revoke_and_delete` is the one implementation. The internal `disconnect_user` function runs it
when the account API asks, the offline job runs it for every user still `disconnecting` (the
API's call failed, or Google could not be reached), and the operator CLI runs it for
`users disconnect`. Each step can be repeated, so any of them may run it again, at any time:

1. mark the user `disconnecting` and end their sessions (`AccountStore.mark_disconnecting`;
   the account API has done this already, the CLI has not);
2. take a short lease, so that two workers never both revoke (`AccountStore.claim_disconnect`);
3. revoke the grant at Google with the refresh token (or, without one, the access token):
   Google's `400 invalid_token` means it is already gone, which is success too;
4. delete the user document and everything under it, with the `user.disconnected` lifecycle
   event in the same atomic write (when events are on: `events.outbox`);
5. log one audit line (`event: account_disconnected`), with the hashed user reference only.

If Google cannot be reached (or refuses), nothing is deleted: the lease is given back with the
error's word in `disconnect.last_error`, the user stays `disconnecting`, and the next job run
tries again. A sealed token that no longer opens cannot be revoked by anyone: the records are
deleted anyway, and the audit line says `revoked: unreadable_token`.

Opening tokens needs the sealing keys' private half, which only `disconnect_user`, the job and
an operator's CLI hold; the public account API only calls `AccountStore.mark_disconnecting`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, TextIO

from ..dependencies import SharedDependencies
from ..errors import Misconfigured, OfflineAccessError, SealError, UnreadableToken
from ..googleapis.token_endpoint import revoke_token
from ..store import accounts as account_store
from ..store.job_claims import DueUser
from ..store.users import stored_time
from ..structured_log import emit

REQUESTED_BY_USER = "user"
REQUESTED_BY_OPERATOR = "operator"
# The job, for a user whose Workspace domain is no longer in ALLOWED_HOSTED_DOMAINS.
REQUESTED_BY_POLICY = "domain_policy"
# The RISC receiver, for an account Google disabled because it was hijacked.
REQUESTED_BY_SECURITY_EVENT = "security_event"
# Long enough for one revoke call and one delete; a crashed worker's lease lapses by itself.
LEASE = dt.timedelta(seconds=120)

DELETED = "deleted"
ALREADY_GONE = "already_gone"
DEFERRED = "deferred"
IN_PROGRESS = "in_progress"
CANCELLED = "cancelled"  # the user signed in again before the disconnect could finish

NO_TOKEN = "no_token"
UNREADABLE_TOKEN = "unreadable_token"


@dataclass(frozen=True)
class DisconnectResult:
    """What `revoke_and_delete` did.

    Attributes:
        outcome: `deleted`, `already_gone`, `deferred` (try again later), `in_progress`
            (another worker holds the lease) or `cancelled` (the user signed in again).
        revoked: with `deleted`: `revoked`, `already_revoked`, `no_token` or `unreadable_token`.
        records_deleted: documents deleted (the user document and any under it).
        error: with `deferred`, the failure's short word (`google_unavailable`...).
    """

    outcome: str
    revoked: str | None = None
    records_deleted: int = 0
    error: str | None = None

    @property
    def finished(self) -> bool:
        """Nothing of the user is left (this call or an earlier one deleted it)."""
        return self.outcome in (DELETED, ALREADY_GONE)

    def body(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "revoked": self.revoked,
                "records_deleted": self.records_deleted, "error": self.error}


def revoke_and_delete(deps: SharedDependencies, sub: str, *, requested_by: str,
                      log_stream: TextIO | None = None) -> DisconnectResult:
    """Disconnect one user for good (see the module's steps). Safe to call again at any time.

    Raises:
        Unavailable: Firestore failed before the grant was revoked (nothing changed for good),
            or while deleting (the next run deletes what is left).
    """
    now = deps.now()
    accounts = account_store.AccountStore(deps.store)
    if not accounts.mark_disconnecting(sub, now, requested_by):
        return DisconnectResult(ALREADY_GONE)
    claim = accounts.claim_disconnect(sub, now, LEASE)
    if claim.user is None:
        outcome = {account_store.GONE: ALREADY_GONE, account_store.NOT_DISCONNECTING: CANCELLED}
        return DisconnectResult(outcome.get(claim.outcome, IN_PROGRESS))
    user = claim.user
    try:
        revoked = _revoke(deps, user)
    except OfflineAccessError as exc:
        accounts.release_disconnect(user, exc.reason, deps.now())
        fields: dict[str, Any] = {"event": "account_disconnect_deferred", "user": deps.user_refs.ref(sub),
                                  "error": exc.reason, "requested_by": requested_by}
        if isinstance(exc, Misconfigured):
            fields["fix"] = exc.fix
        emit("ERROR" if isinstance(exc, Misconfigured) else "WARNING",
             f"account disconnect deferred ({exc.reason})", stream=log_stream, **fields)
        return DisconnectResult(DEFERRED, error=exc.reason)
    deleted = accounts.delete_user(sub, _disconnected_events(deps, user, revoked, requested_by, now),
                                   now)
    _audit(user, deps.user_refs.ref(sub), revoked, deleted, requested_by, now, log_stream)
    return DisconnectResult(DELETED, revoked=revoked, records_deleted=deleted)


def _disconnected_events(deps: SharedDependencies, user: DueUser, revoked: str,
                         requested_by: str, now: dt.datetime) -> list[Any]:
    outbox = deps.store.outbox
    if outbox is None or not outbox.enabled:
        return []
    disconnect = user.data.get("disconnect")
    disconnect = disconnect if isinstance(disconnect, dict) else {}
    return [outbox.catalog.disconnected(
        user.sub, requested_by=disconnect.get("requested_by") or requested_by, revoked=revoked,
        requested_at=stored_time(disconnect.get("requested_at")), now=now)]


def _revoke(deps: SharedDependencies, user: DueUser) -> str:
    """Revoke the user's grant with the best token the document holds; how it went.

    Revoking a refresh token ends the whole grant; so does revoking an access token, which is
    the only token of a user who never gave offline access.
    """
    unreadable = False
    for field in ("refresh_token", "access_token"):
        sealed = user.data.get(field)
        if not sealed:
            continue
        try:
            token = deps.sealer.open(sealed, sub=user.sub, field=field)
        except (SealError, UnreadableToken):
            unreadable = True
            continue
        return revoke_token(deps.http, deps.endpoints.revoke, token,
                            timeout=deps.config.http_timeout_seconds)
    return UNREADABLE_TOKEN if unreadable else NO_TOKEN


def _audit(user: DueUser, user_ref: str, revoked: str, deleted: int, requested_by: str,
           now: dt.datetime, log_stream: TextIO | None) -> None:
    disconnect = user.data.get("disconnect")
    disconnect = disconnect if isinstance(disconnect, dict) else {}
    requested_at = stored_time(disconnect.get("requested_at"))
    emit(
        "NOTICE",
        "account disconnected: grant revoked at Google and every record deleted",
        stream=log_stream,
        event="account_disconnected",
        user=user_ref,
        requested_by=disconnect.get("requested_by") or requested_by,
        requested_at=requested_at.isoformat() if requested_at else None,
        completed_at=now.isoformat(),
        revoked=revoked,
        records_deleted=deleted,
        # The claim that led here counted one more attempt than the document read before it.
        attempts=int(disconnect.get("attempts") or 0) + 1,
    )
