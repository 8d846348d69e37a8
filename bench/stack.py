"""The local stack for benchmarks: the same components as the tests, started once."""

from __future__ import annotations

import base64
import os
import secrets
from contextlib import contextmanager

from localdev.local_google import LocalGoogle
from localdev.local_google.control import GoogleControl
from localdev.local_secret_manager import LocalSecretManager
from localdev.processes import FirestoreEmulator

PROJECT = "demo-bench"
CLIENT_ID = "bench-client.apps.googleusercontent.com"
ORIGIN = "http://localhost:8080"
SCOPES = ["openid", "email", "profile", "https://www.googleapis.com/auth/drive.appdata"]


@contextmanager
def local_stack(latency_ms: int = 50):
    """Yields (env for a function instance, GoogleControl, LocalSecretManager, FirestoreEmulator)."""
    client_secret = "bench-secret-" + secrets.token_hex(8)
    firestore = None
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        firestore_host = os.environ["FIRESTORE_EMULATOR_HOST"]
    else:
        firestore = FirestoreEmulator()
        firestore_host = firestore.host_port
        os.environ["FIRESTORE_EMULATOR_HOST"] = firestore_host
    secret_manager = LocalSecretManager().start()
    secret_manager.add_version(f"projects/{PROJECT}/secrets/client-secret", client_secret.encode())
    secret_manager.add_version(f"projects/{PROJECT}/secrets/sealing-key",
                               base64.b64encode(secrets.token_bytes(32)))
    google = LocalGoogle(client_id=CLIENT_ID, client_secret=client_secret,
                         javascript_origins=[ORIGIN])
    google.start(host="127.0.0.1", port=0)
    control = GoogleControl(google.url)
    control.latency(latency_ms)
    env = {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "FIRESTORE_EMULATOR_HOST": firestore_host,
        "SECRET_MANAGER_EMULATOR_HOST": secret_manager.host_port,
        "GOOGLE_EMULATOR_HOST": google.host_port,
        "OAUTH_CLIENT_ID": CLIENT_ID,
        "OAUTH_CLIENT_SECRET_VERSION": f"projects/{PROJECT}/secrets/client-secret/versions/latest",
        "TOKEN_SEALING_KEY_VERSION": f"projects/{PROJECT}/secrets/sealing-key/versions/latest",
        "ALLOWED_ORIGINS": ORIGIN,
        "OAUTH_SCOPES": " ".join(SCOPES),
    }
    try:
        yield env, control, secret_manager, firestore_host
    finally:
        google.stop()
        secret_manager.stop()
        if firestore is not None:
            firestore.stop()
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
