"""The token API wired to the real local stack, and its callers' Google ID tokens.

Callers are service accounts whose keys the local Google issued: google-auth gets their ID
tokens from its `/token` (the JWT-bearer grant with `target_audience`), exactly as
`id_token.fetch_id_token` does with a key file, and the API checks them against the local
Google's certificates. `TokenApi` serves `http_adapter.handle_token_api` through Flask's test
client with the production constructor; the concurrency tests run real functions-framework
processes instead.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import flask
import pytest
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from offline_access import http_adapter, wiring
from offline_access.tokenapi.api import TokenApiDependencies
from tests.integration.job.conftest import FAST_RETRIES, Users

APP_SA = "app-backend@demo-test.iam.gserviceaccount.com"
OTHER_SA = "someone-else@demo-test.iam.gserviceaccount.com"
# The function's URL in production: the audience its callers' ID tokens name.
AUDIENCE = "https://token-api-test-uc.a.run.app"


def id_token_for(key: dict, audience: str = AUDIENCE) -> str:
    credentials = service_account.IDTokenCredentials.from_service_account_info(
        key, target_audience=audience)
    credentials.refresh(Request())
    return str(credentials.token)


@pytest.fixture(scope="session")
def app_key(google_server) -> dict:
    return google_server.service_account_key(APP_SA, "demo-test")


@pytest.fixture(scope="session")
def other_key(google_server) -> dict:
    return google_server.service_account_key(OTHER_SA, "demo-test")


@pytest.fixture(scope="session")
def app_token(app_key) -> str:
    return id_token_for(app_key)


@pytest.fixture
def token_env(function_env) -> dict[str, str]:
    return {**function_env, "TOKEN_API_AUDIENCES": AUDIENCE,
            "TOKEN_API_ALLOWED_CALLERS": APP_SA}


@dataclass
class Answer:
    status: int
    headers: Any
    body: dict | None


class TokenApi:
    """One `token_api` instance, called as the app's backend calls it."""

    def __init__(self, deps: TokenApiDependencies, token: str) -> None:
        self.deps = deps
        self.token = token
        app = flask.Flask("token-api-under-test")
        app.add_url_rule("/<path:route>", "token_api",
                         lambda route: http_adapter.handle_token_api(flask.request, lambda: deps),
                         methods=["GET", "POST", "PUT"])
        self.client = app.test_client()

    def call(self, path: str, body: Any = None, *, token: str | None | bool = True,
             method: str = "POST", headers: dict | None = None) -> Answer:
        sent = dict(headers or {})
        bearer = self.token if token is True else token
        if bearer:
            sent["Authorization"] = f"Bearer {bearer}"
        data = json.dumps(body) if isinstance(body, (dict, list)) else body
        response = self.client.open(path, method=method, data=data, headers=sent,
                                    content_type="application/json")
        text = response.get_data(as_text=True)
        return Answer(response.status_code, response.headers, json.loads(text) if text else None)

    def token_for(self, sub: str, **body: Any) -> Answer:
        return self.call("/token", {"sub": sub, **body})


@pytest.fixture
def make_api(token_env, app_token):
    def make(env: dict[str, str] | None = None, **replace: Any) -> TokenApi:
        deps = wiring.build_token_api_dependencies({**token_env, **(env or {})})
        replace.setdefault("call_retries", FAST_RETRIES)
        return TokenApi(dataclasses.replace(deps, **replace), app_token)
    return make


@pytest.fixture
def api(make_api) -> TokenApi:
    return make_api()


@pytest.fixture
def users(google, function_env, opener) -> Users:
    return Users(google, function_env, opener)


def refresh_calls(google) -> int:
    return google.counters()["token_grants"].get("refresh_token", 0)
