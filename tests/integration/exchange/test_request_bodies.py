"""Every request gets the JSON contract within bounded time (review fault 7), from a real
`exchange_code` process: functions-framework serving `functions/main.py` with gunicorn's
threads, as in Cloud Functions, and clients that speak raw HTTP over sockets."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from localdev.processes import FunctionServer
from localdev.stack_secrets import public_only
from tests.stack_values import CLIENT_ID, PAGE_HEADERS, PAGE_ORIGIN, SCOPES

THREADS = 8
BODY_TIMEOUT_SECONDS = 2


@pytest.fixture
def server(function_env):
    env = {**public_only(function_env), "THREADS": str(THREADS),
           "REQUEST_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT_SECONDS)}
    process = FunctionServer("exchange_code", env)
    yield process
    process.stop()


def head(port: int, extra: str) -> bytes:
    return (f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {PAGE_ORIGIN}\r\n"
            f"X-Requested-With: XMLHttpRequest\r\nContent-Type: application/json\r\n{extra}\r\n").encode()


def connect(server: FunctionServer, data: bytes, *, close_writing: bool = False) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(data)
    if close_writing:
        sock.shutdown(socket.SHUT_WR)
    return sock


def answer(sock: socket.socket) -> tuple[int, dict[str, str], dict]:
    """Read one HTTP answer until the server closes the connection."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    head_text, _, body = data.partition(b"\r\n\r\n")
    lines = head_text.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body)


@pytest.mark.parametrize("body", [
    b"zz\r\n{}\r\n0\r\n\r\n",  # a chunk size that is not hex
    b"5\r\n{\"a\":1}XX\r\n0\r\n\r\n",  # a chunk longer than its size: no terminator
    b"ffff\r\n{\"code\":",  # the client stops inside a chunk
], ids=["invalid-size", "missing-terminator", "no-more-data"])
def test_malformed_chunked_bodies_are_400_json(server, body):
    # Review fault 7: these were 500 text/html, with ChunkMissingTerminator & co in the log.
    sock = connect(server, head(server.port, "Transfer-Encoding: chunked\r\n") + body,
                   close_writing=True)
    status, headers, parsed = answer(sock)
    assert status == 400 and headers["content-type"] == "application/json"
    assert parsed["error"] == "malformed_body" and parsed["message"]


def test_a_body_shorter_than_its_length_is_408_json(server):
    sock = connect(server, head(server.port, "Content-Length: 100\r\n") + b'{"code": "4/0A')
    status, headers, parsed = answer(sock)  # the server closes once it has answered
    assert status == 408 and headers["content-type"] == "application/json"
    assert parsed["error"] == "request_timeout" and str(BODY_TIMEOUT_SECONDS) in parsed["message"]


def test_stalled_bodies_do_not_starve_a_normal_request(server, google):
    # Review fault 7: 8 such connections made a normal request time out.
    stalled = [connect(server, head(server.port, "Content-Length: 500\r\n") + b'{"code": "4/')
               for _ in range(2 * THREADS)]
    time.sleep(0.2)  # all of them are inside the server before the normal request
    code = google.mint_code(client_id=CLIENT_ID, email="alice@example.com", scopes=SCOPES)["code"]

    normal = requests.post(server.url, json={"code": code}, headers=PAGE_HEADERS, timeout=20)

    assert normal.status_code == 200, normal.text
    with ThreadPoolExecutor(len(stalled)) as pool:
        answers = list(pool.map(answer, stalled))
    assert [status for status, _, _ in answers] == [408] * len(stalled)
    assert all(body["error"] == "request_timeout" for _, _, body in answers)
    # The server is still whole: another request is served at once.
    again = requests.post(server.url, data="{}", headers={**PAGE_HEADERS,
                                                          "Content-Type": "application/json"}, timeout=5)
    assert again.status_code == 400 and again.json()["error"] == "invalid_request"
