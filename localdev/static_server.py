"""Serves `static_site/` locally the way production hosting does: same files, same headers.

    python -m localdev.static_server --port 8080 --exchange-url URL --gis-script-url URL
"""

from __future__ import annotations

import argparse
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .site_config import security_headers

SITE_DIR = Path(__file__).resolve().parent.parent / "static_site"


class _Handler(SimpleHTTPRequestHandler):
    extra_headers: dict[str, str] = {}

    def end_headers(self) -> None:
        for name, value in self.extra_headers.items():
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass


class StaticSite:
    """The page server; `start()` runs it in a thread (tests), `serve_forever()` in the foreground."""

    def __init__(self, *, exchange_url: str, gis_script_url: str, site_dir: Path = SITE_DIR,
                 host: str = "127.0.0.1", port: int = 8080) -> None:
        handler = type("Handler", (_Handler,), {
            "extra_headers": security_headers(exchange_url=exchange_url,
                                              gis_script_url=gis_script_url)})
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

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--exchange-url", required=True)
    parser.add_argument("--gis-script-url", required=True)
    args = parser.parse_args()
    site = StaticSite(exchange_url=args.exchange_url, gis_script_url=args.gis_script_url,
                      host=args.host, port=args.port)
    try:
        site._server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
