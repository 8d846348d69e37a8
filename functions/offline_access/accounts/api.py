"""The account API behind `/api/*` on the page's origin, as plain functions of a cookie.

- `GET /api/me`: 200 `accounts.view.account_body`; 401 `not_signed_in` without a valid session.
- `POST /api/sign-in-attempts`: 200 `{state, expires_in}`, the `state` for the page's next code,
  remembered in the cookie (`accounts.sessions.bind_state`).
- `POST /api/sign-out`: 200 `{status: "signed_out"}`; this browser's session ends (idempotent).
- `POST /api/sign-out-everywhere`: 200, every session of the user ends; 401 without a session.
- `POST /api/disconnect`: 200 `{status: "disconnected", revoked, removed}` when it is done; 202
  `{status: "disconnecting", completes_by, message}` when the grant could not be revoked yet;
  401 without a valid session.

A session is valid when its cookie opens (`accounts.sessions`), has not expired, and carries the
user document's current `session_generation`, the document not being `disconnecting`. The HTTP
layer (`http_adapter.handle_account_api`) checks the method and the CSRF rules first, and sets
the cookie each answer carries.

Disconnect, from here: mark the user `disconnecting` (sessions end, the job stops working for
them), then ask the internal `disconnect_user` function to revoke and delete now. This function
cannot open tokens; if that call fails, the next job run finishes. Disconnecting again, with the
same cookie, is answered the same way: the account is gone, or still going.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ..dependencies import SharedDependencies
from ..errors import ClientError
from ..store.accounts import AccountStore
from ..store.job_claims import DueUser
from ..store.users import STATUS_DISCONNECTING, session_generation
from . import lifecycle
from .internal_call import DisconnectCaller
from .sessions import CookiePolicy, CookieState, SessionCodec, SignInAttempt, new_state
from .view import account_body

ME = "/api/me"
SIGN_IN_ATTEMPTS = "/api/sign-in-attempts"
SIGN_OUT = "/api/sign-out"
SIGN_OUT_EVERYWHERE = "/api/sign-out-everywhere"
DISCONNECT = "/api/disconnect"
ROUTES = {ME: "GET", SIGN_IN_ATTEMPTS: "POST", SIGN_OUT: "POST", SIGN_OUT_EVERYWHERE: "POST",
          DISCONNECT: "POST"}

REVOKED_TEXT = {
    "revoked": "The permission you gave the app in your Google Account: revoked at Google.",
    "already_revoked": "The permission you gave the app in your Google Account: it had already "
                       "been removed.",
    "no_token": "The app held no lasting Google permission. If it is still listed in your "
                "Google Account, remove it there.",
    "unreadable_token": "The app could no longer read the permission it stored. If it is still "
                        "listed in your Google Account, remove it there.",
}
REMOVED_RECORDS = [
    "Your profile as the app stored it: name, email address and picture.",
    "The list of permissions you gave, and the results of the app's offline work.",
    "Your sessions on every device.",
]


@dataclass(kw_only=True)
class AccountDependencies(SharedDependencies):
    """Everything the account API talks to, built once per instance (`wiring`)."""

    sessions: SessionCodec
    cookies: CookiePolicy
    disconnect_caller: DisconnectCaller
    accounts: AccountStore = field(init=False)

    def __post_init__(self) -> None:
        self.accounts = AccountStore(self.store)


@dataclass(frozen=True)
class Answer:
    """What a route answers: status, JSON body, the `Set-Cookie` value if any, and the log's user."""

    status: int
    body: dict[str, Any]
    cookie: str | None = None
    user: str | None = None


def warm_up(deps: AccountDependencies) -> None:
    """A new instance's first work: the session key and the Firestore channel."""
    deps.sessions.check_ready()
    deps.store.connect()


def not_signed_in() -> ClientError:
    return ClientError("Sign in to see your account.", code="not_signed_in", status=401)


def _cookie(deps: AccountDependencies, state: CookieState) -> str:
    """The `Set-Cookie` value that stores `state`, or deletes the cookie when it is empty."""
    now = deps.sessions.now()
    if state.empty:
        return deps.cookies.header("", 0)
    return deps.cookies.header(deps.sessions.seal(state), deps.cookies.max_age(state, now))


def session_user(accounts: AccountStore, state: CookieState) -> DueUser | None:
    """The user a cookie signs in, or None when the session is missing or no longer valid (the
    user is gone or disconnecting, or the session's generation was ended)."""
    if state.session is None:
        return None
    user = accounts.get(state.session.sub)
    if user is None or user.data.get("status") == STATUS_DISCONNECTING \
            or session_generation(user.data) != state.session.generation:
        return None
    return user


def current_user(deps: AccountDependencies, state: CookieState) -> DueUser | None:
    """The signed-in user's document, or None when the session is missing or no longer valid."""
    return session_user(deps.accounts, state)


def _signed_out(deps: AccountDependencies, state: CookieState) -> Answer:
    """401, dropping a session that is no longer valid from the cookie (attempts stay)."""
    cookie = _cookie(deps, CookieState(attempts=state.attempts)) if state.session else None
    return Answer(401, not_signed_in().body(), cookie)


def me(deps: AccountDependencies, cookie: str | None) -> Answer:
    state = deps.sessions.open(cookie)
    user = current_user(deps, state)
    if user is None:
        return _signed_out(deps, state)
    return Answer(200, account_body(user.sub, user.data, deps.config.scopes), user=deps.user_refs.ref(user.sub))


def sign_in_attempt(deps: AccountDependencies, cookie: str | None) -> Answer:
    """A new `state` for the page's next code request, bound to this browser by the cookie."""
    state = deps.sessions.open(cookie)
    lifetime = deps.cookies.attempt_lifetime
    attempt = SignInAttempt(new_state(), deps.sessions.now() + lifetime)
    return Answer(200, {"state": attempt.state, "expires_in": lifetime},
                  _cookie(deps, state.with_attempt(attempt)))


def sign_out(deps: AccountDependencies, cookie: str | None) -> Answer:
    return Answer(200, {"status": "signed_out"}, _cookie(deps, CookieState()))


def sign_out_everywhere(deps: AccountDependencies, cookie: str | None) -> Answer:
    state = deps.sessions.open(cookie)
    user = current_user(deps, state)
    if user is None:
        return _signed_out(deps, state)
    deps.accounts.end_sessions(user.sub, deps.now())
    return Answer(200, {"status": "signed_out", "everywhere": True}, _cookie(deps, CookieState()),
                  user=deps.user_refs.ref(user.sub))


def disconnect(deps: AccountDependencies, cookie: str | None) -> Answer:
    """Disconnect the signed-in user (see the module's docstring)."""
    state = deps.sessions.open(cookie)
    if state.session is None:
        return _signed_out(deps, state)
    sub = state.session.sub
    user = deps.accounts.get(sub)
    cleared = _cookie(deps, CookieState())
    if user is None:  # disconnected already (a retry after a lost answer)
        return Answer(200, _disconnected(None), cleared, user=deps.user_refs.ref(sub))
    pending = user.data.get("status") == STATUS_DISCONNECTING
    if not pending:
        if current_user(deps, state) is None:
            return _signed_out(deps, state)
        deps.accounts.mark_disconnecting(sub, deps.now(), lifecycle.REQUESTED_BY_USER)
    result = deps.disconnect_caller.request(sub, lifecycle.REQUESTED_BY_USER)
    if result is not None and result.finished:
        return Answer(200, _disconnected(result.revoked), cleared, user=deps.user_refs.ref(sub))
    completes_by = deps.now() + dt.timedelta(seconds=deps.config.job_schedule_period_seconds)
    return Answer(202, {
        "status": "disconnecting",
        "completes_by": completes_by.isoformat().replace("+00:00", "Z"),
        "message": "Google couldn't be reached just now. The app has stopped using your access "
                   "and ended your sessions. At its next scheduled run it revokes the permission "
                   "and deletes everything it stored about you.",
    }, cleared, user=deps.user_refs.ref(sub))


def _disconnected(revoked: str | None) -> dict[str, Any]:
    removed = ([REVOKED_TEXT[revoked]] if revoked in REVOKED_TEXT else []) + REMOVED_RECORDS
    return {"status": "disconnected", "revoked": revoked, "removed": removed}
