"""Serves `static_site/` locally the way Firebase Hosting does: same files, same headers, and the
`/api/*` rewrites to the functions on the same origin.

    python -m localdev.static_server --port 8080 --exchange-url URL --gis-script-url URL \
        [--api /api/exchange=http://127.0.0.1:8081 --api /api/=http://127.0.0.1:8083]

Like Hosting's rewrites, a request whose path starts with a rewritten prefix (the longest one
wins) is forwarded to that function with its method, path, query and body, and with only one
cookie: `__session` (Hosting removes every other cookie from rewritten requests). The answer
comes back as the function gave it, `Set-Cookie` included, with the site's security headers.
A function that does not answer gives 502, as Hosting's proxy does.

Reference: https://firebase.google.com/docs/hosting/manage-cache#using_cookies
"""

from __future__ import annotations

import argparse
import functools
import json
import threading
from http.cookiejar import DefaultCookiePolicy
from http.cookies import CookieError, SimpleCookie
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from .site_config import security_headers

SITE_DIR = Path(__file__).resolve().parent.parent / "static_site"
SESSION_COOKIE = "__session"
# Headers a proxy never forwards (RFC 9110 §7.6.1), plus what it sets itself.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                         "te", "trailer", "transfer-encoding", "upgrade", "host", "cookie",
                         "content-length"})
_UPSTREAM_TIMEOUT = 70  # Hosting gives up on a rewritten request after 60 s


def only_session_cookie(header: str | None) -> str | None:
    """The `Cookie` header Hosting passes on: `__session` alone, or nothing."""
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(SESSION_COOKIE)
    return f"{SESSION_COOKIE}={morsel.value}" if morsel is not None else None


class _Handler(SimpleHTTPRequestHandler):
    extra_headers: dict[str, str] = {}
    rewrites: tuple[tuple[str, str], ...] = ()  # (path prefix, upstream base URL), longest first
    session: requests.Session

    # Headers of the function's answer being forwarded (lower case): the site's do not repeat them.
    upstream_headers: frozenset[str] | None = None

    def end_headers(self) -> None:
        for name, value in self.extra_headers.items():
            # The page's files are revalidated on every load; a function sets its own caching.
            forwarding = self.upstream_headers is not None
            if not (forwarding and (name == "Cache-Control" or name.lower() in self.upstream_headers)):
                self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass

    def _upstream(self) -> str | None:
        path = self.path.split("?", 1)[0]
        for prefix, base in self.rewrites:
            if path == prefix.rstrip("/") or path.startswith(prefix):
                return base.rstrip("/") + self.path
        return None

    def _forward(self, upstream: str) -> None:
        self.upstream_headers = frozenset()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else None
        headers = {name: value for name, value in self.headers.items()
                   if name.lower() not in _HOP_BY_HOP}
        headers["X-Forwarded-Host"] = self.headers.get("Host", "")
        headers["X-Forwarded-Proto"] = "http"
        cookie = only_session_cookie(self.headers.get("Cookie"))
        if cookie:
            headers["Cookie"] = cookie
        try:
            answer = self.session.request(self.command, upstream, data=body, headers=headers,
                                          allow_redirects=False, timeout=_UPSTREAM_TIMEOUT)
        except requests.RequestException:
            payload = json.dumps({"error": "service_unavailable",
                                  "message": "The function behind this route did not answer."})
            self._reply(502, {"Content-Type": "application/json"}, payload.encode(), [])
            return
        kept = {name: value for name, value in answer.headers.items()
                if name.lower() not in _HOP_BY_HOP | {"set-cookie", "content-encoding", "date",
                                                      "server"}}
        cookies = answer.raw.headers.getlist("Set-Cookie") if answer.raw is not None else []
        self._reply(answer.status_code, kept, answer.content, cookies)

    def _reply(self, status: int, headers: dict[str, str], body: bytes, cookies: list[str]) -> None:
        self.upstream_headers = frozenset(name.lower() for name in headers)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        for cookie in cookies:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward_or(self, serve) -> None:
        upstream = self._upstream()
        if upstream is not None:
            self._forward(upstream)
        elif serve is not None:
            serve()
        else:
            self.send_error(405)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._forward_or(super().do_GET)

    def do_HEAD(self) -> None:  # noqa: N802
        self._forward_or(super().do_HEAD)

    def do_POST(self) -> None:  # noqa: N802
        self._forward_or(None)

    def do_OPTIONS(self) -> None:  # noqa: N802
        self._forward_or(None)

    def do_PUT(self) -> None:  # noqa: N802
        self._forward_or(None)

    def do_DELETE(self) -> None:  # noqa: N802
        self._forward_or(None)


def _stateless_session() -> requests.Session:
    """A pooled session that never keeps a cookie: each browser's cookie is its own."""
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return session


class StaticSite:
    """The page server; `start()` runs it in a thread (tests), `serve_forever()` in the foreground.

    `rewrites` maps path prefixes (`/api/exchange`, `/api/`) to the functions' base URLs.
    """

    def __init__(self, *, exchange_url: str, gis_script_url: str, site_dir: Path = SITE_DIR,
                 host: str = "127.0.0.1", port: int = 8080,
                 rewrites: dict[str, str] | None = None) -> None:
        ordered = tuple(sorted((rewrites or {}).items(), key=lambda item: -len(item[0])))
        handler = type("Handler", (_Handler,), {
            "extra_headers": security_headers(exchange_url=exchange_url,
                                              gis_script_url=gis_script_url),
            "rewrites": ordered,
            "session": _stateless_session(),
        })
        self._server = ThreadingHTTPServer(
            (host, port), functools.partial(handler, directory=str(site_dir)))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://{'localhost' if host == '127.0.0.1' else host}:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> StaticSite:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--exchange-url", required=True)
    parser.add_argument("--gis-script-url", required=True)
    parser.add_argument("--api", action="append", default=[], metavar="PREFIX=URL",
                        help="forward requests under PREFIX to URL (repeatable)")
    args = parser.parse_args()
    rewrites = dict(item.split("=", 1) for item in args.api)
    site = StaticSite(exchange_url=args.exchange_url, gis_script_url=args.gis_script_url,
                      host=args.host, port=args.port, rewrites=rewrites)
    try:
        site.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
