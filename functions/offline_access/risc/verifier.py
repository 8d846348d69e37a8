"""Checks a pushed security event token as Google's Cross-Account Protection guide says.

1. The body is a compact JWS: three base64url segments, a JSON header and claims.
2. The header names its key (`kid`; without one, 400) and the algorithm is RS256, nothing else
   (`none` and HS256 signed with the public key are the classic forgeries).
3. The issuer and `jwks_uri` come from Google's RISC configuration
   (`https://accounts.google.com/.well-known/risc-configuration`), and the keys from that
   `jwks_uri`, each kept as its Cache-Control allows (`googleapis.certificates`); a `kid` the
   keys lack refetches them, at most once a second.
4. The RS256 signature is checked with `cryptography` against that key.
5. `iss` is the configuration's issuer; `aud` is one of our client ids; `jti`, `iat` and a
   non-empty `events` object are there. `exp` is **not** checked: security event tokens are
   records of the past and carry none (Google's Python sample passes `verify_exp: False`).

google-auth's `jwt.decode` is not used: it requires `exp`. Every refusal is a
`SecurityEventRejected` (400) with RFC 8935's `err` code, and nothing has been done yet. If
Google's configuration or keys cannot be fetched, the error is `Unavailable` (503): Google
delivers the token again later.

Reference: https://developers.google.com/identity/protocols/risc#validate
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from ..errors import SecurityEventRejected
from ..googleapis.certificates import CachedDocument, JwksCache, risc_configuration
from ..googleapis.http_session import HttpClient

_SEGMENT = re.compile(r"[A-Za-z0-9_\-]+")
MAX_JTI_CHARS = 256


def _rejected(message: str, code: str, err: str = "invalid_request") -> SecurityEventRejected:
    return SecurityEventRejected(message, code=code, err=err)


def _decode(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise _rejected("The body is not a security event token (a signed JWT).",
                        "malformed_token") from None


def _json_object(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(_decode(segment))
    except (ValueError, UnicodeDecodeError):
        value = None
    if not isinstance(value, dict):
        raise _rejected("The security event token's header or claims are not a JSON object.",
                        "malformed_token")
    return value


def split_token(body: bytes) -> tuple[str, str, str]:
    """The token's three segments, from the request body.

    Raises:
        SecurityEventRejected: not a compact JWS.
    """
    try:
        text = body.decode("ascii").strip()
    except UnicodeDecodeError:
        text = ""
    parts = text.split(".")
    # An unsigned token (`alg: none`) has an empty signature: refused for its algorithm.
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(p) for p in parts[:2]) \
            or not _SEGMENT.fullmatch(parts[2] or "-"):
        raise _rejected("The body is not a security event token (a signed JWT).", "malformed_token")
    return parts[0], parts[1], parts[2]


def _check_claims(claims: Mapping[str, Any], *, issuer: str, audiences: tuple[str, ...]) -> None:
    if claims.get("iss") != issuer:
        raise _rejected("The security event token was not issued by Google.", "wrong_issuer",
                        "invalid_issuer")
    aud = claims.get("aud")
    addressed = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not any(isinstance(a, str) and a in audiences for a in addressed):
        raise _rejected("The security event token is addressed to another client.",
                        "wrong_audience", "invalid_audience")
    jti, iat, events = claims.get("jti"), claims.get("iat"), claims.get("events")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_CHARS:
        raise _rejected("The security event token has no valid jti.", "malformed_claims")
    if not isinstance(iat, (int, float)) or isinstance(iat, bool) or iat < 0:
        raise _rejected("The security event token has no valid iat.", "malformed_claims")
    if not isinstance(events, dict) or not events:
        raise _rejected("The security event token carries no events.", "malformed_claims")


class SetVerifier:
    """Verifies security event tokens against Google's RISC configuration and keys.

    Args:
        http: the instance's pooled HTTP client.
        configuration_url: Google's RISC configuration (`GoogleEndpoints.risc_configuration`).
        audiences: the client ids a token may be addressed to.
    """

    def __init__(self, http: HttpClient, configuration_url: str,
                 audiences: tuple[str, ...], *, timeout: float = 5.0) -> None:
        self._http = http
        self._timeout = timeout
        self.configuration: CachedDocument[str] = risc_configuration(http, configuration_url,
                                                                     timeout=timeout)
        self.audiences = audiences
        self._keys: dict[str, JwksCache] = {}
        self._lock = threading.Lock()

    def keys(self, jwks_uri: str) -> JwksCache:
        """The key cache of a `jwks_uri` (one per URI the configuration has named)."""
        with self._lock:
            cache = self._keys.get(jwks_uri)
            if cache is None:
                cache = self._keys[jwks_uri] = JwksCache(self._http, jwks_uri,
                                                         timeout=self._timeout)
            return cache

    def warm_up(self) -> None:
        """Fetch the configuration and the keys now (a new instance's first work).

        Raises:
            Unavailable: either could not be fetched.
        """
        self.keys(self.configuration.current()["jwks_uri"]).current()

    def verify(self, body: bytes) -> dict[str, Any]:
        """The claims of a valid token (see the module's steps).

        Raises:
            SecurityEventRejected: malformed, forged, or not ours (400; nothing was done).
            Unavailable: Google's configuration or keys could not be fetched (503).
        """
        header_b64, claims_b64, signature_b64 = split_token(body)
        header = _json_object(header_b64)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _rejected("The security event token names no signing key (kid).", "no_key_id",
                            "invalid_key")
        if header.get("alg") != "RS256":
            raise _rejected("The security event token must be signed with RS256.",
                            "unsupported_algorithm", "invalid_key")
        configuration = self.configuration.current()
        key = self.keys(configuration["jwks_uri"]).current(kid).get(kid)
        if key is None:
            raise _rejected("The security event token is signed with a key Google does not publish.",
                            "unknown_key", "invalid_key")
        try:
            key.verify(_decode(signature_b64), f"{header_b64}.{claims_b64}".encode("ascii"),
                       padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise _rejected("The security event token's signature is not valid.", "bad_signature",
                            "invalid_key") from None
        claims = _json_object(claims_b64)
        _check_claims(claims, issuer=configuration["issuer"], audiences=self.audiences)
        return claims
