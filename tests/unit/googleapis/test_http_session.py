"""The pooled HTTP client, and Retry-After parsing (property-tested)."""

import base64
import email.utils
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import certifi
import pytest
from hypothesis import given
from hypothesis import strategies as st

from offline_access.errors import ConfigError
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
        context = http.ssl_context
        assert context.cert_store_stats()["x509_ca"] > 100  # certifi's roots
        assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED

    def test_proxies_are_used_unless_no_proxy_names_the_host(self):
        http = HttpClient(environ={"https_proxy": "http://user:p%40ss@proxy.internal:3128",
                                  "NO_PROXY": "metadata.google.internal"})
        through = http.route("https://oauth2.googleapis.com/token")
        assert (through.host, through.port, through.proxy) == (
            "oauth2.googleapis.com", 443, ("proxy.internal", 3128))
        assert through.proxy_headers == {
            "Proxy-Authorization": "Basic " + base64.b64encode(b"user:p@ss").decode()}
        assert http.route("https://metadata.google.internal/x").proxy is None
        assert http.route("http://oauth2.googleapis.com/token").proxy is None  # no http_proxy

    def test_a_proxy_that_is_not_plain_http_is_a_configuration_error(self):
        with pytest.raises(ConfigError) as refused:
            HttpClient(environ={"HTTPS_PROXY": "socks5://proxy.internal:1080"})
        assert refused.value.fix == "HTTPS_PROXY must be an http:// proxy URL (host and port), not socks5://"

    def test_no_answer_is_a_transport_error_that_says_whether_it_was_sent(self):
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]  # closed: nothing listens there
        with pytest.raises(TransportError) as refused:
            HttpClient(environ={}).get(f"http://127.0.0.1:{port}/", timeout=2)
        assert refused.value.never_sent and str(refused.value) == "ConnectionRefusedError"

    def test_a_connection_that_breaks_after_the_request_was_sent_may_have_been_sent(self):
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()

            def accept_read_and_hang_up():
                connection, _ = server.accept()
                connection.recv(65536)
                connection.close()

            threading.Thread(target=accept_read_and_hang_up, daemon=True).start()
            with pytest.raises(TransportError) as broken:
                HttpClient(environ={}).post(f"http://127.0.0.1:{server.getsockname()[1]}/token",
                                            data={"code": "once"}, timeout=5)
        assert not broken.value.never_sent


def test_the_shared_client_keeps_no_cookie_between_users():

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


class _Recorder(BaseHTTPRequestHandler):
    """Answers 200 with a small body; records each request line and the connection it came on."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, int, str | None]] = []
    close_after = False

    def do_GET(self):  # noqa: N802
        self.seen.append((self.requestline, self.client_address[1],
                          self.headers.get("Proxy-Authorization")))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        if self.close_after:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_CONNECT(self):  # noqa: N802
        self.seen.append((self.requestline, self.client_address[1],
                          self.headers.get("Proxy-Authorization")))
        self.send_response(502)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    handler = type("Handler", (_Recorder,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, handler
    server.shutdown()
    server.server_close()


def test_connections_are_kept_alive_and_reused(recorder):
    server, handler = recorder
    http = HttpClient(environ={})
    for _ in range(3):
        assert http.get(f"http://127.0.0.1:{server.server_port}/", timeout=5).json() == {}
    assert len({port for _, port, _ in handler.seen}) == 1


def test_an_answer_that_closes_its_connection_is_not_reused(recorder):
    server, handler = recorder
    handler.close_after = True
    http = HttpClient(environ={})
    for _ in range(2):
        http.get(f"http://127.0.0.1:{server.server_port}/", timeout=5)
    assert len({port for _, port, _ in handler.seen}) == 2


def test_an_idle_connection_the_server_closed_is_replaced_before_sending(recorder):
    server, handler = recorder
    http = HttpClient(environ={})
    url = f"http://127.0.0.1:{server.server_port}/"
    http.get(url, timeout=5)
    for origin in http._origins.values():  # noqa: SLF001 - the server hangs up on what the pool keeps
        for connection in origin.connections:
            connection.sock.shutdown(socket.SHUT_RD)
    assert http.get(url, timeout=5).status_code == 200
    assert len({port for _, port, _ in handler.seen}) == 2


def test_plain_http_through_a_proxy_sends_the_whole_url_and_its_credentials(recorder):
    server, handler = recorder
    http = HttpClient(environ={"http_proxy": f"http://bench:secret@127.0.0.1:{server.server_port}"})
    http.get("http://oauth2.example/token?x=1", timeout=5)
    assert handler.seen[0][0] == "GET http://oauth2.example/token?x=1 HTTP/1.1"
    assert handler.seen[0][2] == "Basic " + base64.b64encode(b"bench:secret").decode()


def test_https_through_a_proxy_asks_for_a_tunnel_with_its_credentials(recorder):
    server, handler = recorder
    http = HttpClient(environ={"HTTPS_PROXY": f"http://bench:secret@127.0.0.1:{server.server_port}"})
    with pytest.raises(TransportError) as refused:
        http.get("https://oauth2.googleapis.com/token", timeout=5)
    assert refused.value.never_sent  # the tunnel was refused: nothing reached Google
    assert handler.seen[0][0].startswith("CONNECT oauth2.googleapis.com:443 HTTP/")
    assert handler.seen[0][2] == "Basic " + base64.b64encode(b"bench:secret").decode()
