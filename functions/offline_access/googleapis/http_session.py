"""One pooled HTTP session per instance for every call to Google, and two facts about its calls.

Reusing connections (keep-alive, TLS sessions) is most of the speed of the scheduled job and of
warm exchanges. Retries are never automatic at this level: each caller decides whether a request
may be repeated (a one-time code may not be), with the two facts every such decision needs:
whether a failed request certainly never reached the server (`never_sent`), and how long the
server asked us to wait (`parse_retry_after`).
"""

from __future__ import annotations

import email.utils
import os
import time
from collections.abc import Mapping
from http.cookiejar import DefaultCookiePolicy

import requests
import urllib3
from requests.adapters import HTTPAdapter

USER_AGENT = "offline-access/1.0 (+google-one-time-code-flow)"
RETRY_AFTER_MIN_SECONDS = 1
RETRY_AFTER_MAX_SECONDS = 120
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
_CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def make_session(pool_size: int = 16, environ: Mapping[str, str] = os.environ) -> requests.Session:
    """A session whose connection pool fits `pool_size` concurrent requests per host."""
    session = requests.Session()
    if not any(environ.get(n) or environ.get(n.lower()) for n in _PROXY_VARIABLES):
        # With trust_env, requests re-reads proxy, CA-bundle and netrc settings on every
        # request (about a tenth of the job's CPU per user). Without proxies, read the CA
        # bundle once here instead.
        session.trust_env = False
        bundle = next((environ[n] for n in _CA_BUNDLE_VARIABLES if environ.get(n)), None)
        if bundle:
            session.verify = bundle
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=max(pool_size, 1), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    # Shared by every user of the instance: a cookie one answer set must never go with another
    # user's request.
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return session


def never_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly did not reach the server (the connection never opened)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date), clamped.

    Returns None when the header is absent or unusable (negative, garbage).
    """
    if value is None:
        return None
    value = value.strip()
    seconds: float
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
        if seconds < 0:
            return None
    return float(min(max(seconds, RETRY_AFTER_MIN_SECONDS), RETRY_AFTER_MAX_SECONDS))
