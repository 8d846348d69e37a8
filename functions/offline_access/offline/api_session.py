"""The authorized session the offline tasks call Google with, as one user.

- retries 429, 5xx, rate-limit 403s and (for idempotent methods) timeouts with the user's
  `Retrier`, never past the run's deadline; each call's timeout is cut to what is left of it;
- on a 401, refreshes once and retries once: a second 401 is the task's failure, never a loop.

It goes through the instance's pooled client: one connection pool shared by every user and
thread, instead of a new `AuthorizedSession` (and pool) per user.
"""

from __future__ import annotations

from typing import Any

from ..errors import ApiRefused, GoogleUnavailable
from ..googleapis.endpoints import GoogleEndpoints
from ..googleapis.http_session import HttpClient, HttpResponse, TransportError, parse_retry_after
from .backoff import Retrier
from .tokens import UserTokens

_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# Google APIs (Drive among them) report rate limits as 403 with these reasons.
_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def _google_reason(response: HttpResponse) -> str:
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
        http: HttpClient,
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
    ) -> HttpResponse:
        """Send one API request with the user's bearer token; retries as the module says.

        Returns the final response, whatever its status (after at most one forced refresh on
        401, and retries of 429, 5xx, rate-limit 403s and, for idempotent methods, timeouts).

        Raises:
            GoogleUnavailable: still failing when the retries ran out.
            DeadlineReached: the run's deadline came first.
            GrantRevoked: the forced refresh found the refresh token dead.
        """
        method = method.upper()
        while True:
            token = self._tokens.access_token()

            def send(token: str = token) -> HttpResponse:
                return self._send(method, url, token, params, json, headers)

            response = self._retrier.call(send)
            if response.status_code == 401 and not self._forced_refresh:
                # The token looked valid but Google disagrees (revoked access token, clock
                # skew): one refresh and one retry for the whole user, never more.
                self._forced_refresh = True
                self._tokens.refresh()
                continue
            return response

    def _send(
        self,
        method: str,
        url: str,
        token: str,
        params: dict[str, Any] | None,
        json: Any,
        headers: dict[str, str] | None,
    ) -> HttpResponse:
        all_headers = {"Authorization": f"Bearer {token}"}
        if headers:
            all_headers.update(headers)
        self.calls += 1
        try:
            response = self._http.request(
                method, url, params=params, json=json, headers=all_headers,
                timeout=self._retrier.timeout(self._timeout),
            )
        except TransportError as exc:
            if method in _IDEMPOTENT or exc.never_sent:
                raise GoogleUnavailable(
                    f"A Google API did not answer ({exc})."
                ) from None
            # It may have reached Google: repeating a non-idempotent call could repeat its effect.
            raise ApiRefused(0, f"no_answer_{exc}") from None
        status = response.status_code
        if status in _RETRYABLE_STATUS or (
            status == 403 and _google_reason(response) in _RATE_LIMIT_REASONS
        ):
            raise GoogleUnavailable(
                f"A Google API answered {status}.",
                retry_after=parse_retry_after(response.header("Retry-After")),
            )
        return response

    def get_json(self, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a JSON object.

        Raises:
            ApiRefused: a final non-2xx answer, or a body that is not a JSON object.
            GoogleUnavailable, GrantRevoked: see `request`.
        """
        response = self.request("GET", url, params=params)
        if not 200 <= response.status_code < 300:
            raise ApiRefused(response.status_code, _google_reason(response))
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApiRefused(response.status_code, "not_a_json_object")
        return body
