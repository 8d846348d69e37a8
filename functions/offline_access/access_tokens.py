"""A user's access token during a run, and the authorized session the tasks call Google with.

For each user the job opens the sealed refresh token, then:

- reuses the cached access token (sealed in the document by the exchange or an earlier run)
  while it stays valid for more than 5 minutes, else refreshes it, asking for the scopes the
  user granted (with granular consent, asking for the configured ones can fail);
- retries 429, 5xx and timeouts with jittered exponential backoff that honours `Retry-After`,
  but never waits past the run's deadline; after that the caller defers the user;
- if Google ever returns a new refresh token, seals and saves it before the new access token
  is used; a response without one never touches the stored token;
- on a 401 from an API, refreshes once and retries once: a second 401 is the task's failure,
  never a loop.

The session is plain `requests` over the instance's pooled session: one connection pool shared
by every user and thread, instead of a new `AuthorizedSession` (and pool) per user.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests

from .errors import TransientUpstreamError
from .google_endpoints import GoogleEndpoints
from .job_claims import DueUser
from .retry_policy import Backoff
from .token_endpoint import TokenResponse, _never_sent, parse_retry_after
from .token_sealing import SealError, TokenSealer
from .user_store import stored_time

T = TypeVar("T")

ACCESS_TOKEN_MARGIN = dt.timedelta(minutes=5)
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# Google APIs (Drive among them) report rate limits as 403 with these reasons.
_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class UnreadableToken(Exception):
    """The sealed refresh token does not open for this user (copied, tampered, unknown key)."""


class ApiError(Exception):
    """A Google API refused a call for good (a 4xx other than a retried 401 or rate limit).

    Attributes:
        status: the HTTP status.
        reason: Google's reason (`error.errors[0].reason`, `error.status` or `error`), if any.
    """

    def __init__(self, status: int, reason: str = "") -> None:
        super().__init__(f"HTTP {status}" + (f" ({reason})" if reason else ""))
        self.status = status
        self.reason = reason


@dataclass
class Retrier:
    """Runs a call again after `TransientUpstreamError`, as `backoff` says, within a deadline.

    The first attempt of a call always runs (the user was started within the budget); only
    waits for further attempts must end before `deadline` (a `clock()` value).
    """

    backoff: Backoff
    deadline: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random
    retries: int = 0
    waited: float = 0.0

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def call(self, fn: Callable[[], T]) -> T:
        """The result of `fn()`, retried; raises the last `TransientUpstreamError` when done."""
        attempt = 0
        while True:
            try:
                return fn()
            except TransientUpstreamError as exc:
                wait = self.backoff.wait_before_retry(
                    attempt, exc.retry_after, self.remaining(), self.rand
                )
                if wait is None:
                    raise
                self.retries += 1
                self.waited += wait
                self.sleep(wait)
                attempt += 1



@dataclass
class RefreshedToken:
    """What a refresh produced, for the result write (sealed) and the log."""

    sealed_access_token: dict[str, Any] = field(repr=False)
    expires_at: dt.datetime
    scopes: tuple[str, ...]


class UserTokens:
    """One user's tokens for one run: the cache, refreshes, and a saved rotation."""

    def __init__(
        self,
        user: DueUser,
        *,
        sealer: TokenSealer,
        refresh: Callable[[str, tuple[str, ...] | None], TokenResponse],
        save_refresh_token: Callable[[dict[str, Any]], None],
        retrier: Retrier,
        now: Callable[[], dt.datetime],
    ) -> None:
        """Open the user's sealed refresh token and cached access token.

        Args:
            user: the claimed user document.
            sealer: opens and seals tokens bound to the user.
            refresh: calls the token endpoint: (refresh token, scopes or None) -> response.
            save_refresh_token: stores a new sealed refresh token (raises if it cannot).
            retrier: retries transient failures of the refresh.
            now: the current time.

        Raises:
            UnreadableToken: the refresh token is missing or does not open for this user.
        """
        self._sub = user.sub
        self._sealer = sealer
        self._refresh_call = refresh
        self._save_refresh_token = save_refresh_token
        self._retrier = retrier
        self._now = now
        self.granted_scopes = user.granted_scopes
        self.refreshed: RefreshedToken | None = None
        self.refresh_calls = 0
        self.rotated = False
        try:
            self._refresh_token = sealer.open(
                user.data.get("refresh_token"), sub=user.sub, field="refresh_token"
            )
        except SealError:
            raise UnreadableToken() from None
        self._access: str | None = None
        self._expires_at: dt.datetime | None = None
        expires_at = stored_time(user.data.get("access_token_expires_at"))
        if expires_at is not None and expires_at - now() > ACCESS_TOKEN_MARGIN:
            try:
                self._access = sealer.open(
                    user.data.get("access_token"), sub=user.sub, field="access_token"
                )
                self._expires_at = expires_at
            except SealError:
                # Only a cache: a fresh token makes up for it, and the refresh token opened.
                self._access = None

    @property
    def used_cache(self) -> bool:
        return self.refresh_calls == 0 and self._access is not None

    def access_token(self) -> str:
        """A token valid for more than the margin: the cached one, or a refreshed one.

        Raises:
            GrantRevoked: the refresh token is dead.
            TransientUpstreamError: the token endpoint kept failing within the deadline.
            Misconfigured, UpstreamInvalid: see `refresh_access_token`.
            Unavailable: a new refresh token could not be saved (the user must be deferred).
        """
        if (
            self._access is not None
            and self._expires_at is not None
            and self._expires_at - self._now() > ACCESS_TOKEN_MARGIN
        ):
            return self._access
        return self.refresh()

    def refresh(self) -> str:
        """Refresh now, even if the current token looks valid (after a 401). See `access_token`."""
        scopes = self.granted_scopes or None
        self.refresh_calls += 1
        response = self._retrier.call(lambda: self._refresh_call(self._refresh_token, scopes))
        if response.refresh_token and response.refresh_token != self._refresh_token:
            # Saved first: if the save fails, nothing below runs and the old token stays stored.
            sealed = self._sealer.seal(response.refresh_token, sub=self._sub, field="refresh_token")
            self._save_refresh_token(sealed)
            self._refresh_token = response.refresh_token
            self.rotated = True
        expires_at = self._now() + dt.timedelta(seconds=max(response.expires_in, 0))
        if response.scopes:
            self.granted_scopes = response.scopes
        self.refreshed = RefreshedToken(
            sealed_access_token=self._sealer.seal(
                response.access_token, sub=self._sub, field="access_token"
            ),
            expires_at=expires_at,
            scopes=self.granted_scopes,
        )
        self._access, self._expires_at = response.access_token, expires_at
        return response.access_token


def _google_reason(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        errors = error.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            reason = errors[0].get("reason")
            if isinstance(reason, str):
                return reason
        status = error.get("status")
        if isinstance(status, str):
            return status
    return ""


class ApiSession:
    """Calls Google APIs as one user: what a task receives.

    Attributes:
        endpoints: where Google's APIs are (`endpoints.drive`, `endpoints.userinfo`).
    """

    def __init__(
        self,
        http: requests.Session,
        tokens: UserTokens,
        retrier: Retrier,
        endpoints: GoogleEndpoints,
        timeout: float,
    ) -> None:
        self._http = http
        self._tokens = tokens
        self._retrier = retrier
        self.endpoints = endpoints
        self._timeout = timeout
        self._forced_refresh = False
        self.calls = 0

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send one API request with the user's bearer token; retries as the module says.

        Returns the final response, whatever its status (after at most one forced refresh on
        401, and retries of 429, 5xx, rate-limit 403s and, for idempotent methods, timeouts).

        Raises:
            TransientUpstreamError: still failing when the retries or the deadline ran out.
            GrantRevoked: the forced refresh found the refresh token dead.
        """
        method = method.upper()
        while True:
            token = self._tokens.access_token()
            response = self._retrier.call(
                lambda token=token: self._send(method, url, token, params, json, headers)
            )
            if response.status_code == 401 and not self._forced_refresh:
                # The token looked valid but Google disagrees (revoked access token, clock
                # skew): one refresh and one retry for the whole user, never more.
                self._forced_refresh = True
                self._tokens.refresh()
                continue
            return response

    def _send(self, method, url, token, params, json, headers) -> requests.Response:
        all_headers = {"Authorization": f"Bearer {token}"}
        if headers:
            all_headers.update(headers)
        self.calls += 1
        try:
            response = self._http.request(
                method, url, params=params, json=json, headers=all_headers, timeout=self._timeout
            )
        except requests.RequestException as exc:
            if method in _IDEMPOTENT or _never_sent(exc):
                raise TransientUpstreamError(f"{type(exc).__name__} calling a Google API") from None
            # It may have reached Google: repeating a non-idempotent call could repeat its effect.
            raise ApiError(0, f"no_answer_{type(exc).__name__}") from None
        status = response.status_code
        if status in _RETRYABLE_STATUS or (
            status == 403 and _google_reason(response) in _RATE_LIMIT_REASONS
        ):
            raise TransientUpstreamError(
                f"Google API answered {status}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        return response

    def get_json(self, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a JSON object.

        Raises:
            ApiError: a final non-2xx answer, or a body that is not a JSON object.
            TransientUpstreamError, GrantRevoked: see `request`.
        """
        response = self.request("GET", url, params=params)
        if not 200 <= response.status_code < 300:
            raise ApiError(response.status_code, _google_reason(response))
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApiError(response.status_code, "not_a_json_object")
        return body
