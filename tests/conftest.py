"""Fixtures that start the real local stack for the tests.

Every component is a real server over a real protocol: the official Firestore emulator (started
here unless `FIRESTORE_EMULATOR_HOST` names a running one), the local Secret Manager (gRPC), and
the local Google (HTTP). Each pytest-xdist worker gets its own components and its own project.
The secret values are canaries: tests assert that they never show up in answers or logs. The
sealing key pairs are made by the real rotation (`localdev.stack_secrets`); a test that rotates
or retires keys takes `fresh_keys`, secrets of its own.
"""

from __future__ import annotations

import os
import uuid

import pytest

from localdev.local_google import LocalGoogle
from localdev.local_google.control import GoogleControl
from localdev.local_secret_manager import LocalSecretManager
from localdev.processes import FirestoreEmulator, PubSubEmulator
from localdev.stack_secrets import seed
from tests.stack_values import (
    CLIENT_ID,
    CLIENT_SECRET,
    LEGACY_SEALING_KEY_B64,
    LOG_KEY_B64,
    PAGE_ORIGIN,
    SCOPES,
    SESSION_KEY_B64,
)


@pytest.fixture(scope="session")
def project(worker_id: str) -> str:
    return f"demo-test-{worker_id}"


@pytest.fixture(scope="session")
def worker_id(request) -> str:
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


def _emulator(variable: str, start):
    """`host:port` of the emulator named by `variable`, started for this session if unset."""
    existing = os.environ.get(variable)
    if existing:
        yield existing
        return
    emulator = start()
    os.environ[variable] = emulator.host_port
    try:
        yield emulator.host_port
    finally:
        emulator.stop()
        os.environ.pop(variable, None)


@pytest.fixture(scope="session")
def firestore_emulator():
    """The official Firestore emulator (`FIRESTORE_EMULATOR_HOST`)."""
    yield from _emulator("FIRESTORE_EMULATOR_HOST", FirestoreEmulator)


@pytest.fixture(scope="session")
def pubsub_emulator():
    """The official Pub/Sub emulator (`PUBSUB_EMULATOR_HOST`)."""
    yield from _emulator("PUBSUB_EMULATOR_HOST", PubSubEmulator)


@pytest.fixture(scope="session")
def secret_manager():
    server = LocalSecretManager().start()
    yield server
    server.stop()


def seed_secrets(server: LocalSecretManager, project: str, suffix: str = "") -> dict[str, str]:
    return seed(server, project, client_secret=CLIENT_SECRET, log_key_b64=LOG_KEY_B64,
                legacy_key_b64=LEGACY_SEALING_KEY_B64, session_key_b64=SESSION_KEY_B64,
                suffix=suffix)


@pytest.fixture(scope="session")
def secret_names(secret_manager, project) -> dict[str, str]:
    """The stack's secrets (one key pair, one legacy AES key), as the functions' variables."""
    return seed_secrets(secret_manager, project)


@pytest.fixture
def fresh_keys(secret_manager, project) -> dict[str, str]:
    """Secrets of this test's own, for tests that rotate, retire or destroy keys."""
    names = seed_secrets(secret_manager, project, suffix="-" + uuid.uuid4().hex[:8])
    secret_manager.reset_counters()
    return names


@pytest.fixture(scope="session")
def google_server():
    server = LocalGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                         javascript_origins=[PAGE_ORIGIN])
    server.start(host="127.0.0.1", port=0)
    yield server
    server.stop()


@pytest.fixture
def google(google_server) -> GoogleControl:
    """The local Google's control API, reset for each test."""
    control = GoogleControl(google_server.url)
    control.reset()
    return control


@pytest.fixture
def opener(function_env):
    """A sealer with the private keys, as the job has: what tests read stored tokens with."""
    from offline_access import wiring
    from offline_access.config import Config
    from offline_access.store.secrets import SecretSource, make_client

    return wiring.opening_sealer(SecretSource(make_client(function_env)), Config.from_env(function_env))


@pytest.fixture
def function_env(project, firestore_emulator, secret_manager, secret_names, google_server,
                 google) -> dict[str, str]:
    """The environment of a function instance pointed at the local stack, with fresh data."""
    FirestoreEmulator.reset_host(firestore_emulator, project)
    secret_manager.clear_faults()
    secret_manager.reset_counters()
    return {
        "GOOGLE_CLOUD_PROJECT": project,
        "FIRESTORE_EMULATOR_HOST": firestore_emulator,
        "SECRET_MANAGER_EMULATOR_HOST": secret_manager.host_port,
        "GOOGLE_EMULATOR_HOST": google_server.host_port,
        "OAUTH_CLIENT_ID": CLIENT_ID,
        **secret_names,
        "ALLOWED_ORIGINS": PAGE_ORIGIN,
        "OAUTH_SCOPES": SCOPES,
    }
