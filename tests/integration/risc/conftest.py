"""The RISC receiver wired to the real local stack, with the local Google as Google's transmitter.

The receiver is served over real HTTP on a free port (a threaded WSGI server in this process,
with the production handler and constructor), and the local Google's stream points at it, so
every event travels as at Google: signed by the local Google, pushed with `POST`, redelivered
until a 2xx. Users sign in through the real exchange and account API (`Site`), which store the
refresh tokens' keyed identifiers under a key of the local Secret Manager. A hijacked account's
disconnect goes to the internal `disconnect_user`, called with an ID token from google-auth.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import flask
import pytest
from werkzeug.serving import make_server

from localdev.stack_secrets import public_only, with_token_id_key
from offline_access import http_adapter, wiring
from tests.integration.accounts.conftest import ACCOUNT_SA, DisconnectServer, Site

RISC_SA = "offline-access-risc@demo-test.iam.gserviceaccount.com"


class ReceiverServer:
    """`risc_receiver` on a real port, built from `env` as the function builds it, and as
    deployed without any setting that opens tokens (`public_only`)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.deps = wiring.build_risc_dependencies(public_only(env))
        self.statuses: list[int] = []
        app = flask.Flask("risc-receiver-under-test")

        def handle() -> flask.Response:
            response = http_adapter.handle_risc_receiver(flask.request, lambda: self.deps)
            self.statuses.append(response.status_code)
            return response

        app.add_url_rule("/", "risc", handle, methods=["GET", "POST", "PUT"])
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def token_id_key(secret_manager, project, secret_names) -> dict[str, str]:
    """`REFRESH_TOKEN_ID_KEY_VERSION`, naming a key of the local Secret Manager."""
    return with_token_id_key(secret_manager, project, {}, suffix="-risc")


@pytest.fixture
def service_account_keys(google_server, tmp_path, monkeypatch) -> dict:
    """The callers' service-account keys, issued by the local Google, as in `make dev`: the
    account API's and the receiver's (this process plays both, so one key file serves)."""
    key = google_server.service_account_key(RISC_SA)
    path = tmp_path / "caller-key.json"
    path.write_text(json.dumps(key))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    return {"risc": key, "account": ACCOUNT_SA}


@pytest.fixture
def disconnect_server(function_env) -> Iterator[DisconnectServer]:
    server = DisconnectServer(function_env)
    yield server
    server.stop()


@pytest.fixture
def risc_env(function_env, token_id_key, disconnect_server, service_account_keys) -> dict[str, str]:
    return {**function_env, **token_id_key, "DISCONNECT_FUNCTION_URL": disconnect_server.url,
            "JOB_SCHEDULE_PERIOD_SECONDS": "900"}


@pytest.fixture
def site(risc_env) -> Site:
    return Site(risc_env)


@pytest.fixture
def receiver(risc_env) -> Iterator[ReceiverServer]:
    server = ReceiverServer(risc_env)
    yield server
    server.stop()


@pytest.fixture
def stream(google, receiver) -> ReceiverServer:
    """The local Google's stream delivering every event type to the receiver, retrying fast."""
    google.risc_settings(backoff_seconds=0.05, max_backoff_seconds=0.2)
    google.set_risc_stream(receiver.url)
    return receiver
