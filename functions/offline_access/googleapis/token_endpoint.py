"""Google's token endpoint: exchange a one-time code, refresh an access token, revoke a grant.

Each call is a form POST with a timeout, and its failures are classified the way the flow needs
them: a rejected code or a dead refresh token is final for that user; a misconfigured client is
final for the deployment; 429, 5xx and timeouts are transient. A code exchange is never retried
once the request may have reached Google, because codes are single-use and a retry would only
turn a real outcome into `invalid_grant`.

Reference: https://developers.google.com/identity/protocols/oauth2/web-server
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import (
    CodeRejected,
    GoogleUnavailable,
    GrantRevoked,
    InvalidScope,
    Misconfigured,
    RefreshRefused,
    Unavailable,
    UpstreamInvalid,
)
from .http_session import HttpClient, HttpResponse, TransportError, parse_retry_after


@dataclass(frozen=True)
class TokenResponse:
    """A successful token response. `repr` shows no token."""

    access_token: str
    expires_in: int
    scopes: tuple[str, ...]
    refresh_token: str | None = None
    id_token: str | None = None
    refresh_token_expires_in: int | None = None

    def __repr__(self) -> str:
        return (
            f"TokenResponse(expires_in={self.expires_in}, scopes={self.scopes!r}, "
            f"refresh_token={'<set>' if self.refresh_token else None}, "
            f"id_token={'<set>' if self.id_token else None})"
        )


def _json(response: HttpResponse) -> dict[str, Any] | None:
    try:
        document = response.json()
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _parse_success(response: HttpResponse, *, need_id_token: bool) -> TokenResponse:
    document = _json(response)
    if document is None:
        raise UpstreamInvalid("Google's token endpoint answered with something other than JSON.")
    access_token = document.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise UpstreamInvalid("Google's token response has no access token.")
    id_token = document.get("id_token")
    if need_id_token and (not isinstance(id_token, str) or not id_token):
        raise UpstreamInvalid("Google's token response has no ID token.")
    refresh_token = document.get("refresh_token")
    try:
        expires_in = int(document.get("expires_in", 3599))
    except (TypeError, ValueError):
        expires_in = 3599
    rt_expires = document.get("refresh_token_expires_in")
    if isinstance(rt_expires, str) and rt_expires.isascii() and rt_expires.isdigit():
        rt_expires = int(rt_expires)
    scope = document.get("scope", "")
    return TokenResponse(
        access_token=access_token,
        expires_in=expires_in,
        scopes=tuple(scope.split()) if isinstance(scope, str) else (),
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        id_token=id_token if isinstance(id_token, str) else None,
        refresh_token_expires_in=(
            rt_expires if isinstance(rt_expires, int) and not isinstance(rt_expires, bool) else None),
    )


def _error_of(response: HttpResponse) -> tuple[str, str, str]:
    document = _json(response) or {}
    error = document.get("error")
    description = document.get("error_description")
    subtype = document.get("error_subtype")
    return (
        error if isinstance(error, str) else "",
        description if isinstance(description, str) else "",
        subtype if isinstance(subtype, str) else "",
    )


def _unavailable(response: HttpResponse | None = None) -> Unavailable:
    retry_after = None
    if response is not None:
        retry_after = parse_retry_after(response.header("Retry-After"))
    return Unavailable(
        "Google's sign-in service is unavailable. Try again shortly.",
        retry_after=retry_after,
        dependency="token_endpoint",
    )


def _client_misconfigured(error: str) -> Misconfigured:
    if error == "redirect_uri_mismatch":
        return Misconfigured(
            "Google rejected redirect_uri: set OAUTH_REDIRECT_URI to 'postmessage' (or to the "
            "page's exact origin) so it matches what the page used."
        )
    return Misconfigured(
        f"Google rejected the OAuth client ({error}): check that OAUTH_CLIENT_ID and the "
        "client secret in Secret Manager belong to the same, existing web OAuth client."
    )


def exchange_code(
    http: HttpClient,
    token_url: str,
    *,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    timeout: float,
) -> TokenResponse:
    """Exchange a one-time code for tokens (`grant_type=authorization_code`).

    Raises:
        CodeRejected: the code is invalid, expired or already used.
        Misconfigured: Google rejected the client or the redirect URI.
        Unavailable: Google is down, throttling, or did not answer in time.
        UpstreamInvalid: the answer is unusable.
    """
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": client_id,
        "client_secret": client_secret,
        "redirect_uri": redirect_uri,
    }
    response = None
    for attempt in (1, 2):
        try:
            response = http.post(token_url, data=form, timeout=timeout)
            break
        except TransportError as exc:
            # A second attempt only when the first certainly never reached Google.
            if attempt == 1 and exc.never_sent:
                continue
            raise _unavailable() from None
    assert response is not None
    if response.status_code == 200:
        return _parse_success(response, need_id_token=True)
    if response.status_code == 429 or response.status_code >= 500:
        raise _unavailable(response)
    error, _, _ = _error_of(response)
    if error == "invalid_grant":
        raise CodeRejected(
            "Google did not accept this sign-in code (it may have expired or been used). "
            "Please sign in again."
        )
    if error in ("invalid_client", "unauthorized_client", "deleted_client", "redirect_uri_mismatch"):
        raise _client_misconfigured(error)
    raise UpstreamInvalid(
        f"Google's token endpoint refused the exchange ({error or response.status_code})."
    )


def refresh_access_token(
    http: HttpClient,
    token_url: str,
    *,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    scopes: tuple[str, ...] | None,
    timeout: float,
) -> TokenResponse:
    """A new access token from a refresh token (`grant_type=refresh_token`).

    `scopes` should be the scopes the user granted (with granular consent a request for more
    fails with `invalid_scope`), or None for all of them.

    Raises:
        GrantRevoked: the refresh token is dead (`invalid_grant`); reason in `.reason`.
        Misconfigured: the client is rejected (the deployment's fault, for every user).
        InvalidScope: `scopes` holds a scope the grant lacks (retry without `scopes`).
        RefreshRefused: another 4xx: this user's refresh was refused.
        GoogleUnavailable: 429, 5xx, timeout or connection failure; may be retried.
        UpstreamInvalid: the answer is unusable.
    """
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client_id,
        "client_secret": client_secret,
    }
    if scopes:
        form["scope"] = " ".join(scopes)
    try:
        response = http.post(token_url, data=form, timeout=timeout)
    except TransportError as exc:
        raise GoogleUnavailable(f"Google's token endpoint did not answer ({exc}).") from None
    if response.status_code == 200:
        return _parse_success(response, need_id_token=False)
    if response.status_code == 429 or response.status_code >= 500:
        raise GoogleUnavailable(
            f"Google's token endpoint answered {response.status_code}.",
            retry_after=parse_retry_after(response.header("Retry-After")),
        )
    error, description, subtype = _error_of(response)
    if error == "invalid_grant":
        raise GrantRevoked(subtype or "invalid_grant", description)
    if error in ("invalid_client", "unauthorized_client", "deleted_client"):
        raise _client_misconfigured(error)
    if error == "invalid_scope":
        raise InvalidScope(response.status_code)
    if 400 <= response.status_code < 500:
        raise RefreshRefused(error or f"http_{response.status_code}", response.status_code)
    raise UpstreamInvalid(f"Google's token endpoint refused the refresh ({error or response.status_code}).")


REVOKED = "revoked"
ALREADY_REVOKED = "already_revoked"


def revoke(http: HttpClient, revoke_url: str, token: str, *, timeout: float) -> bool:
    """Revoke a token and its whole grant, best effort. True when Google confirmed it."""
    try:
        return revoke_token(http, revoke_url, token, timeout=timeout) == REVOKED
    except (GoogleUnavailable, UpstreamInvalid):
        return False


def revoke_token(http: HttpClient, revoke_url: str, token: str, *, timeout: float) -> str:
    """Revoke a token and its whole grant, and say how it went: `REVOKED`, or `ALREADY_REVOKED`
    when Google answers `400 invalid_token` (the token, and so the grant, is already gone).

    Raises:
        GoogleUnavailable: 429, 5xx, a timeout or no connection; nothing is known to have changed.
        UpstreamInvalid: any other refusal (the grant may still exist).
    """
    try:
        response = http.post(revoke_url, data={"token": token}, timeout=timeout)
    except TransportError as exc:
        raise GoogleUnavailable(f"Google's revoke endpoint did not answer ({exc}).") from None
    if response.status_code == 200:
        return REVOKED
    if response.status_code == 429 or response.status_code >= 500:
        raise GoogleUnavailable(
            f"Google's revoke endpoint answered {response.status_code}.",
            retry_after=parse_retry_after(response.header("Retry-After")),
        )
    error, _, _ = _error_of(response)
    if response.status_code == 400 and error == "invalid_token":
        return ALREADY_REVOKED
    raise UpstreamInvalid(f"Google's revoke endpoint refused the revocation ({error or response.status_code}).")
