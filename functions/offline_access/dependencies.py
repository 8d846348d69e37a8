"""What every function instance talks to, built once per instance by `wiring`.

Each function's container extends `SharedDependencies` with what only it needs: the sign-in's
`signin.exchange.ExchangeDependencies` and the job's `offline.run.JobDependencies`. Tests build
them with the same constructors and replace only clock-like parts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from .config import Config
from .googleapis.endpoints import GoogleEndpoints
from .googleapis.http_session import HttpClient
from .store.refresh_token_ids import RefreshTokenIds
from .store.sealing import TokenSealer
from .store.secrets import SecretSource
from .store.users import UserStore
from .structured_log import UserRefs


def utcnow() -> dt.datetime:
    """The current time, timezone-aware."""
    return dt.datetime.now(dt.timezone.utc)


@dataclass(kw_only=True)
class SharedDependencies:
    """Configuration, Google's endpoints, secrets, the sealer, one pooled HTTP client, the user store,
    the logs' user references (`user_refs.ref(sub)`, never the `sub` itself), and the stored
    refresh tokens' keyed identifiers (`token_ids`; None without `REFRESH_TOKEN_ID_KEY_VERSION`)."""

    config: Config
    endpoints: GoogleEndpoints
    secrets: SecretSource
    sealer: TokenSealer
    http: HttpClient
    store: UserStore
    user_refs: UserRefs
    now: Callable[[], dt.datetime] = utcnow
    token_ids: RefreshTokenIds | None = None
