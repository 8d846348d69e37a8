"""The pooled session, and Retry-After parsing (property-tested)."""

import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offline_access.googleapis.http_session import (
    RETRY_AFTER_MAX_SECONDS,
    RETRY_AFTER_MIN_SECONDS,
    make_session,
    parse_retry_after,
)


class TestRetryAfter:
    @pytest.mark.parametrize("value,expected", [
        ("5", 5.0), ("0", RETRY_AFTER_MIN_SECONDS), ("86400", RETRY_AFTER_MAX_SECONDS),
        (None, None), ("", None), ("abc", None), ("-5", None), ("1.5", None),
    ])
    def test_values(self, value, expected):
        assert parse_retry_after(value) == expected

    def test_http_date(self):
        now = 1_800_000_000.0
        header = email.utils.formatdate(now + 30, usegmt=True)
        assert parse_retry_after(header, now=now) == 30.0
        assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) is None

    @given(st.text(max_size=40))
    def test_never_crashes_and_stays_clamped(self, value):
        result = parse_retry_after(value)
        assert result is None or RETRY_AFTER_MIN_SECONDS <= result <= RETRY_AFTER_MAX_SECONDS


class TestHttpSession:
    def test_ca_bundle_is_read_once_when_no_proxy_is_set(self):
        session = make_session(environ={"REQUESTS_CA_BUNDLE": "/etc/ssl/bundle.pem"})
        assert session.trust_env is False and session.verify == "/etc/ssl/bundle.pem"

    def test_proxies_keep_requests_environment_handling(self):
        session = make_session(environ={"https_proxy": "http://proxy.internal:3128"})
        assert session.trust_env is True and session.verify is True

    def test_pool_fits_the_concurrency(self):
        adapter = make_session(pool_size=48, environ={}).get_adapter("https://oauth2.googleapis.com")
        assert adapter._pool_maxsize == 48



def test_the_shared_session_keeps_no_cookie_between_users():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from offline_access.googleapis.http_session import make_session

    received = []

    class SetsACookie(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            received.append(self.headers.get("Cookie"))
            self.send_response(200)
            self.send_header("Set-Cookie", "NID=set-by-one-answer; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), SetsACookie)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    session = make_session(environ={})
    try:
        for _ in range(2):
            session.get(f"http://127.0.0.1:{server.server_port}/", timeout=5)
    finally:
        server.shutdown()
    assert received == [None, None]
    assert len(session.cookies) == 0
