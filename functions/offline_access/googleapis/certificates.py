"""Google's signing certificates, kept as their Cache-Control allows.

They are fetched at most once per `Cache-Control: max-age` window. A token signed with a key we
do not know triggers one early refetch (Google may just have rotated), rate-limited so that bad
tokens cannot make us hammer the endpoint.

Reference: https://developers.google.com/identity/gsi/web/guides/verify-google-id-token
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import requests

from ..errors import Unavailable

DEFAULT_MAX_AGE_SECONDS = 300
MIN_REFETCH_INTERVAL_SECONDS = 1.0


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

    def _fetch(self) -> None:
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
