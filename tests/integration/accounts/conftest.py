"""The account API, the exchange and the internal `disconnect_user`, wired to the real local stack.

`disconnect_user` is served over real HTTP on a free port (a threaded WSGI server in this
process, with the production handler and constructor); the account API reaches it with an ID
token that google-auth fetches from the local Google with a service-account key file
(`GOOGLE_APPLICATION_CREDENTIALS`), exactly as in `make dev`. The exchange and the account API
are served side by side on one Flask app, as Firebase Hosting puts them on one origin, and a
`Browser` keeps the `__session` cookie the way a browser does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

import flask
import pytest
from werkzeug.serving import make_server

from offline_access import http_adapter, wiring
from tests.stack_values import CLIENT_ID, PAGE_ORIGIN

ALL_SCOPES = ["openid", "email", "profile", "https://www.googleapis.com/auth/drive.appdata"]
ACCOUNT_SA = "offline-access-account@demo-test.iam.gserviceaccount.com"
POST_HEADERS = {"X-Requested-With": "XMLHttpRequest", "Origin": PAGE_ORIGIN}


class DisconnectServer:
    """`disconnect_user` on a real port; records the Authorization header of each call."""

    def __init__(self, env: dict[str, str]) -> None:
        self.deps = wiring.build_disconnect_dependencies(env)
        self.authorizations: list[str | None] = []
        app = flask.Flask("disconnect-user-under-test")

        def handle() -> flask.Response:
            self.authorizations.append(flask.request.headers.get("Authorization"))
            return http_adapter.handle_disconnect_user(flask.request, lambda: self.deps)

        app.add_url_rule("/", "disconnect", handle, methods=["GET", "POST", "PUT"])
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Answer:
    status: int
    headers: Any
    body: dict | None


@dataclass
class Browser:
    """One browser on the page's origin: its `__session` cookie and its requests to `/api/*`."""

    client: Any
    cookie: str | None = None
    set_cookies: list[str] = field(default_factory=list)

    def request(self, method: str, path: str, *, body: Any = None, headers: dict | None = None,
                cookie: str | None | bool = True) -> Answer:
        sent = dict(headers if headers is not None else (POST_HEADERS if method == "POST" else {}))
        value = self.cookie if cookie is True else (cookie or None)
        if value:
            sent["Cookie"] = f"__session={value}"
        data = json.dumps(body) if isinstance(body, (dict, list)) else body
        if isinstance(body, (dict, list)):
            sent.setdefault("Content-Type", "application/json")
        response = self.client.open(path, method=method, data=data, headers=sent)
        for header in response.headers.getlist("Set-Cookie"):
            self.set_cookies.append(header)
            jar = SimpleCookie()
            jar.load(header)
            morsel = jar["__session"]
            self.cookie = None if morsel["max-age"] == "0" else morsel.value
        text = response.get_data(as_text=True)
        return Answer(response.status_code, response.headers, json.loads(text) if text else None)

    def me(self, **kw: Any) -> Answer:
        return self.request("GET", "/api/me", **kw)

    def attempt(self) -> str:
        answer = self.request("POST", "/api/sign-in-attempts")
        assert answer.status == 200, answer.body
        return answer.body["state"]

    def exchange(self, code: str, state: str | None, **kw: Any) -> Answer:
        payload = {"code": code} if state is None else {"code": code, "state": state}
        headers = {**POST_HEADERS, "Content-Type": "application/json"}
        return self.request("POST", "/api/exchange", body=json.dumps(payload), headers=headers, **kw)

    def sign_in(self, google, email: str = "alice@example.com", **mint: Any) -> dict:
        """What the page does: ask for an attempt, get a code from Google, send both."""
        state = self.attempt()
        code = google.mint_code(client_id=CLIENT_ID, email=email, scopes=ALL_SCOPES, **mint)["code"]
        answer = self.exchange(code, state)
        assert answer.status == 200, answer.body
        return answer.body


class Site:
    """The page's origin: `/api/exchange` and `/api/*` on one app, with fresh instances."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.exchange = wiring.build_exchange_dependencies(env)
        self.account = wiring.build_account_dependencies(env)
        app = flask.Flask("site-under-test")
        app.add_url_rule("/api/exchange", "exchange",
                         lambda: http_adapter.handle_exchange(flask.request, lambda: self.exchange),
                         methods=["GET", "POST", "OPTIONS", "PUT"])
        app.add_url_rule("/api/<path:rest>", "account",
                         lambda rest: http_adapter.handle_account_api(flask.request, lambda: self.account),
                         methods=["GET", "POST", "OPTIONS", "PUT", "DELETE", "HEAD"])
        self.app = app

    def browser(self) -> Browser:
        return Browser(self.app.test_client(use_cookies=False))


@pytest.fixture
def caller_credentials(google_server, tmp_path, monkeypatch) -> dict:
    """The account API's service-account key, issued by the local Google, as in `make dev`."""
    key = google_server.service_account_key(ACCOUNT_SA)
    path = tmp_path / "account-sa-key.json"
    path.write_text(json.dumps(key))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    return key


@pytest.fixture
def disconnect_server(function_env) -> Iterator[DisconnectServer]:
    server = DisconnectServer(function_env)
    yield server
    server.stop()


@pytest.fixture
def site_env(function_env, disconnect_server, caller_credentials) -> dict[str, str]:
    return {**function_env, "DISCONNECT_FUNCTION_URL": disconnect_server.url,
            "JOB_SCHEDULE_PERIOD_SECONDS": "900"}


@pytest.fixture
def site(site_env) -> Site:
    return Site(site_env)


@pytest.fixture
def browser(site) -> Browser:
    return site.browser()
