"""`TokenApiClient`: calls a deployment's token API as this process's service account.

Each call carries a Google ID token for the API's URL (its audience), from google-auth's
`id_token.fetch_id_token_credentials`, kept and refreshed before it expires, so a warm process
asks for one about once an hour. A 401 gets one retry with a new ID token.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import google.auth.exceptions
import requests
from google.auth.transport import requests as google_requests
from google.oauth2 import id_token

from .credentials import UserCredentials
from .errors import (
    CallerRejected,
    NeedsReauth,
    ScopeNotGranted,
    TokenApiError,
    TokenApiUnavailable,
    UserNotFound,
)

URL_VARIABLE = "OFFLINE_ACCESS_TOKEN_API_URL"
AUDIENCE_VARIABLE = "OFFLINE_ACCESS_TOKEN_API_AUDIENCE"
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class AccessToken:
    """A user's access token (`repr` never shows it), when it expires, and its scopes."""

    token: str = field(repr=False)
    expires_at: dt.datetime
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class SessionUser:
    """Who a `__session` cookie belongs to."""

    sub: str
    status: str
    reauth_reason: str | None
    email: str | None
    name: str | None
    granted_scopes: tuple[str, ...]


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


class TokenApiClient:
    """The token API at `url`, called with this process's ID token for `audience` (the URL)."""

    def __init__(self, url: str, *, audience: str | None = None,
                 session: requests.Session | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.audience = audience or url
        self.timeout = timeout
        self._request = google_requests.Request(session or requests.Session())
        self._id_credentials: Any = None
        self._lock = threading.Lock()

    def _id_token(self, *, renew: bool = False) -> str:
        with self._lock:
            try:
                if self._id_credentials is None:
                    self._id_credentials = id_token.fetch_id_token_credentials(  # type: ignore[no-untyped-call]
                        self.audience, request=self._request)
                if renew or not self._id_credentials.valid:
                    self._id_credentials.refresh(self._request)
            except google.auth.exceptions.GoogleAuthError as exc:
                raise CallerRejected(
                    f"No ID token for the token API could be had for this process: {exc}",
                    status=401, code="no_id_token") from exc
            return str(self._id_credentials.token)

    def _post(self, path: str, body: dict[str, Any], request: Any = None) -> dict[str, Any]:
        send = request or self._request
        for renew in (False, True):
            headers = {"Authorization": f"Bearer {self._id_token(renew=renew)}",
                       "Content-Type": "application/json"}
            try:
                response = send(url=self.url + path, method="POST", body=json.dumps(body),
                                headers=headers, timeout=self.timeout)
            except google.auth.exceptions.TransportError as exc:
                raise TokenApiUnavailable(f"The token API did not answer: {exc}",
                                          status=0, code="no_answer") from exc
            if response.status != 401 or renew:
                break
        data = response.data.decode("utf-8", "replace") if isinstance(response.data, bytes) \
            else str(response.data)
        try:
            document = json.loads(data)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise TokenApiUnavailable(f"The token API answered HTTP {response.status} without JSON.",
                                      status=response.status, code="invalid_answer")
        if response.status == 200:
            return document
        raise _error(response.status, document, response.headers)

    def access_token(self, sub: str, scopes: Sequence[str] | None = None, *,
                     request: Any = None) -> AccessToken:
        """A valid access token for the user (`request`: a google-auth transport to use).

        Raises:
            TokenApiError: a `RefreshError` subclass for each error answer.
        """
        body: dict[str, Any] = {"sub": sub}
        if scopes:
            body["scopes"] = list(scopes)
        answer = self._post("/token", body, request)
        return AccessToken(str(answer["access_token"]), _time(str(answer["expires_at"])),
                           tuple(answer.get("scopes") or ()))

    def credentials_for(self, sub: str, scopes: Sequence[str] | None = None) -> UserCredentials:
        """google-auth credentials for the user; `scopes` are checked as granted at each refresh."""
        return UserCredentials(self, sub, scopes)

    def user_for_session(self, cookie_value: str | None) -> SessionUser | None:
        """The user of a `__session` cookie value, or None when it is no valid session.

        Raises:
            TokenApiError: the API refused this caller or is unavailable.
        """
        if not cookie_value:
            return None
        try:
            answer = self._post("/session", {"session": cookie_value})
        except TokenApiError as exc:
            if exc.code == "not_signed_in":
                return None
            raise
        return SessionUser(str(answer["sub"]), str(answer.get("status")),
                           answer.get("reauth_reason"), answer.get("email"), answer.get("name"),
                           tuple(answer.get("granted_scopes") or ()))


def _error(status: int, document: dict[str, Any], headers: Any) -> TokenApiError:
    code = str(document.get("error") or f"http_{status}")
    message = str(document.get("message") or f"The token API answered HTTP {status}.")
    if status == 404 and code == "user_not_found":
        return UserNotFound(message, status=status, code=code)
    if status == 409:
        return NeedsReauth(message, reason=str(document.get("reason") or "unknown"), status=status,
                           code=code)
    if status == 403 and code == "scope_not_granted":
        return ScopeNotGranted(message, missing_scopes=list(document.get("missing_scopes") or []),
                               status=status, code=code)
    if status in (401, 403) and code != "not_signed_in":
        return CallerRejected(message, status=status, code=code)
    if status == 429 or status >= 500:
        retry_after = None
        raw = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
        if raw and str(raw).isdigit():
            retry_after = float(raw)
        return TokenApiUnavailable(message, status=status, code=code, retry_after=retry_after)
    return TokenApiError(message, status=status, code=code)


_default: TokenApiClient | None = None
_default_lock = threading.Lock()


def default_client() -> TokenApiClient:
    """The client for `OFFLINE_ACCESS_TOKEN_API_URL` (and `..._AUDIENCE` if set), made once."""
    global _default
    with _default_lock:
        if _default is None:
            url = os.environ.get(URL_VARIABLE, "").strip()
            if not url:
                raise ValueError(f"Set {URL_VARIABLE} to the token API's URL "
                                 "(terraform output token_api_url; `make dev` prints it).")
            _default = TokenApiClient(url, audience=os.environ.get(AUDIENCE_VARIABLE) or None)
        return _default


def credentials_for(sub: str, scopes: Sequence[str] | None = None) -> UserCredentials:
    """google-auth credentials for the user `sub`, through the default client."""
    return default_client().credentials_for(sub, scopes)


def user_for_session(cookie_value: str | None) -> SessionUser | None:
    """The user of a `__session` cookie value, through the default client; None if none."""
    return default_client().user_for_session(cookie_value)
