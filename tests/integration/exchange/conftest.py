"""An `exchange_code` instance wired to the real local stack, driven over its HTTP interface.

`exchange` builds a fresh instance (fresh caches: one "cold start") with the production
constructors from `runtime`, and serves `http_adapter.handle_exchange` through Flask's test client,
so every request goes through the same code as in Cloud Functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import flask
import pytest
from google.cloud import firestore

from offline_access import http_adapter, wiring
from offline_access.signin.exchange import ExchangeDependencies
from tests.stack_values import PAGE_ORIGIN

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]


@dataclass
class Answer:
    status: int
    headers: Any
    body: dict | None
    text: str


class ExchangeInstance:
    """One function instance and helpers to call it like the page does."""

    def __init__(self, deps: ExchangeDependencies):
        self.deps = deps
        app = flask.Flask("exchange-under-test")
        app.add_url_rule("/", "exchange", lambda: http_adapter.handle_exchange(flask.request, lambda: deps),
                         methods=ALL_METHODS)
        self.client = app.test_client()

    def request(self, method: str = "POST", *, body: bytes | str | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        response = self.client.open("/", method=method, data=body, headers=headers or {})
        text = response.get_data(as_text=True)
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return Answer(response.status_code, response.headers, parsed, text)

    def sign_in(self, code: str, *, state: str | None = None, origin: str | None = PAGE_ORIGIN,
                **extra_headers: str) -> Answer:
        headers = {"X-Requested-With": "XMLHttpRequest", "Content-Type": "application/json"}
        if origin is not None:
            headers["Origin"] = origin
        headers.update(extra_headers)
        payload = {"code": code} if state is None else {"code": code, "state": state}
        return self.request(body=json.dumps(payload), headers=headers)

    def user_doc(self, sub: str) -> dict | None:
        return self.deps.store.get(sub)

    def all_docs(self) -> dict[str, dict]:
        return {d.id: d.to_dict() for d in self.deps.store.collection.stream()}


@pytest.fixture
def make_exchange(function_env):
    def make(**overrides: str) -> ExchangeInstance:
        env = {**function_env, **overrides}
        return ExchangeInstance(wiring.build_exchange_dependencies(env))
    return make


@pytest.fixture
def exchange(make_exchange) -> ExchangeInstance:
    return make_exchange()


@pytest.fixture
def firestore_client(project, firestore_emulator) -> firestore.Client:
    return firestore.Client(project=project)
