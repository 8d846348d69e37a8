"""Verifies the ID token in Google's token response: signature, algorithm, issuer, audience, subject.

The signature is checked by google-auth (`google.auth.jwt.decode`) against Google's published
certificates, kept by `googleapis.certificates.CertificateCache` (google-auth's own
`verify_token` fetches them on every call). Only RS256 is accepted.

Reference: https://developers.google.com/identity/gsi/web/guides/verify-google-id-token
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.auth import exceptions as auth_exceptions
from google.auth import jwt

from ..errors import DomainNotAllowed, UpstreamInvalid
from ..googleapis.certificates import CertificateCache

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
CLOCK_SKEW_SECONDS = 10


def _header(token: str) -> dict[str, Any]:
    try:
        segment = token.split(".")[0]
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(decoded)
    except (ValueError, IndexError):
        raise UpstreamInvalid("Google's ID token is malformed.") from None
    if not isinstance(header, dict):
        raise UpstreamInvalid("Google's ID token is malformed.")
    return header


def verify_id_token(
    token: str,
    certs: CertificateCache,
    *,
    client_id: str,
    allowed_hosted_domains: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The verified claims of a Google ID token.

    Raises:
        UpstreamInvalid: bad signature, algorithm, issuer, audience, expiry or claims.
        Unavailable: the certificates could not be fetched.
        DomainNotAllowed: the account's `hd` is not allowlisted.
    """
    if token.count(".") != 2:
        raise UpstreamInvalid("Google's ID token is malformed.")
    header = _header(token)
    if header.get("alg") != "RS256":
        raise UpstreamInvalid("Google's ID token uses an unexpected signing algorithm.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise UpstreamInvalid("Google's ID token names no signing key.")
    certificates = certs.certs_for(kid)
    if kid not in certificates:
        raise UpstreamInvalid("Google's ID token is signed by an unknown key.")
    try:
        claims: dict[str, Any] = jwt.decode(  # type: ignore[no-untyped-call]
            token,
            certs={kid: certificates[kid]},
            audience=client_id,
            clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
        )
    except (ValueError, auth_exceptions.GoogleAuthError):
        # google-auth's messages can quote the token itself: never pass them on.
        raise UpstreamInvalid("Google's ID token failed verification.") from None
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise UpstreamInvalid("Google's ID token has the wrong issuer.")
    azp = claims.get("azp")
    if azp is not None and azp != client_id:
        raise UpstreamInvalid("Google's ID token was issued to another client.")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255 or "/" in sub:
        raise UpstreamInvalid("Google's ID token has no valid subject.")
    if allowed_hosted_domains:
        hd = claims.get("hd")
        if not isinstance(hd, str) or hd.lower() not in allowed_hosted_domains:
            raise DomainNotAllowed()
    return dict(claims)
