"""Google's signing keys and discovery documents, kept as their Cache-Control allows.

`CachedDocument` fetches one JSON document of Google's, parses it into a map, and keeps it for
its `Cache-Control: max-age` window. A lookup of a key the map lacks (a token signed with a key
we do not know: Google may just have rotated) triggers an early refetch: at most one per second
after the last *successful* fetch, so that bad tokens cannot make us hammer the endpoint. A
failed fetch never delays the next one, and a refetch asked for within that second waits for
it instead of being refused: a valid token signed with a just-rotated key is never turned
away because of the rate limit.

Three documents use it:

- `CertificateCache`: the ID tokens' `{kid: PEM}` certificates (v1), which google-auth verifies;
- `JwksCache`: a JWKS `{"keys": [JWK]}` (the RISC configuration's `jwks_uri`), as RSA public
  keys built with `cryptography`;
- `risc_configuration`: Google's RISC discovery document (`issuer`, `jwks_uri`), looked up
  without a key.

Reference: https://developers.google.com/identity/gsi/web/guides/verify-google-id-token ;
https://developers.google.com/identity/protocols/risc#validate
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric import rsa

from ..errors import Unavailable
from .http_session import HttpClient, TransportError

DEFAULT_MAX_AGE_SECONDS = 300
MIN_REFETCH_INTERVAL_SECONDS = 1.0

V = TypeVar("V")


def _max_age(cache_control: str | None) -> int:
    match = re.search(r"max-age=(\d+)", cache_control or "")
    return int(match.group(1)) if match else DEFAULT_MAX_AGE_SECONDS


class CachedDocument(Generic[V]):
    """One of Google's JSON documents as a map, refreshed as its Cache-Control allows.

    Args:
        parse: the fetched JSON to the map; raises ValueError for a document it cannot use.
        dependency: the name an `Unavailable` carries (`certificates`, `risc_configuration`).
        describes: what the document is, for the `Unavailable`'s sentence.
    """

    def __init__(
        self,
        http: HttpClient,
        url: str,
        parse: Callable[[Any], dict[str, V]],
        *,
        dependency: str = "certificates",
        describes: str = "signing certificates",
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http
        self.url = url
        self._parse = parse
        self._dependency = dependency
        self._describes = describes
        self._timeout = timeout
        self._clock = clock
        self._sleep = sleep
        self._values: dict[str, V] = {}
        self._expires_at = 0.0
        self._fetched_at = float("-inf")  # the last successful fetch
        self._lock = threading.Lock()

    def _unavailable(self, what: str) -> Unavailable:
        return Unavailable(f"Google's {self._describes} {what}. Try again shortly.",
                           dependency=self._dependency)

    def _fetch(self) -> None:
        started = self._clock()
        try:
            response = self._http.get(self.url, timeout=self._timeout)
        except TransportError:
            response = None
        if response is None or response.status_code != 200:
            raise self._unavailable("are unavailable")
        try:
            values = self._parse(response.json())
        except ValueError:
            raise self._unavailable("could not be read") from None
        self._values = values
        self._fetched_at = started
        self._expires_at = started + _max_age(response.header("Cache-Control"))

    def stale(self) -> bool:
        """True when the next lookup would have to fetch the document."""
        return self._clock() >= self._expires_at

    def current(self, key: str | None = None) -> dict[str, V]:
        """The current map; refetched when stale, or when `key` is given and not in it.

        Raises:
            Unavailable: a fetch was needed and failed (never a stale answer in its place).
        """
        asked_at = self._clock()
        while True:
            with self._lock:
                now = self._clock()
                if now >= self._expires_at:
                    self._fetch()
                    return self._values
                # A fetch that started after we were asked is as fresh as one of our own.
                if key is None or key in self._values or self._fetched_at > asked_at:
                    return self._values
                wait = self._fetched_at + MIN_REFETCH_INTERVAL_SECONDS - now
                if wait <= 0:
                    self._fetch()
                    return self._values
            # Outside the lock: lookups of known keys are not held up meanwhile.
            self._sleep(wait)


def parse_pem_certificates(document: Any) -> dict[str, str]:
    """The v1 certificates: `{kid: PEM}`."""
    if not isinstance(document, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in document.items()
    ):
        raise ValueError("not a {kid: PEM} map")
    return dict(document)


class CertificateCache(CachedDocument[str]):
    """Google's `{kid: PEM}` certificates, refreshed as their Cache-Control allows."""

    def __init__(self, http: HttpClient, certs_url: str, **kwargs: Any) -> None:
        super().__init__(http, certs_url, parse_pem_certificates, **kwargs)

    def certs_for(self, kid: str | None) -> dict[str, str]:
        """The current certificates; refetched when stale, or when `kid` is unknown.

        Raises:
            Unavailable: a fetch was needed and failed.
        """
        return self.current(kid)


def _b64url_int(value: Any) -> int:
    if not isinstance(value, str) or not value:
        raise ValueError("not a base64url integer")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not a base64url integer") from None
    return int.from_bytes(raw, "big")


def parse_jwks(document: Any) -> dict[str, rsa.RSAPublicKey]:
    """A JWKS `{"keys": [JWK]}` as `{kid: RSA public key}`: the RSA signing keys only (RFC 7517).

    Keys of another type, for another use, without a `kid`, or malformed are left out; a
    document that is not a JWKS at all is a ValueError.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS")
    keys: dict[str, rsa.RSAPublicKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, Mapping) or jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig":
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid or jwk.get("alg", "RS256") != "RS256":
            continue
        try:
            keys[kid] = rsa.RSAPublicNumbers(_b64url_int(jwk.get("e")), _b64url_int(jwk.get("n"))).public_key()
        except ValueError:
            continue  # one unusable key does not hide the others
    return keys


class JwksCache(CachedDocument[rsa.RSAPublicKey]):
    """A JWKS's RSA signing keys by `kid`, refreshed as its Cache-Control allows."""

    def __init__(self, http: HttpClient, jwks_uri: str, **kwargs: Any) -> None:
        kwargs.setdefault("describes", "security event signing keys")
        super().__init__(http, jwks_uri, parse_jwks, **kwargs)


def parse_risc_configuration(document: Any) -> dict[str, str]:
    """Google's RISC configuration: the `issuer` and `jwks_uri` a receiver needs."""
    if not isinstance(document, Mapping):
        raise ValueError("not a RISC configuration")
    issuer, jwks_uri = document.get("issuer"), document.get("jwks_uri")
    if not isinstance(issuer, str) or not issuer or not isinstance(jwks_uri, str) \
            or not jwks_uri.startswith(("https://", "http://")):
        raise ValueError("the RISC configuration lacks issuer or jwks_uri")
    return {"issuer": issuer, "jwks_uri": jwks_uri}


def risc_configuration(http: HttpClient, url: str, **kwargs: Any) -> CachedDocument[str]:
    """Google's RISC configuration document (`issuer`, `jwks_uri`), kept per Cache-Control."""
    return CachedDocument(http, url, parse_risc_configuration, dependency="risc_configuration",
                          describes="Cross-Account Protection settings", **kwargs)
