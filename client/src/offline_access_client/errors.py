"""The token API's error answers as google-auth's `RefreshError`, with `retryable` set.

A client library that refreshes credentials (`AuthorizedSession`, `googleapiclient`) raises
these from its call, so an app can tell "the user must sign in again" from "try later".
"""

from __future__ import annotations

from google.auth.exceptions import RefreshError


class TokenApiError(RefreshError):
    """An error answer of the token API: its HTTP `status`, machine `code` and sentence."""

    def __init__(self, message: str, *, status: int, code: str, retryable: bool = False) -> None:
        super().__init__(message, retryable=retryable)  # type: ignore[no-untyped-call]
        self.status = status
        self.code = code
        self.message = message


class UserNotFound(TokenApiError):
    """404: no connected user has this `sub` (never signed in, disconnected, or disconnecting)."""


class NeedsReauth(TokenApiError):
    """409: the user must sign in again; `reason` says why (`revoked`, `no_offline_access`...)."""

    def __init__(self, message: str, *, reason: str, status: int = 409,
                 code: str = "needs_reauth") -> None:
        super().__init__(message, status=status, code=code)
        self.reason = reason


class ScopeNotGranted(TokenApiError):
    """403: the user did not grant `missing_scopes`."""

    def __init__(self, message: str, *, missing_scopes: list[str], status: int = 403,
                 code: str = "scope_not_granted") -> None:
        super().__init__(message, status=status, code=code)
        self.missing_scopes = missing_scopes


class CallerRejected(TokenApiError):
    """401 or 403: this service account's ID token was refused (not on `app_backend_service_accounts`,
    or an ID token for another audience)."""


class TokenApiUnavailable(TokenApiError):
    """503 or no answer: Google, Firestore or the token API is unavailable. Retryable;
    `retry_after` is the API's `Retry-After` in seconds, when it sent one."""

    def __init__(self, message: str, *, status: int = 503, code: str = "service_unavailable",
                 retry_after: float | None = None) -> None:
        super().__init__(message, status=status, code=code, retryable=True)
        self.retry_after = retry_after
