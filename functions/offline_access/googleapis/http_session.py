"""One pooled HTTP client per instance for every call to Google, and two facts about its calls.

Reusing connections (keep-alive, TLS sessions) is most of the speed of the scheduled job and of
warm exchanges. The client is the standard library's `http.client` with a small pool of idle
connections per origin: each of the job's users makes two calls, and the general-purpose layers
above `http.client` cost CPU the job cannot spare. `requests` (settings merged per call, the
request prepared twice over) cost about as much as the rest of the call, and urllib3 used
directly still cost half as much again as this client (0.47 ms against 0.30 ms of CPU per call,
measured on the local Google: URL parsing and re-encoding, its response and header objects).
It keeps no cookies, so nothing one answer sets can go with another user's request.
google-auth's calls (ID tokens for internal calls) go through the same client, as a
`google.auth.transport.Request` (`AuthRequest`).

Retries are never automatic at this level: each caller decides whether a request may be
repeated (a one-time code may not be), with the two facts every such decision needs: whether a
failed request certainly never reached the server (`TransportError.never_sent`), and how long
the server asked us to wait (`parse_retry_after`).

Proxies: `HTTPS_PROXY`/`HTTP_PROXY` (an `http://` proxy, with credentials in its URL if it
needs them) and `NO_PROXY` are read once, when the client is built. HTTPS goes through the proxy
in a `CONNECT` tunnel, so TLS is still end to end with Google.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import json as jsonlib
import os
import select
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import certifi
import google.auth.exceptions
import google.auth.transport

from ..errors import ConfigError

USER_AGENT = "offline-access/1.0 (+google-one-time-code-flow)"
RETRY_AFTER_MIN_SECONDS = 1
RETRY_AFTER_MAX_SECONDS = 120
_CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
_FORM = "application/x-www-form-urlencoded"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# google-auth's own default, for its calls that name no timeout.
AUTH_TIMEOUT_SECONDS = 120
# Origins whose routes and idle connections are kept (the job and the functions call about four).
_ORIGINS = 8


class TransportError(Exception):
    """No answer: the connection failed, timed out or broke. The message names the cause only.

    Attributes:
        never_sent: True when the request certainly did not reach the server (the connection
            never opened), so even a single-use request may be sent again.
    """

    def __init__(self, cause: BaseException, *, never_sent: bool = False) -> None:
        super().__init__(type(cause).__name__)
        self.never_sent = never_sent


@dataclass(frozen=True)
class HttpResponse:
    """An answer, read whole. `headers` is keyed by lower-case names; `header` looks one up."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @classmethod
    def of(cls, status_code: int, headers: Iterable[tuple[str, str]], content: bytes) -> HttpResponse:
        """An answer from its header lines as they came (names in any case)."""
        return cls(status_code, {name.lower(): value for name, value in headers}, content)

    def header(self, name: str) -> str | None:
        """A header's value (the last one, if it came more than once), or None."""
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body as JSON. Raises ValueError when it is not JSON (or not UTF-8)."""
        return jsonlib.loads(self.content)


@dataclass(frozen=True)
class Route:
    """Where a request's connection goes: the origin, and the proxy in between, if any."""

    scheme: str
    host: str
    port: int
    proxy: tuple[str, int] | None = None
    proxy_headers: Mapping[str, str] | None = None


class _Origin:
    """Where one origin's requests go (`route`), and its idle connections, newest last (the
    likeliest to be still open)."""

    def __init__(self, route: Route, size: int) -> None:
        self.route = route
        self.size = size
        self.connections: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()

    def take(self) -> http.client.HTTPConnection | None:
        while True:
            with self.lock:
                if not self.connections:
                    return None
                connection = self.connections.pop()
            if not _dropped(connection):
                return connection
            connection.close()

    def give_back(self, connection: http.client.HTTPConnection) -> None:
        with self.lock:
            if len(self.connections) < self.size:
                self.connections.append(connection)
                return
        connection.close()


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle connection was closed by the server (readable means EOF or stray bytes)."""
    sock = connection.sock
    if sock is None:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class HttpClient:
    """The instance's pooled client: `pool_size` idle connections kept per origin, no retries.

    A CA bundle from `REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE` or `SSL_CERT_FILE` replaces certifi's.

    Raises:
        ConfigError: a proxy variable is not an `http://` URL.
    """

    def __init__(self, pool_size: int = 16, environ: Mapping[str, str] = os.environ) -> None:
        self.pool_size = max(pool_size, 1)
        self.ca_certs = next((environ[n] for n in _CA_BUNDLE_VARIABLES if environ.get(n)),
                             certifi.where())
        # One context with the CA bundle loaded once, shared by every TLS connection. It checks
        # hostnames.
        self.ssl_context = ssl.create_default_context(cafile=self.ca_certs)
        lowered = {name.lower(): value for name, value in environ.items()}
        self._no_proxy = lowered.get("no_proxy", "")
        self._proxies = {scheme: _proxy(lowered[f"{scheme}_proxy"], f"{scheme.upper()}_PROXY")
                         for scheme in ("http", "https") if lowered.get(f"{scheme}_proxy")}
        self._origins: dict[tuple[str, str], _Origin] = {}
        self._lock = threading.Lock()

    def route(self, url: str) -> Route:
        """How a request to `url` is sent: straight to its origin, or through a proxy."""
        parts = urlsplit(url)
        return self._origin(parts.scheme, parts.netloc).route

    def _origin(self, scheme: str, netloc: str) -> _Origin:
        """The origin's route and idle connections; at most `_ORIGINS` are kept."""
        origin = self._origins.get((scheme, netloc))
        if origin is not None:
            return origin
        parts = urlsplit(f"{scheme}://{netloc}")
        host, port = parts.hostname or "", parts.port or _DEFAULT_PORTS.get(scheme, 0)
        proxy = self._proxies.get(scheme)
        # typeshed lacks proxy_bypass_environment; it is in urllib.request since Python 3.0.
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        if proxy is None or bypass(host, {"no": self._no_proxy}):
            route = Route(scheme, host, port)
        else:
            route = Route(scheme, host, port, proxy[0], proxy[1])
        with self._lock:
            if len(self._origins) >= _ORIGINS and (scheme, netloc) not in self._origins:
                _, dropped = self._origins.popitem()
                for connection in dropped.connections:
                    connection.close()
            return self._origins.setdefault((scheme, netloc), _Origin(route, self.pool_size))

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float,
    ) -> HttpResponse:
        """Send one request: `data` as a form, `json` as JSON, or `content` as it is.

        Raises `TransportError`; ValueError for a URL that is not absolute http(s).

        `timeout` bounds the connection's opening; each wait for the answer is then bounded by
        what was left of it when the request went out. As with `requests`, a `params` or `data`
        entry whose value is None is left out.
        """
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError("only absolute http and https URLs can be requested")
        all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        body = content
        if data is not None:
            body = urlencode(_present(data)).encode()
            all_headers.setdefault("Content-Type", _FORM)
        elif json is not None:
            body = jsonlib.dumps(json).encode()
            all_headers.setdefault("Content-Type", "application/json")
        target = parts.path or "/"
        query = parts.query
        if params:
            extra = urlencode(_present(params), doseq=True)
            query = f"{query}&{extra}" if query and extra else query or extra
        if query:
            target = f"{target}?{query}"
        origin = self._origin(parts.scheme, parts.netloc)
        if origin.route.proxy is not None and origin.route.scheme == "http":
            target = f"http://{parts.netloc}{target}"  # a plain-HTTP proxy takes the whole URL
            all_headers.update(origin.route.proxy_headers or {})
        return self._send(origin, method, target, body, all_headers, timeout)

    def get(self, url: str, **kwargs: Any) -> HttpResponse:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> HttpResponse:
        return self.request("POST", url, **kwargs)

    def _send(self, origin: _Origin, method: str, target: str, body: bytes | None,
              headers: dict[str, str], timeout: float) -> HttpResponse:
        deadline = time.monotonic() + timeout
        connection = origin.take()
        if connection is None:
            connection = self._connect(origin.route, timeout)
        try:
            connection.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            connection.request(method, target, body=body, headers=headers)
            answer = connection.getresponse()
            content = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise TransportError(exc) from None
        if answer.will_close:
            connection.close()
        else:
            origin.give_back(connection)
        return HttpResponse.of(answer.status, answer.getheaders(), content)

    def _connect(self, route: Route, timeout: float) -> http.client.HTTPConnection:
        """A new connection, open: nothing is sent if this fails, so the error says never_sent."""
        host, port = route.proxy or (route.host, route.port)
        connection: http.client.HTTPConnection
        if route.scheme == "https":
            connection = http.client.HTTPSConnection(host, port, timeout=timeout,
                                                     context=self.ssl_context)
            if route.proxy is not None:
                connection.set_tunnel(route.host, route.port, headers=dict(route.proxy_headers or {}))
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            connection.connect()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise TransportError(exc, never_sent=True) from None
        return connection


class AuthRequest(google.auth.transport.Request):
    """google-auth's transport interface on an `HttpClient`, for credentials to fetch tokens."""

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def __call__(self, url: str, method: str = "GET", body: Any = None,
                 headers: Mapping[str, str] | None = None, timeout: float | None = None,
                 **kwargs: Any) -> google.auth.transport.Response:
        if isinstance(body, str):
            body = body.encode()
        try:
            answer = self._http.request(method, url, content=body, headers=headers,
                                        timeout=timeout or AUTH_TIMEOUT_SECONDS)
        except TransportError as exc:
            raise google.auth.exceptions.TransportError(str(exc)) from None  # type: ignore[no-untyped-call]
        return _AuthResponse(answer)


class _AuthResponse(google.auth.transport.Response):
    def __init__(self, answer: HttpResponse) -> None:
        self._answer = answer

    @property
    def status(self) -> int:
        return self._answer.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._answer.headers  # lower-case names, as google-auth looks them up

    @property
    def data(self) -> bytes:
        return self._answer.content


def _proxy(url: str, variable: str) -> tuple[tuple[str, int], dict[str, str]]:
    """A proxy's address and the headers it needs (Basic credentials from its URL)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"{variable} must be an http:// proxy URL (host and port), "
                          f"not {parts.scheme}://")
    headers = {}
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    return (parts.hostname, parts.port or 80), headers


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
