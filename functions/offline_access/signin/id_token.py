"""Verifies the ID token in Google's token response: claims always, the signature when it can.

The claims (`iss`, `aud`, `azp`, `exp`, `iat`, `sub`, `hd`) are always checked. The signature is
checked by google-auth (`google.auth.jwt.decode`) against Google's published certificates, kept
by `googleapis.certificates.CertificateCache` (google-auth's own `verify_token` fetches them on
every call). Only RS256 is accepted.

Google's OpenID Connect guide says that an ID token received straight from the token endpoint,
over TLS and authenticated with the client secret, may be trusted without checking its
signature (OIDC Core §3.1.3.7 says the same). So for such a token (`from_token_endpoint`), a
certificate outage does not fail the sign-in: the signature check is skipped, the claims are
still checked, and the result says so (`signature_checked`), which the request's log line turns
into a WARNING. A token whose key is unknown even to freshly fetched certificates, or whose
signature or claims are wrong, is rejected (`IdTokenRejected`): a final rejection.

Reference: https://developers.google.com/identity/openid-connect/openid-connect#obtainuserinfo
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from google.auth import exceptions as auth_exceptions
from google.auth import jwt

from ..errors import DomainNotAllowed, IdTokenRejected, Unavailable
from ..googleapis.certificates import CertificateCache

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
CLOCK_SKEW_SECONDS = 10


@dataclass(frozen=True)
class VerifiedIdToken:
    """The ID token's checked claims, and whether its signature was checked too."""

    claims: dict[str, Any]
    signature_checked: bool


def _segment(token: str, index: int) -> dict[str, Any]:
    try:
        segment = token.split(".")[index]
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(decoded)
    except (ValueError, IndexError):
        raise IdTokenRejected("Google's ID token is malformed.") from None
    if not isinstance(value, dict):
        raise IdTokenRejected("Google's ID token is malformed.")
    return value


def _check_claims(
    claims: dict[str, Any], *, client_id: str, allowed_hosted_domains: tuple[str, ...], now: float
) -> None:
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise IdTokenRejected("Google's ID token has the wrong issuer.")
    aud = claims.get("aud")
    if aud != client_id and not (isinstance(aud, list) and client_id in aud):
        raise IdTokenRejected("Google's ID token was issued for another client.")
    azp = claims.get("azp")
    if azp is not None and azp != client_id:
        raise IdTokenRejected("Google's ID token was issued to another client.")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool) or exp + CLOCK_SKEW_SECONDS < now:
        raise IdTokenRejected("Google's ID token has expired.")
    if not isinstance(iat, (int, float)) or isinstance(iat, bool) or iat - CLOCK_SKEW_SECONDS > now:
        raise IdTokenRejected("Google's ID token was issued in the future.")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255 or "/" in sub:
        raise IdTokenRejected("Google's ID token has no valid subject.")
    if allowed_hosted_domains:
        hd = claims.get("hd")
        if not isinstance(hd, str) or hd.lower() not in allowed_hosted_domains:
            raise DomainNotAllowed()


def verify_id_token(
    token: str,
    certs: CertificateCache,
    *,
    client_id: str,
    allowed_hosted_domains: tuple[str, ...] = (),
    from_token_endpoint: bool = False,
    now: float | None = None,
) -> VerifiedIdToken:
    """The verified claims of a Google ID token.

    Args:
        from_token_endpoint: the token came straight from Google's token endpoint over TLS,
            with our client secret: its signature may be skipped when the certificates cannot
            be fetched.

    Raises:
        IdTokenRejected: malformed, wrong algorithm, unknown key, bad signature or claims.
        DomainNotAllowed: the account's `hd` is not allowlisted.
        Unavailable: the certificates could not be fetched (only when the token did not come
            straight from the token endpoint).
    """
    if token.count(".") != 2:
        raise IdTokenRejected("Google's ID token is malformed.")
    header = _segment(token, 0)
    if header.get("alg") != "RS256":
        raise IdTokenRejected("Google's ID token uses an unexpected signing algorithm.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise IdTokenRejected("Google's ID token names no signing key.")
    try:
        certificates: dict[str, str] | None = certs.certs_for(kid)
    except Unavailable:
        if not from_token_endpoint:
            raise
        certificates = None
    if certificates is None:
        claims = _segment(token, 1)
    else:
        if kid not in certificates:
            raise IdTokenRejected("Google's ID token is signed by an unknown key.")
        try:
            claims = jwt.decode(  # type: ignore[no-untyped-call]
                token,
                certs={kid: certificates[kid]},
                audience=client_id,
                clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
            )
        except (ValueError, auth_exceptions.GoogleAuthError):
            # google-auth's messages can quote the token itself: never pass them on.
            raise IdTokenRejected("Google's ID token failed verification.") from None
    _check_claims(claims, client_id=client_id, allowed_hosted_domains=allowed_hosted_domains,
                  now=time.time() if now is None else now)
    return VerifiedIdToken(dict(claims), signature_checked=certificates is not None)
