"""The token API's routes, as plain functions of the request's JSON body.

- `POST /token` `{"sub": SUB, "scopes"?: [SCOPE, ...]}`: 200 `{access_token, expires_at,
  expires_in, scopes, token_type: "Bearer"}` (`access_tokens.AccessToken.body`); 404
  `user_not_found`; 409 `needs_reauth` with `reason`; 403 `scope_not_granted` with
  `missing_scopes`; 503 `service_unavailable` with `Retry-After`.
- `POST /session` `{"session": "<value of the __session cookie>"}`: 200 `{sub, status,
  reauth_reason, email, name, granted_scopes}` for a valid session (the same rules as the
  account API: the cookie opens, the user exists, is not `disconnecting`, and has the cookie's
  session generation); 401 `not_signed_in` otherwise.

The HTTP layer (`http_adapter.handle_token_api`) checks the caller's ID token first
(`callers`), then the method and the body; every answer is JSON with `Cache-Control: no-store`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..accounts.api import session_user
from ..accounts.sessions import SessionCodec
from ..dependencies import SharedDependencies
from ..errors import ClientError
from ..googleapis.certificates import CertificateCache
from ..offline.backoff import CALL_RETRIES, Backoff
from ..scopes import normalize_scope
from ..store.accounts import AccountStore
from .access_tokens import AccessTokens, RefreshStats
from .callers import CallerVerifier

TOKEN = "/token"
SESSION = "/session"
ROUTES = (TOKEN, SESSION)
MAX_SCOPES = 50
_SCOPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:/._-")


@dataclass(kw_only=True)
class TokenApiDependencies(SharedDependencies):
    """Everything the token API talks to, built once per instance (`wiring`)."""

    certificates: CertificateCache
    callers: CallerVerifier
    sessions: SessionCodec
    call_retries: Backoff = CALL_RETRIES
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    tokens: AccessTokens = field(init=False)
    accounts: AccountStore = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = AccessTokens(self, call_retries=self.call_retries, clock=self.clock,
                                   sleep=self.sleep)
        self.accounts = AccountStore(self.store)


@dataclass(frozen=True)
class Answer:
    """A route's answer, and what its log line says (never a token)."""

    body: dict[str, Any]
    user: str | None = None
    log: dict[str, Any] = field(default_factory=dict)


def warm_up(deps: TokenApiDependencies) -> None:
    """A new instance's first work: the keys it needs, the certificates, the Firestore channel."""
    deps.user_refs.check_ready()
    deps.sealer.check_ready()
    deps.certificates.certs_for(None)
    deps.store.connect()


def _sub(document: dict[str, Any]) -> str:
    sub = document.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255 or "/" in sub \
            or not sub.isprintable():
        raise ClientError("Send a JSON object with the user's 'sub'.")
    return sub


def _scopes(document: dict[str, Any]) -> tuple[str, ...]:
    scopes = document.get("scopes", [])
    if isinstance(scopes, str):
        scopes = scopes.split()
    if not isinstance(scopes, list) or len(scopes) > MAX_SCOPES or not all(
            isinstance(s, str) and s and set(s) <= _SCOPE_CHARS for s in scopes):
        raise ClientError("'scopes' must be a list of OAuth scopes (or one space-separated string).")
    return tuple(dict.fromkeys(normalize_scope(s) for s in scopes))


def token(deps: TokenApiDependencies, document: dict[str, Any]) -> Answer:
    sub = _sub(document)
    scopes = _scopes(document)
    if set(document) - {"sub", "scopes"}:
        raise ClientError("The body may hold only 'sub' and 'scopes'.")
    access, stats = deps.tokens.get(sub, scopes)
    return Answer(access.body(deps.now()), deps.user_refs.ref(sub),
                  {"token_source": access.source, **_stats(stats)})


def _stats(stats: RefreshStats) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if stats.lease_waits:
        fields["lease_waits"] = stats.lease_waits
    if stats.shared:
        fields["shared_refresh"] = True
    if stats.took_over_expired_lease:
        fields["previous_lease_expired"] = True
    if stats.refresh_token_rotated:
        fields["refresh_token_rotated"] = True
    return fields


def session(deps: TokenApiDependencies, document: dict[str, Any]) -> Answer:
    value = document.get("session")
    if not isinstance(value, str) or set(document) - {"session"}:
        raise ClientError("Send a JSON object with 'session', the value of the __session cookie.")
    state = deps.sessions.open(value.removeprefix("__session="))
    not_signed_in = ClientError("This is not a valid session: the user is not signed in.",
                                code="not_signed_in", status=401)
    user = session_user(deps.accounts, state)
    if user is None:
        raise not_signed_in
    data = user.data
    return Answer({
        "sub": user.sub,
        "status": data.get("status"),
        "reauth_reason": data.get("reauth_reason"),
        "email": data.get("email"),
        "name": data.get("name"),
        "granted_scopes": list(user.granted_scopes),
    }, deps.user_refs.ref(user.sub))


HANDLERS: dict[str, Callable[[TokenApiDependencies, dict[str, Any]], Answer]] = {
    TOKEN: token,
    SESSION: session,
}
