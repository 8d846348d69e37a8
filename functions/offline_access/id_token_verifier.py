"""Verifies the ID token in Google's token response, and keeps Google's certificates cached.

The signature is checked by google-auth (`google.auth.jwt.decode`) against Google's published
certificates, which are fetched at most once per `Cache-Control: max-age` window (google-auth's
own `verify_token` fetches them on every call). Only RS256 is accepted. A token signed with a key
we do not know triggers one early refetch (Google may just have rotated), rate-limited so that
bad tokens cannot make us hammer the endpoint.

Reference: https://developers.google.com/identity/gsi/web/guides/verify-google-id-token
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from google.auth import exceptions as auth_exceptions
from google.auth import jwt

from .errors import Unavailable, UpstreamInvalid

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
DEFAULT_MAX_AGE_SECONDS = 300
MIN_REFETCH_INTERVAL_SECONDS = 1.0
CLOCK_SKEW_SECONDS = 10


class DomainNotAllowed(Exception):
    """The account belongs to a Workspace domain (or none) that this deployment does not allow."""


def _max_age(cache_control: str | None) -> int:
    match = re.search(r"max-age=(\d+)", cache_control or "")
    return int(match.group(1)) if match else DEFAULT_MAX_AGE_SECONDS


class CertificateCache:
    """Google's `{kid: PEM}` certificates, refreshed as their Cache-Control allows."""

    def __init__(
        self,
        session: requests.Session,
        certs_url: str,
        *,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._url = certs_url
        self._timeout = timeout
        self._clock = clock
        self._certs: dict[str, str] = {}
        self._expires_at = 0.0
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()
        self.fetches = 0

    def _fetch(self) -> None:
        self.fetches += 1
        self._fetched_at = self._clock()
        try:
            response = self._session.get(self._url, timeout=self._timeout)
        except requests.RequestException:
            response = None
        if response is None or response.status_code != 200:
            raise Unavailable(
                "Google's signing certificates are unavailable. Try again shortly.",
                dependency="certificates",
            )
        try:
            certs = response.json()
        except ValueError:
            certs = None
        if not isinstance(certs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in certs.items()
        ):
            raise Unavailable(
                "Google's signing certificates could not be read. Try again shortly.",
                dependency="certificates",
            )
        self._certs = certs
        self._expires_at = self._fetched_at + _max_age(response.headers.get("Cache-Control"))

    def stale(self) -> bool:
        """True when the next verification would have to fetch the certificates."""
        return self._clock() >= self._expires_at

    def certs_for(self, kid: str | None) -> dict[str, str]:
        """The current certificates; refetched when stale, or once when `kid` is unknown."""
        with self._lock:
            now = self._clock()
            if now >= self._expires_at:
                self._fetch()
            elif (
                kid is not None
                and kid not in self._certs
                and now - self._fetched_at >= MIN_REFETCH_INTERVAL_SECONDS
            ):
                self._fetch()
            return self._certs


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
        claims = jwt.decode(
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
            raise DomainNotAllowed(hd if isinstance(hd, str) else "")
    return dict(claims)
