"""Who may call the token API: a Google ID token for this API, of an allowlisted service account.

In production Cloud Run IAM admits only the service accounts given `run.invoker` (Terraform's
`app_backend_service_accounts`) and passes their `Authorization` header on. The function checks the same
token again, so that a mistake in IAM (an `allUsers` binding, a broad role) does not open the
API, and so that the rule runs the same way locally, where nothing stands in front of it:

- `Authorization: Bearer <JWT>`, RS256, signed by a key in Google's published certificates
  (`googleapis.certificates.CertificateCache`, the same cache the sign-in uses);
- `iss` Google's, `aud` one of this API's URLs (`TOKEN_API_AUDIENCES`), not expired;
- `email` verified and on `TOKEN_API_ALLOWED_CALLERS`.

A missing or bad token is 401 `unauthenticated`; a good token of another identity is 403
`caller_not_allowed`. No answer or log line quotes the token or google-auth's message about it.

Reference: https://cloud.google.com/run/docs/authenticating/service-to-service
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.auth import exceptions as auth_exceptions
from google.auth import jwt

from ..errors import CallerNotAllowed, CallerRejected
from ..googleapis.certificates import CertificateCache

GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
CLOCK_SKEW_SECONDS = 10
MAX_TOKEN_CHARS = 4096


def _header(token: str) -> dict[str, Any]:
    try:
        segment = token.split(".")[0]
        value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, IndexError):
        raise CallerRejected() from None
    if not isinstance(value, dict):
        raise CallerRejected()
    return value


class CallerVerifier:
    """Checks the caller's ID token; answers the caller's service-account email."""

    def __init__(self, certificates: CertificateCache, *, audiences: tuple[str, ...],
                 allowed: tuple[str, ...]) -> None:
        self._certificates = certificates
        self._audiences = list(audiences)
        self._allowed = frozenset(email.lower() for email in allowed)

    def verify(self, authorization: str | None) -> str:
        """The caller's email.

        Raises:
            CallerRejected: no bearer token, or one that is malformed, forged, expired or for
                another audience (401).
            CallerNotAllowed: a valid token of an identity not on the allowlist (403).
            Unavailable: Google's certificates could not be fetched.
        """
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS \
                or token.count(".") != 2:
            raise CallerRejected()
        header = _header(token)
        kid = header.get("kid")
        if header.get("alg") != "RS256" or not isinstance(kid, str) or not kid:
            raise CallerRejected()
        certificates = self._certificates.certs_for(kid)
        if kid not in certificates:
            raise CallerRejected()
        try:
            claims = jwt.decode(  # type: ignore[no-untyped-call]
                token, certs={kid: certificates[kid]}, audience=self._audiences,
                clock_skew_in_seconds=CLOCK_SKEW_SECONDS)
        except (ValueError, auth_exceptions.GoogleAuthError):
            raise CallerRejected() from None
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise CallerRejected()
        email = claims.get("email")
        if not isinstance(email, str) or claims.get("email_verified") is not True:
            raise CallerNotAllowed()
        if email.lower() not in self._allowed:
            raise CallerNotAllowed()
        return email.lower()
