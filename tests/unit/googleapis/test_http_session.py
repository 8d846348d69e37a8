"""The pooled HTTP client, and Retry-After parsing (property-tested)."""

import email.utils
import socket
import ssl
from pathlib import Path

import certifi
import pytest
import urllib3
from hypothesis import given
from hypothesis import strategies as st

from offline_access.googleapis.http_session import (
    RETRY_AFTER_MAX_SECONDS,
    RETRY_AFTER_MIN_SECONDS,
    HttpClient,
    TransportError,
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


class TestHttpClient:
    def test_a_ca_bundle_from_the_environment_replaces_certifis(self, tmp_path):
        bundle = tmp_path / "bundle.pem"
        bundle.write_bytes(Path(certifi.where()).read_bytes().split(b"\n\n")[-1])  # one CA
        assert HttpClient(environ={"REQUESTS_CA_BUNDLE": str(bundle)}).ca_certs == str(bundle)
        assert HttpClient(environ={}).ca_certs == certifi.where()

    def test_the_bundle_is_loaded_once_into_one_context_that_checks_hostnames(self):
        http = HttpClient(environ={})
        context = http.pool.connection_pool_kw["ssl_context"]
        assert context is http.ssl_context and "ca_certs" not in http.pool.connection_pool_kw
        assert context.cert_store_stats()["x509_ca"] > 100  # certifi's roots
        assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED

    def test_proxies_are_used_unless_no_proxy_names_the_host(self):
        http = HttpClient(environ={"https_proxy": "http://proxy.internal:3128",
                                  "NO_PROXY": "metadata.google.internal"})
        assert isinstance(http.manager_for("https://oauth2.googleapis.com/token"), urllib3.ProxyManager)
        assert http.manager_for("https://metadata.google.internal/x") is http.pool
        assert http.manager_for("http://oauth2.googleapis.com/token") is http.pool  # no http_proxy

    def test_pool_fits_the_concurrency(self):
        assert HttpClient(pool_size=48, environ={}).pool.connection_pool_kw["maxsize"] == 48

    def test_no_answer_is_a_transport_error_that_says_whether_it_was_sent(self):
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]  # closed: nothing listens there
        with pytest.raises(TransportError) as refused:
            HttpClient(environ={}).get(f"http://127.0.0.1:{port}/", timeout=2)
        assert refused.value.never_sent and str(refused.value) == "NewConnectionError"


def test_the_shared_client_keeps_no_cookie_between_users():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
    http = HttpClient(environ={})
    try:
        for _ in range(2):
            http.get(f"http://127.0.0.1:{server.server_port}/", timeout=5)
    finally:
        server.shutdown()
    assert received == [None, None]


def test_query_and_form_values_are_encoded_and_none_is_left_out():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Echo(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            seen.append((self.path, self.headers.get("Content-Type"), self.rfile.read(length)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        answer = HttpClient(environ={}).post(
            f"http://127.0.0.1:{server.server_port}/t?a=1", params={"q": "x y", "skip": None},
            data={"token": "1//a+b", "none": None}, timeout=5)
    finally:
        server.shutdown()
    assert answer.status_code == 200 and answer.json() == {}
    assert seen == [("/t?a=1&q=x+y", "application/x-www-form-urlencoded", b"token=1%2F%2Fa%2Bb")]
