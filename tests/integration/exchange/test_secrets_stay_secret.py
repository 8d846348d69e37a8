"""Canaries: codes, tokens, the client secret and the keys never leave their place.

A real `exchange_code` process (functions-framework serving `functions/main.py`) is driven
through every path, success and failure; then its whole log output, every answer and the
Firestore documents are searched for each secret value in several encodings.
"""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest
import requests

from localdev.processes import FunctionServer
from localdev.stack_secrets import public_only
from tests.stack_values import (
    CLIENT_ID,
    CLIENT_SECRET,
    LEGACY_SEALING_KEY,
    LEGACY_SEALING_KEY_B64,
    LOG_KEY,
    LOG_KEY_B64,
    PAGE_HEADERS,
    SCOPES,
    SESSION_KEY_B64,
)


def encodings(secret: str) -> set[str]:
    raw = secret.encode()
    return {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
            json.dumps(secret)[1:-1], base64.b64encode(raw).decode(),
            base64.urlsafe_b64encode(raw).decode().rstrip("=")}


@pytest.fixture
def server(function_env, tmp_path):
    log = open(tmp_path / "function.log", "w+")
    process = FunctionServer("exchange_code", public_only(function_env), output=log)
    yield process, tmp_path / "function.log"
    process.stop()
    log.close()


def test_no_secret_appears_in_logs_answers_or_firestore(server, google, secret_manager, function_env,
                                                        project, firestore_emulator):
    process, log_path = server
    url = process.url
    answers: list[str] = []
    codes: list[str] = []

    def post(body, content_type="application/json", headers=PAGE_HEADERS):
        response = requests.post(url, data=body, timeout=30,
                                 headers={**headers, "Content-Type": content_type})
        answers.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response

    def mint(email="alice@example.com", **kw):
        code = google.mint_code(client_id=CLIENT_ID, email=email, scopes=SCOPES, **kw)["code"]
        codes.append(code)
        return code

    first = mint()
    assert post(json.dumps({"code": first})).status_code == 200
    assert post(json.dumps({"code": first})).status_code == 400  # replay
    assert post(mint(), "application/octet-stream").status_code == 200  # no refresh token now
    assert post(json.dumps({"code": mint()}), "text/plain").status_code == 415
    assert post(json.dumps({"code": mint(), "x": "y" * 5000})).status_code == 413
    assert post(json.dumps({"code": mint()}), headers={}).status_code == 403
    assert post('{"code": "' + mint() + '", ').status_code == 400
    assert post(json.dumps({"code": mint() + " trailing"})).status_code == 400
    google.fault(path="/token", status=503)
    assert post(json.dumps({"code": mint()})).status_code == 503
    google.id_token_mode("wrong_aud")
    assert post(json.dumps({"code": mint(email="bob@example.org")})).status_code == 502
    google.id_token_mode("normal")
    google.fault(path="/oauth2/v1/certs", status=500)
    assert post(json.dumps({"code": mint(email="carol@example.net")})).status_code == 200
    assert post(json.dumps({"code": mint(email="dave@example.com")}), "application/json",
                {**PAGE_HEADERS, "X-Cloud-Trace-Context": "0123abcd/1;o=1"}).status_code == 200

    # The tokens Google issued are read back from Firestore with the private key, as the job would.
    from google.cloud import firestore

    from offline_access import wiring
    from offline_access.config import Config
    from offline_access.store.secrets import SecretSource, make_client

    private_version = f"{function_env['TOKEN_SEALING_PRIVATE_KEYS_SECRET']}/versions/1"
    exchange_accesses = secret_manager.accesses()
    assert secret_manager.accesses(private_version) == 0  # the exchange never read a private key
    sealer = wiring.opening_sealer(SecretSource(make_client(function_env)), Config.from_env(function_env))
    private_key = json.loads(secret_manager.payload(private_version))["private_key"]
    docs = {d.id: d.to_dict() for d in firestore.Client(project=project).collection("users").stream()}
    tokens = []
    for sub, doc in docs.items():
        for field in ("refresh_token", "access_token"):
            if field in doc:
                tokens.append(sealer.open(doc[field], sub=sub, field=field))
    assert len(tokens) >= 4

    process.stop()
    log = log_path.read_text()
    assert '"exchange_code: signed in"' in log or "signed in" in log
    assert "logging.googleapis.com/trace" in log
    haystacks = {"log": log, "answers": "\n".join(answers), "firestore": repr(docs)}
    canaries = codes + tokens + [CLIENT_SECRET, LEGACY_SEALING_KEY_B64, LOG_KEY_B64, SESSION_KEY_B64,
                                 private_key]
    found = [(where, canary[:12]) for canary in canaries for variant in encodings(canary)
             for where, text in haystacks.items() if variant in text]
    assert found == []
    for key in (LEGACY_SEALING_KEY, LOG_KEY, base64.b64decode(private_key)):
        assert key not in repr(docs).encode()
    # One line per request, each a JSON object.
    request_lines = [json.loads(line) for line in log.splitlines()
                     if line.startswith("{") and '"event":"exchange_code"' in line
                     and '"method":"POST"' in line]  # not the readiness probe's GET
    assert len(request_lines) == len(answers)
    assert all(line["severity"] in ("INFO", "WARNING", "ERROR") for line in request_lines)
    # The instance read each secret once, however many requests it served (the client secret,
    # the public key, the session key and the log key), and never a private key.
    assert exchange_accesses == 4
