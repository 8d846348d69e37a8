"""Google's signing certificates, kept as their Cache-Control allows.

They are fetched at most once per `Cache-Control: max-age` window. A token signed with a key we
do not know triggers an early refetch (Google may just have rotated): at most one per second
after the last *successful* fetch, so that bad tokens cannot make us hammer the endpoint. A
failed fetch never delays the next one, and a refetch asked for within that second waits for
it instead of being refused: a valid token signed with a just-rotated key is never turned
away because of the rate limit.

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
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._session = session
        self._url = certs_url
        self._timeout = timeout
        self._clock = clock
        self._sleep = sleep
        self._certs: dict[str, str] = {}
        self._expires_at = 0.0
        self._fetched_at = float("-inf")  # the last successful fetch
        self._lock = threading.Lock()

    def _fetch(self) -> None:
        started = self._clock()
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
        self._fetched_at = started
        self._expires_at = started + _max_age(response.headers.get("Cache-Control"))

    def stale(self) -> bool:
        """True when the next verification would have to fetch the certificates."""
        return self._clock() >= self._expires_at

    def certs_for(self, kid: str | None) -> dict[str, str]:
        """The current certificates; refetched when stale, or when `kid` is unknown.

        Raises:
            Unavailable: a fetch was needed and failed (never a stale answer in its place).
        """
        asked_at = self._clock()
        while True:
            with self._lock:
                now = self._clock()
                if now >= self._expires_at:
                    self._fetch()
                    return self._certs
                # A fetch that started after we were asked is as fresh as one of our own.
                if kid is None or kid in self._certs or self._fetched_at > asked_at:
                    return self._certs
                wait = self._fetched_at + MIN_REFETCH_INTERVAL_SECONDS - now
                if wait <= 0:
                    self._fetch()
                    return self._certs
            # Outside the lock: tokens signed with known keys are not held up meanwhile.
            self._sleep(wait)
