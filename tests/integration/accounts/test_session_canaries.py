"""Canaries: the session key, the `__session` cookies, the states and the caller's key never reach a log.

Real `exchange_code`, `account_api` and `disconnect_user` processes serve a whole account's life
(attempts, a bound sign-in, reloads, a forged cookie, sign-out everywhere, disconnect), then
their logs, the answers' bodies and Firestore are searched for every such value, in several
encodings.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from http.cookies import SimpleCookie

import pytest
import requests
from google.cloud import firestore

from localdev.processes import FunctionServer
from tests.stack_values import CLIENT_ID, PAGE_HEADERS, SCOPES, SESSION_KEY, SESSION_KEY_B64


def encodings(secret: str) -> set[str]:
    raw = secret.encode()
    return {secret, urllib.parse.quote(secret, safe=""), json.dumps(secret)[1:-1],
            base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("=")}


@pytest.fixture
def processes(function_env, google_server, tmp_path):
    key = tmp_path / "account-key.json"
    key.write_text(json.dumps(google_server.service_account_key(
        "offline-access-account@demo-test.iam.gserviceaccount.com")))
    logs = {name: tmp_path / f"{name}.log" for name in ("exchange_code", "account_api",
                                                         "disconnect_user")}
    disconnect = FunctionServer("disconnect_user", function_env,
                                output=logs["disconnect_user"].open("w"))
    env = {**function_env, "DISCONNECT_FUNCTION_URL": disconnect.url + "/"}
    exchange = FunctionServer("exchange_code", env, output=logs["exchange_code"].open("w"))
    account = FunctionServer("account_api", {**env, "GOOGLE_APPLICATION_CREDENTIALS": str(key)},
                             output=logs["account_api"].open("w"))
    yield {"exchange": exchange, "account": account}, logs, json.loads(key.read_text())
    for server in (account, exchange, disconnect):
        server.stop()


def test_no_session_key_cookie_or_state_appears_in_logs_or_firestore(processes, google, project):
    servers, logs, caller_key = processes
    exchange, account = servers["exchange"].url, servers["account"].url
    cookies: list[str] = []
    states: list[str] = []
    bodies: list[str] = []

    def call(method, base, path, cookie=None, **kw):
        headers = dict(PAGE_HEADERS)
        if cookie:
            headers["Cookie"] = f"__session={cookie}"
        response = requests.request(method, base + path, headers=headers, timeout=30, **kw)
        bodies.append(response.text)
        for header in response.raw.headers.getlist("Set-Cookie"):
            jar = SimpleCookie()
            jar.load(header)
            if jar["__session"].value:
                cookies.append(jar["__session"].value)
        return response

    def sign_in(cookie=None, email="alice@example.com"):
        answer = call("POST", account, "/api/sign-in-attempts", cookie)
        state, cookie = answer.json()["state"], cookies[-1]
        states.append(state)
        code = google.mint_code(client_id=CLIENT_ID, email=email, scopes=SCOPES)["code"]
        assert call("POST", exchange, "/", cookie, json={"code": code, "state": state}).status_code == 200
        return cookies[-1]

    laptop = sign_in()
    phone = sign_in(email="alice@example.com")
    assert call("GET", account, "/api/me", laptop).status_code == 200
    assert call("GET", account, "/api/me", laptop[:-4] + "AAAA").status_code == 401  # forged
    assert call("POST", exchange, "/", laptop, json={
        "code": google.mint_code(client_id=CLIENT_ID, email="alice@example.com",
                                 scopes=SCOPES)["code"], "state": "wrong-state"}).status_code == 400
    assert call("POST", account, "/api/sign-out-everywhere", phone).status_code == 200
    again = sign_in()
    bob = sign_in(email="bob@example.org")
    assert call("POST", account, "/api/sign-out", bob).status_code == 200
    google.fault("/revoke", status=503)
    assert call("POST", account, "/api/disconnect", again).status_code == 202
    assert call("POST", account, "/api/disconnect", again).status_code == 200  # Google is back

    for server in servers.values():
        server.stop()
    text = "\n".join(path.read_text() for path in logs.values())
    assert '"event":"account_api"' in text and '"event":"account_disconnected"' in text
    docs = repr([d.to_dict() for d in firestore.Client(project=project).collection("users").stream()])
    private_key = "".join(caller_key["private_key"].splitlines()[1:-2])[:64]
    canaries = [SESSION_KEY_B64, private_key, *states, *cookies]
    # The parts of a cookie value too: its key id alone is no secret, its sealed blob is.
    canaries += [value.split(".", 2)[2] for value in cookies]
    haystacks = {"logs": text, "firestore": docs}
    found = [(where, canary[:10]) for canary in canaries for variant in encodings(canary)
             for where, hay in haystacks.items() if variant in hay]
    assert found == []
    assert SESSION_KEY not in docs.encode()
    assert not any(SESSION_KEY_B64 in body or private_key in body for body in bodies)
    assert len(set(cookies)) == len(cookies) >= 6
