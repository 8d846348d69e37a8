"""One pooled HTTP client per instance for every call to Google, and two facts about its calls.

Reusing connections (keep-alive, TLS sessions) is most of the speed of the scheduled job and of
warm exchanges. The client is urllib3 (the connection pool under `requests`, and a transport of
google-auth) used directly: each of the job's users makes two calls, and `requests`' own layer
(settings merged per call, hooks, cookie jars, the request prepared twice over) cost about as
much CPU as the rest of the call. It keeps no cookies, so nothing one answer sets can go with
another user's request.

Retries are never automatic at this level: each caller decides whether a request may be
repeated (a one-time code may not be), with the two facts every such decision needs: whether a
failed request certainly never reached the server (`TransportError.never_sent`), and how long
the server asked us to wait (`parse_retry_after`).
"""

from __future__ import annotations

import email.utils
import json as jsonlib
import os
import ssl
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import certifi
import urllib3

USER_AGENT = "offline-access/1.0 (+google-one-time-code-flow)"
RETRY_AFTER_MIN_SECONDS = 1
RETRY_AFTER_MAX_SECONDS = 120
_CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
_FORM = "application/x-www-form-urlencoded"


class TransportError(Exception):
    """No answer: the connection failed, timed out or broke. The message names the cause only.

    Attributes:
        never_sent: True when the request certainly did not reach the server (the connection
            never opened), so even a single-use request may be sent again.
    """

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.never_sent = isinstance(cause, urllib3.exceptions.ConnectTimeoutError)


@dataclass(frozen=True)
class HttpResponse:
    """An answer, read whole. `headers` looks names up case-insensitively."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        """The body as JSON. Raises ValueError when it is not JSON (or not UTF-8)."""
        return jsonlib.loads(self.content)


class HttpClient:
    """The instance's pooled client: `pool_size` concurrent requests per host, no retries.

    `HTTPS_PROXY`/`HTTP_PROXY` (and `NO_PROXY`) are read once, here; a CA bundle from
    `REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE` or `SSL_CERT_FILE` replaces certifi's.
    """

    def __init__(self, pool_size: int = 16, environ: Mapping[str, str] = os.environ) -> None:
        self.ca_certs = next((environ[n] for n in _CA_BUNDLE_VARIABLES if environ.get(n)),
                             certifi.where())
        # One context with the CA bundle loaded once: given `ca_certs` instead, urllib3 would
        # parse the bundle again for every new TLS connection. It checks hostnames.
        self.ssl_context = ssl.create_default_context(cafile=self.ca_certs)
        options: dict[str, Any] = {
            "num_pools": 8, "maxsize": max(pool_size, 1), "retries": False,
            "headers": {"User-Agent": USER_AGENT}, "ssl_context": self.ssl_context,
            "cert_reqs": "CERT_REQUIRED"}
        self.pool = urllib3.PoolManager(**options)
        lowered = {name.lower(): value for name, value in environ.items()}
        self._no_proxy = lowered.get("no_proxy", "")
        self._via_proxy = {scheme: urllib3.ProxyManager(lowered[f"{scheme}_proxy"], **options)
                           for scheme in ("http", "https") if lowered.get(f"{scheme}_proxy")}

    def manager_for(self, url: str) -> urllib3.PoolManager:
        """The pool a request to `url` goes through: a proxy's, or the direct one."""
        if not self._via_proxy:
            return self.pool
        parts = urlsplit(url)
        proxy = self._via_proxy.get(parts.scheme)
        # typeshed lacks proxy_bypass_environment; it is in urllib.request since Python 3.0.
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        if proxy is None or bypass(parts.hostname or "", {"no": self._no_proxy}):
            return self.pool
        return proxy

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float,
    ) -> HttpResponse:
        """Send one request: `data` as a form, or `json` as JSON. Raises `TransportError`.

        As with `requests`, a `params` or `data` entry whose value is None is left out.
        """
        all_headers = dict(headers or {})
        body: bytes | None = None
        if data is not None:
            body = urlencode(_present(data)).encode()
            all_headers.setdefault("Content-Type", _FORM)
        elif json is not None:
            body = jsonlib.dumps(json).encode()
            all_headers.setdefault("Content-Type", "application/json")
        if params:
            query = urlencode(_present(params), doseq=True)
            if query:
                url = f"{url}{'&' if '?' in url else '?'}{query}"
        try:
            answer = self.manager_for(url).request(
                method, url, body=body, headers=all_headers or None,
                timeout=urllib3.Timeout(total=timeout), redirect=False)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransportError(exc) from None
        return HttpResponse(answer.status, answer.headers, answer.data)

    def get(self, url: str, **kwargs: Any) -> HttpResponse:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> HttpResponse:
        return self.request("POST", url, **kwargs)


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


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
