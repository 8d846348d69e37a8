"""Command line: serve the local Google until SIGINT or SIGTERM.

    python -m localdev.local_google --host 127.0.0.1 --port 8090 \
        --client-id ID --client-secret SECRET --origin http://localhost:8080
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .directory import REFRESH_TOKEN_MODES
from .service import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORIGINS, LocalGoogle


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m localdev.local_google",
        description="A local Google OAuth server, certs, userinfo, Drive appData and GIS script.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8090, help="port (0 = any free port)")
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--project-id", default=None,
                        help="the client's Cloud project (RISC stream, service accounts); "
                             "default: the client id's first label")
    parser.add_argument("--origin", action="append", dest="origins",
                        help="authorized JavaScript origin (repeatable; default http://localhost:8080)")
    parser.add_argument("--refresh-token-mode", choices=REFRESH_TOKEN_MODES, default="first_consent")
    parser.add_argument("--testing-mode", action="store_true",
                        help="the client's project is in Testing: refresh tokens expire after 7 days")
    parser.add_argument("--latency-ms", type=int, default=0, help="latency before every answer")
    parser.add_argument("--code-ttl", type=int, default=600, help="authorization code lifetime (s)")
    parser.add_argument("--certs-max-age", type=int, default=21600, help="certs Cache-Control max-age")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    google = LocalGoogle(
        args.client_id,
        args.client_secret,
        args.origins or DEFAULT_ORIGINS,
        refresh_token_mode=args.refresh_token_mode,
        testing_mode=args.testing_mode,
        latency_ms=args.latency_ms,
        code_ttl=args.code_ttl,
        certs_max_age=args.certs_max_age,
        project_id=args.project_id,
        verbose=args.verbose,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        google.start(args.host, args.port)
    except OSError as exc:
        print(f"local Google: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"local Google listening on {google.url} (client_id {args.client_id})", flush=True)
    # The main thread only waits, so signal handlers run promptly.
    while not stop.wait(0.5):
        pass
    google.stop()
    print("local Google stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
