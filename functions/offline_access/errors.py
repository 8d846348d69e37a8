"""Every exception the product raises, in one tree.

    OfflineAccessError                the root: a machine `code`, a sentence, an HTTP `status`
    ├── ClientError                   4xx: the request itself is wrong; nothing was changed
    │   ├── CodeRejected              Google refused the one-time code (`invalid_grant`)
    │   ├── DomainNotAllowed          the account's Workspace domain may not sign in
    │   ├── CallerRejected            401: the token API's caller sent no valid Google ID token
    │   │   └── CallerNotAllowed      403: a valid ID token, of an identity not on the allowlist
    │   ├── UserNotFound              404: no such user, or they disconnected (or are disconnecting)
    │   └── ScopeNotGranted           403: the caller asked for a scope the user did not grant
    │   └── SecurityEventRejected     a security event token (RISC) is malformed, forged or not ours
    ├── Unavailable                   503: a dependency failed or timed out; retryable, an outage
    │   ├── GoogleUnavailable         Google's token endpoint or an API answered 429/5xx, or no answer
    │   └── RefreshContended          another instance's refresh of this user did not end in time
    ├── UpstreamInvalid               502: Google answered with something we must not trust
    │   ├── ApiRefused                a Google API refused a call for good (a final 4xx)
    │   ├── IdTokenRejected           the ID token's signature or claims are wrong: a final rejection
    │   └── RefreshRefused            the token endpoint refused one user's refresh with a 4xx
    │       └── InvalidScope          ... because the refresh asked for scopes the grant lacks
    ├── Misconfigured                 500: the deployment is wrong; an operator must act (an outage)
    │   ├── ConfigError               an environment setting is missing or malformed
    │   └── SecretVersionGone         a secret version does not exist, or is disabled or destroyed
    ├── DeadlineReached               the run's hard deadline came before the user's work was done
    └── GrantError                    one user's grant cannot be used; the user must sign in again
        ├── GrantRevoked              the refresh token is dead (`invalid_grant`, `invalid_rapt`)
        ├── UserNeedsReauth           409: the token API's user is `needs_reauth` (with the reason)
        └── UnreadableToken           the sealed refresh token does not open
            ├── SealError             a sealed value is malformed, tampered with, or not this user's
            └── SealingKeyGone        the key that sealed it was retired, disabled or destroyed

Two attributes say how to treat an error without an `isinstance` ladder, as google-auth's
`GoogleAuthError(retryable=...)` does:

- `retryable`: the same call may succeed later (a dependency is down or throttling).
- `outage`: the failure is not one user's: Google, Firestore or Secret Manager is down, or the
  deployment is misconfigured. Only outages count toward the offline job's circuit breaker: a
  per-user refusal (`RefreshRefused`, `ApiRefused`), a dead grant, a gone key or the run's
  deadline never does.

`reason` is the short word the job records and logs for a failed user (`google_unavailable`,
`firestore_unavailable`, `misconfigured`, ...). Messages never contain codes, tokens, secrets or
keys: they are shown to clients and written to logs as they are.
"""

from __future__ import annotations

from typing import Any


class OfflineAccessError(Exception):
    """The root: something the entry points answer with a JSON error body `{error, message}`."""

    status = 500
    code = "internal_error"
    retryable = False
    outage = False
    # Set on the error of a sign-in when tokens issued by Google were revoked because of it.
    revoked = False

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    @property
    def reason(self) -> str:
        """A short word for the job's record and log line."""
        return self.code

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message}


class ClientError(OfflineAccessError):
    """The request itself is wrong: 4xx, nothing was changed."""

    status = 400
    code = "invalid_request"


class CodeRejected(ClientError):
    """Google refused the one-time code (`invalid_grant`): the page must start sign-in again."""

    code = "code_rejected"


class DomainNotAllowed(ClientError):
    """The account belongs to a Workspace domain (or none) that this deployment does not allow."""

    status = 403
    code = "domain_not_allowed"

    def __init__(self) -> None:
        super().__init__(
            "This Google account's organisation may not sign in here. Use an allowed account."
        )


class SecurityEventRejected(ClientError):
    """A security event token pushed to the RISC receiver is malformed, forged, or not ours.

    Always 400, as RFC 8935 (push delivery of SETs) says; the body also carries the RFC's own
    `err` code (`invalid_request`, `invalid_key`, `invalid_issuer`, `invalid_audience`) and
    `description`, which a transmitter reads. Nothing was done.
    """

    code = "invalid_security_event"

    def __init__(self, message: str, *, err: str = "invalid_request", code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.err = err

    def body(self) -> dict[str, str]:
        return {**super().body(), "err": self.err, "description": self.message}


class CallerRejected(ClientError):
    """The token API's caller sent no valid Google ID token for this API (401).

    The message never quotes the token or google-auth's message about it.
    """

    status = 401
    code = "unauthenticated"

    def __init__(self, message: str = "Send a Google ID token for this API as "
                 "'Authorization: Bearer <token>'.") -> None:
        super().__init__(message)


class CallerNotAllowed(CallerRejected):
    """A valid ID token, but of an identity this deployment does not admit (403)."""

    status = 403
    code = "caller_not_allowed"

    def __init__(self) -> None:
        super().__init__("This service account may not call the token API. Add it to "
                         "app_backend_service_accounts in Terraform.")


class UserNotFound(ClientError):
    """No such user, or the user disconnected or is disconnecting (404)."""

    status = 404
    code = "user_not_found"

    def __init__(self) -> None:
        super().__init__("No connected user has this sub: they never signed in, or they "
                         "disconnected.")


class ScopeNotGranted(ClientError):
    """The caller asked for a scope the user did not grant (403); `missing_scopes` names them."""

    status = 403
    code = "scope_not_granted"

    def __init__(self, missing: list[str]) -> None:
        super().__init__("The user did not grant " + ", ".join(missing) + ". Ask them to grant "
                         "it on the sign-in page (Grant missing permissions).")
        self.missing_scopes = missing

    def body(self) -> dict[str, Any]:
        return {**super().body(), "missing_scopes": self.missing_scopes}


class Unavailable(OfflineAccessError):
    """A dependency (Secret Manager, Firestore, Google) failed or timed out: retry later.

    Attributes:
        dependency: which one (`firestore`, `secret_manager`, `token_endpoint`, `certificates`...).
        retry_after: seconds the client should wait, sent as `Retry-After`.
    """

    status = 503
    code = "service_unavailable"
    retryable = True
    outage = True

    def __init__(self, message: str, *, dependency: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.dependency = dependency
        self.retry_after = retry_after

    @property
    def reason(self) -> str:
        return f"{self.dependency}_unavailable"


class GoogleUnavailable(Unavailable):
    """Google answered 429 or 5xx, or not at all: a call the job may retry with backoff.

    `retry_after` is Google's own `Retry-After` (parsed and clamped), or None.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, dependency="google", retry_after=retry_after)


class RefreshContended(Unavailable):
    """Another instance holds this user's refresh lease and did not finish within the wait.

    Not a credential failure: the holder is slow or gone, and its lease lapses by itself.
    """

    def __init__(self, retry_after: float = 1.0) -> None:
        super().__init__("This user's access token is being refreshed. Try again in a moment.",
                         dependency="token_refresh", retry_after=retry_after)


class UpstreamInvalid(OfflineAccessError):
    """Google answered with something we must not trust or cannot use."""

    status = 502
    code = "upstream_invalid"


class ApiRefused(UpstreamInvalid):
    """A Google API refused a call for good (a 4xx other than a retried 401 or rate limit).

    Attributes:
        http_status: the HTTP status (0 when a non-idempotent call got no answer).
        google_reason: Google's reason (`error.errors[0].reason`, `error.status` or `error`).
    """

    def __init__(self, http_status: int, google_reason: str = "") -> None:
        super().__init__(
            f"A Google API answered HTTP {http_status}" + (f" ({google_reason})" if google_reason else "")
        )
        self.http_status = http_status
        self.google_reason = google_reason

    @property
    def reason(self) -> str:
        return f"http_{self.http_status}"


class IdTokenRejected(UpstreamInvalid):
    """The ID token in Google's token response is malformed, or its signature or claims are wrong.

    A final rejection: the sign-in cannot be trusted, so the tokens issued with it are revoked.
    """


class RefreshRefused(UpstreamInvalid):
    """The token endpoint refused one user's refresh with a 4xx other than `invalid_grant`.

    Per-user, never an outage: the job defers the user and, after a few refusals in a row, marks
    them `needs_reauth (refresh_refused)` with the error recorded.

    Attributes:
        google_error: Google's `error` (`invalid_request`, `invalid_scope`...), or `http_<status>`.
        http_status: the HTTP status.
    """

    def __init__(self, google_error: str, http_status: int) -> None:
        super().__init__(f"Google's token endpoint refused the refresh ({google_error}).")
        self.google_error = google_error
        self.http_status = http_status

    @property
    def reason(self) -> str:
        return "refresh_refused"


class InvalidScope(RefreshRefused):
    """The refresh asked for scopes the grant does not hold (`invalid_scope`): retried once
    without `scope`, which returns the scopes the grant does hold."""

    def __init__(self, http_status: int = 400) -> None:
        super().__init__("invalid_scope", http_status)


class DeadlineReached(OfflineAccessError):
    """The run's hard deadline came while a user's work was still going on.

    Not the user's failure and not an outage: the user is due again at once, for the next run.
    """

    status = 503
    code = "deadline_reached"
    retryable = True

    def __init__(self) -> None:
        super().__init__("The run's time budget ran out before this user's work was done.")


class Misconfigured(OfflineAccessError):
    """The deployment is wrong (client id or secret, redirect URI, secret names): an operator must act.

    `message` is what a client sees; `fix` is the operator's sentence, logged at ERROR.
    """

    status = 500
    code = "server_misconfigured"
    outage = True

    def __init__(self, fix: str) -> None:
        super().__init__("The server is misconfigured. The operator has been told what to fix.")
        self.fix = fix

    @property
    def reason(self) -> str:
        return "misconfigured"


class ConfigError(Misconfigured):
    """An environment setting is missing or malformed; `fix` names the variable."""


class SecretVersionGone(Misconfigured):
    """A Secret Manager version does not exist, or is disabled or destroyed.

    For a configured secret that is a misconfiguration; for an older sealing key that a stored
    token names, it means the key was retired: `store.sealing` turns it into `SealingKeyGone`.
    `retired` is True when the version exists but was disabled or destroyed (what
    `make retire-sealing-key` does), False when there is no such version or secret.
    """

    def __init__(self, fix: str, *, retired: bool = False) -> None:
        super().__init__(fix)
        self.retired = retired


class GrantError(OfflineAccessError):
    """One user's grant cannot be used: they must sign in again. Never an outage."""

    status = 409
    code = "needs_reauth"


class GrantRevoked(GrantError):
    """A refresh token is dead (`invalid_grant`).

    Attributes:
        subtype: Google's `error_subtype` (`invalid_rapt`...), or `invalid_grant` when none.
        description: Google's `error_description`, never shown to users.
    """

    def __init__(self, subtype: str, description: str = "") -> None:
        super().__init__("Google no longer accepts this user's refresh token.")
        self.subtype = subtype
        self.description = description


class UserNeedsReauth(GrantError):
    """The user's grant is known dead (`needs_reauth`): the token API answers 409 with `reason`."""

    def __init__(self, reason: str | None) -> None:
        super().__init__("The user must sign in again before the app can act for them "
                         f"({reason or 'unknown'}).")
        self.reauth_reason = reason or "unknown"

    def body(self) -> dict[str, Any]:
        return {**super().body(), "reason": self.reauth_reason}


class UnreadableToken(GrantError):
    """The sealed refresh token is missing or does not open for this user."""

    def __init__(self, message: str = "The stored refresh token cannot be opened.") -> None:
        super().__init__(message)


class SealError(UnreadableToken):
    """A sealed value is malformed, was tampered with, or belongs to another user or field."""


class SealingKeyGone(UnreadableToken):
    """The key that sealed a token was retired, disabled or destroyed: the token cannot open."""

    def __init__(self) -> None:
        super().__init__("The key that sealed this token is no longer available.")
