"""The secrets of a local stack (`make dev`, tests, benchmarks), seeded in the local Secret Manager.

The same secrets a deployment has, under the same kind of names: the OAuth client secret, the
sealing key pairs (added by the real key rotation, `offline_access.store.sealing_keys`), the
logs' user-reference key, the session-cookie key, and, for the migration of tokens sealed by the first releases, one
AES key. `seed` returns the functions' environment variables that name them; `with_token_id_key`
adds the key of the refresh-token identifiers, as a deployment with Cross-Account Protection
has it.
"""

from __future__ import annotations

import base64
import secrets

from offline_access.store.sealing_keys import KeyOperations, KeySecrets
from offline_access.store.secrets import SECRET_MANAGER_EMULATOR_HOST, make_client

from .local_secret_manager import LocalSecretManager

CLIENT_SECRET_ID = "oauth-client-secret"
PUBLIC_KEYS_ID = "token-sealing-public-keys"
PRIVATE_KEYS_ID = "token-sealing-private-keys"
LEGACY_KEY_ID = "token-sealing-key"
LOG_KEY_ID = "log-user-ref-key"
SESSION_KEY_ID = "session-key"
TOKEN_ID_KEY_ID = "refresh-token-id-key"
TOKEN_ID_KEY_VARIABLE = "REFRESH_TOKEN_ID_KEY_VERSION"


def random_key_b64() -> str:
    """32 random bytes, base64: the form of the log and session keys and of the first releases'
    AES keys."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def key_operations(server: LocalSecretManager, env: dict[str, str], firestore_client=None,
                   **settings) -> KeyOperations:
    """Key operations against the local Secret Manager for the stack `env` describes."""
    client = make_client({SECRET_MANAGER_EMULATOR_HOST: server.host_port})
    return KeyOperations(KeySecrets.from_env(env), client, firestore_client, **settings)


def seed(server: LocalSecretManager, project: str, *, client_secret: str,
         log_key_b64: str | None = None, legacy_key_b64: str | None = None,
         session_key_b64: str | None = None, suffix: str = "") -> dict[str, str]:
    """Create and fill the stack's secrets; the environment variables that name them.

    `suffix` makes the names unique (a test that rotates or retires keys gets its own).
    """
    def name(secret_id: str) -> str:
        return f"projects/{project}/secrets/{secret_id}{suffix}"

    server.add_version(name(CLIENT_SECRET_ID), client_secret.encode())
    server.add_version(name(LOG_KEY_ID), (log_key_b64 or random_key_b64()).encode())
    server.add_version(name(LEGACY_KEY_ID), (legacy_key_b64 or random_key_b64()).encode())
    server.add_version(name(SESSION_KEY_ID), (session_key_b64 or random_key_b64()).encode())
    server.create_secret(name(PUBLIC_KEYS_ID))
    server.create_secret(name(PRIVATE_KEYS_ID))
    env = {
        "OAUTH_CLIENT_SECRET_VERSION": f"{name(CLIENT_SECRET_ID)}/versions/latest",
        "TOKEN_SEALING_PUBLIC_KEY_VERSION": f"{name(PUBLIC_KEYS_ID)}/versions/latest",
        "TOKEN_SEALING_PRIVATE_KEYS_SECRET": name(PRIVATE_KEYS_ID),
        "TOKEN_SEALING_KEY_VERSION": f"{name(LEGACY_KEY_ID)}/versions/1",
        "LOG_USER_REF_KEY_VERSION": f"{name(LOG_KEY_ID)}/versions/latest",
        "SESSION_KEY_VERSION": f"{name(SESSION_KEY_ID)}/versions/latest",
    }
    key_operations(server, env).rotate()
    return env


def with_token_id_key(server: LocalSecretManager, project: str, env: dict[str, str], *,
                      key_b64: str | None = None, suffix: str = "") -> dict[str, str]:
    """`env` with `REFRESH_TOKEN_ID_KEY_VERSION`, naming a new secret with a random key (kept
    as it is when `env` names one already)."""
    if env.get(TOKEN_ID_KEY_VARIABLE):
        return env
    name = f"projects/{project}/secrets/{TOKEN_ID_KEY_ID}{suffix}"
    server.add_version(name, (key_b64 or random_key_b64()).encode())
    return {**env, TOKEN_ID_KEY_VARIABLE: f"{name}/versions/latest"}


# The variables only functions that open tokens may have: the exchange's environment lacks them.
OPENING_ONLY = ("TOKEN_SEALING_PRIVATE_KEYS_SECRET", "TOKEN_SEALING_KEY_VERSION")


def public_only(env: dict[str, str]) -> dict[str, str]:
    """`env` without what opens tokens: the environment of a function that only seals."""
    return {k: v for k, v in env.items() if k not in OPENING_ONLY}
