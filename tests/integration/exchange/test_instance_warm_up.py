"""A new `exchange_code` worker does its first calls before its first sign-in needs them.

Real functions-framework processes (gunicorn's master imports `functions/main.py`, then forks
the worker), the local Secret Manager, the local Google and the Firestore emulator.
"""

from __future__ import annotations

import json
import time

import grpc
import requests

from localdev.processes import FunctionServer
from tests.stack_values import CLIENT_ID, CLIENT_SECRET, PAGE_HEADERS, SCOPES


def certificate_fetches(google) -> int:
    return google.counters()["requests"].get("GET /oauth2/v1/certs", 0)


def wait_for(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not become true in time"
        time.sleep(0.02)


def sign_in(server: FunctionServer, google) -> requests.Response:
    code = google.mint_code(client_id=CLIENT_ID, email="alice@example.com", scopes=SCOPES)["code"]
    return requests.post(server.url, json={"code": code}, headers=PAGE_HEADERS, timeout=30)


def test_a_new_worker_reads_its_secrets_and_certificates_before_any_request(
        function_env, secret_manager, google):
    server = FunctionServer("exchange_code", function_env)
    try:
        # No request yet: the worker's warm-up alone reads its four secrets (client secret,
        # public sealing key, session key, log key) and the certificates.
        wait_for(lambda: secret_manager.accesses() == 4 and certificate_fetches(google) == 1)

        answer = sign_in(server, google)

        assert answer.status_code == 200, answer.text
        assert secret_manager.accesses() == 4  # the sign-in used what the warm-up read
        assert certificate_fetches(google) == 1
    finally:
        server.stop()


def test_a_failed_warm_up_is_logged_and_the_first_sign_in_retries(
        function_env, secret_manager, google, tmp_path):
    secret_manager.fail_next(grpc.StatusCode.PERMISSION_DENIED, times=1)
    log_path = tmp_path / "function.log"
    with open(log_path, "w+") as log:
        server = FunctionServer("exchange_code", function_env, output=log)
        try:
            def warm_up_line() -> list[dict]:
                return [json.loads(line) for line in log_path.read_text().splitlines()
                        if "warm-up" in line]
            wait_for(lambda: warm_up_line())

            answer = sign_in(server, google)
        finally:
            server.stop()

    assert answer.status_code == 200, answer.text
    [line] = warm_up_line()
    assert line["message"] == (
        "exchange_code warm-up stopped at Misconfigured; the first request will retry")
    assert CLIENT_SECRET not in log_path.read_text()
