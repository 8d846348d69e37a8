"""Builds each function's dependencies once per instance, on first use, and warms new workers.

`build_shared` builds what every function uses (configuration, endpoints, secrets, a sealer
that seals with the public key only, one pooled HTTP session, the user store, the logs' user
references); `build_exchange_dependencies`, `build_job_dependencies`,
`build_account_dependencies`, `build_disconnect_dependencies` and `build_risc_dependencies` add
what only one function needs, and `opening_sealer` gives the functions that must open tokens (the job, disconnect) the
private keys the public functions never hold. Nothing is created at import time, so cold starts
stay close to a bare import of the client libraries, and tests build the same dependencies with
the same constructors.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from .accounts.api import AccountDependencies
from .accounts.internal_call import DisconnectCaller
from .accounts.sessions import CookiePolicy, SessionCodec, SessionKeys
from .config import MODE_PUBSUB, Config
from .dependencies import SharedDependencies
from .errors import Misconfigured, OfflineAccessError
from .events.catalog import EventCatalog
from .events.outbox import Outbox
from .events.publisher import EventPublisher
from .googleapis.certificates import CertificateCache
from .googleapis.endpoints import GoogleEndpoints
from .googleapis.http_session import HttpClient
from .messaging.publisher import Publisher
from .offline import tasks as offline_tasks
from .offline.context import JobDependencies
from .offline.worker import Worker
from .risc.receiver import RiscDependencies
from .risc.verifier import SetVerifier
from .signin.exchange import ExchangeDependencies
from .signin.prefetch import ColdStartPrefetch
from .store import secrets as secret_store
from .store import users as user_store
from .store.refresh_token_ids import RefreshTokenIds
from .store.sealing import SealingKeys, TokenSealer
from .structured_log import UserRefs
from .tokenapi.api import TokenApiDependencies
from .tokenapi.callers import CallerVerifier

T = TypeVar("T")
D = TypeVar("D", bound=SharedDependencies)

FUNCTION_TARGET = "FUNCTION_TARGET"
# Concurrent requests of one exchange instance (the Terraform default); each may hold a connection.
EXCHANGE_POOL_SIZE = 32


def build_shared(environ: Mapping[str, str], config: Config, *, pool_size: int) -> SharedDependencies:
    """What both functions use. Builds clients; does no I/O."""
    secrets = secret_store.SecretSource(secret_store.make_client(environ))
    token_id_key = config.refresh_token_id_key_version
    client = user_store.make_client(config.project)
    return SharedDependencies(
        config=config,
        endpoints=GoogleEndpoints.from_env(environ),
        secrets=secrets,
        sealer=TokenSealer(SealingKeys(secrets, config.sealing_public_key_version)),
        http=HttpClient(pool_size=pool_size, environ=environ),
        store=user_store.UserStore(client, config.users_collection, build_outbox(client, config)),
        user_refs=UserRefs(lambda: secrets.get(config.log_key_version).data),
        token_ids=RefreshTokenIds(lambda: secrets.get(token_id_key)) if token_id_key else None,
    )


def build_outbox(client: Any, config: Config) -> Outbox:
    """The lifecycle events' outbox; off (no writes, no publishes) without `EVENTS_TOPIC`.

    The Pub/Sub client is built on the first publish, in the background (`events.publisher`).
    """
    publisher = EventPublisher(config.events_topic) if config.events_topic else None
    return Outbox(client, EventCatalog(config.event_type_prefix, config.project), publisher)


def opening_sealer(secrets: secret_store.SecretSource, config: Config) -> TokenSealer:
    """A sealer that also opens tokens, for the functions that use them (never a public one).

    Raises:
        Misconfigured: `TOKEN_SEALING_PRIVATE_KEYS_SECRET` is not set.
    """
    if config.sealing_private_keys_secret is None:
        raise Misconfigured(
            "Set TOKEN_SEALING_PRIVATE_KEYS_SECRET to projects/PROJECT/secrets/NAME of the "
            "private sealing keys: this function opens tokens."
        )
    return TokenSealer(SealingKeys(
        secrets,
        config.sealing_public_key_version,
        private_keys_secret=config.sealing_private_keys_secret,
        legacy_key_version=config.legacy_sealing_key_version,
    ))


def _read_ahead(check: Callable[[], None]) -> Callable[[], None]:
    """`check`, whose failure the step that needs its result handles."""
    def run() -> None:
        try:
            check()
        except OfflineAccessError:
            pass
    return run


def _extend(cls: type[D], shared: SharedDependencies, **own: Any) -> D:
    """A function's container: the shared dependencies plus its own."""
    fields = {f.name: getattr(shared, f.name) for f in dataclasses.fields(SharedDependencies)}
    return cls(**fields, **own)


def build_sessions(shared: SharedDependencies) -> tuple[SessionCodec, CookiePolicy]:
    """The session cookie's codec and policy of a public function. Does no I/O.

    Raises:
        Misconfigured: `SESSION_KEY_VERSION` is not set.
    """
    config = shared.config
    if not config.session_key_version:
        raise Misconfigured(
            "Set SESSION_KEY_VERSION to the session key's Secret Manager version "
            "(projects/PROJECT/secrets/NAME/versions/N).")
    codec = SessionCodec(SessionKeys(shared.secrets, config.session_key_version))
    policy = CookiePolicy.for_origins(config.allowed_origins,
                                      session_lifetime=config.session_lifetime_seconds,
                                      attempt_lifetime=config.sign_in_attempt_seconds)
    return codec, policy


def _public_shared(environ: Mapping[str, str]) -> SharedDependencies:
    """What a function the page calls uses: it needs the page's origins. Does no I/O."""
    config = Config.from_env(environ)
    if not config.allowed_origins:
        raise Misconfigured("Set ALLOWED_ORIGINS to the sign-in page's origin(s).")
    return build_shared(environ, config, pool_size=EXCHANGE_POOL_SIZE)


def build_exchange_dependencies(environ: Mapping[str, str] = os.environ) -> ExchangeDependencies:
    """Dependencies of `exchange_code` from the environment.

    Raises:
        Misconfigured: a setting is missing or malformed.
    """
    shared = _public_shared(environ)
    config = shared.config
    certificates = CertificateCache(shared.http, shared.endpoints.certs_pem)
    sessions, cookies = build_sessions(shared)
    prefetch = ColdStartPrefetch(
        secrets=shared.secrets,
        client_secret_version=config.client_secret_version,
        sealer=shared.sealer,
        certificates=certificates,
        store=shared.store,
        # The session cookie is sealed after the exchange: its key must work before the code
        # is spent; the log key names the user in the request's log line. The refresh-token
        # identifiers' key is only read ahead: a sign-in never fails for want of it.
        checks=(sessions.check_ready, shared.user_refs.check_ready,
                *((_read_ahead(shared.token_ids.check_ready),) if shared.token_ids else ())),
    )
    return _extend(ExchangeDependencies, shared, certificates=certificates, prefetch=prefetch,
                   sessions=sessions, cookies=cookies)


def build_job_dependencies(environ: Mapping[str, str] = os.environ) -> JobDependencies:
    """Dependencies of `run_offline_job` from the environment.

    One pooled HTTP session sized to `JOB_CONCURRENCY` serves every user and thread of the
    instance. The tasks named by `OFFLINE_TASKS` are resolved here, so a typo fails at the
    first run with a message that names the known tasks.

    Raises:
        Misconfigured: a setting is missing or malformed, or a task name is unknown.
    """
    config = Config.from_env(environ)
    tasks = offline_tasks.resolve(config.offline_tasks)
    shared = build_shared(environ, config, pool_size=config.job_concurrency)
    shared.sealer = opening_sealer(shared.secrets, config)
    # In pubsub mode the scheduled call publishes the work instead of doing it.
    publisher = (Publisher(config.job_work_topic)
                 if config.job_mode == MODE_PUBSUB and config.job_work_topic else None)
    return _extend(JobDependencies, shared, tasks=tasks, publisher=publisher)


def build_worker(environ: Mapping[str, str] = os.environ) -> Worker:
    """The `run_offline_worker` instance: the job's dependencies and the pool its users share.

    Raises:
        Misconfigured: a setting is missing or malformed, or a task name is unknown.
    """
    return Worker(build_job_dependencies(environ))


def build_account_dependencies(environ: Mapping[str, str] = os.environ) -> AccountDependencies:
    """Dependencies of `account_api` (the public account API) from the environment.

    Raises:
        Misconfigured: a setting is missing or malformed.
    """
    shared = _public_shared(environ)
    config = shared.config
    if not config.disconnect_function_url:
        raise Misconfigured("Set DISCONNECT_FUNCTION_URL to the URL of the disconnect_user function.")
    sessions, cookies = build_sessions(shared)
    # Room for the callee's revoke call to Google and its deletes, within Hosting's 60 s.
    caller = DisconnectCaller(config.disconnect_function_url, shared.http,
                              timeout=2 * config.http_timeout_seconds + 5)
    return _extend(AccountDependencies, shared, sessions=sessions, cookies=cookies,
                   disconnect_caller=caller)


def build_disconnect_dependencies(environ: Mapping[str, str] = os.environ) -> SharedDependencies:
    """Dependencies of the internal `disconnect_user` function: only the shared ones.

    Raises:
        Misconfigured: a setting is missing or malformed.
    """
    config = Config.from_env(environ)
    shared = build_shared(environ, config, pool_size=8)
    shared.sealer = opening_sealer(shared.secrets, config)
    return shared


def build_risc_dependencies(environ: Mapping[str, str] = os.environ) -> RiscDependencies:
    """Dependencies of the public `risc_receiver` function from the environment.

    It seals and opens nothing (its sealer is never used): a hijacked account's disconnect is
    asked of `disconnect_user` (`DISCONNECT_FUNCTION_URL`; without it, the next job run does
    it), and a `token-revoked` event is matched with the identifiers' key
    (`REFRESH_TOKEN_ID_KEY_VERSION`). Does no I/O.

    Raises:
        Misconfigured: a setting is missing or malformed.
    """
    config = Config.from_env(environ)
    shared = build_shared(environ, config, pool_size=EXCHANGE_POOL_SIZE)
    verifier = SetVerifier(shared.http, shared.endpoints.risc_configuration, config.risc_audiences,
                           timeout=min(config.http_timeout_seconds, 5.0))
    # Answer Google soon: the call's own work (revoke, delete) goes on, or the job finishes it.
    caller = (DisconnectCaller(config.disconnect_function_url, shared.http,
                               timeout=config.http_timeout_seconds)
              if config.disconnect_function_url else None)
    return _extend(RiscDependencies, shared, verifier=verifier, disconnect_caller=caller)


def build_token_api_dependencies(
    environ: Mapping[str, str] = os.environ,
) -> TokenApiDependencies:
    """Dependencies of `token_api` (the app backend's token API) from the environment.

    It opens tokens (the private keys) and reads the session key, for session lookups.

    Raises:
        Misconfigured: a setting is missing or malformed.
    """
    config = Config.from_env(environ)
    if not config.token_api_audiences:
        raise Misconfigured("Set TOKEN_API_AUDIENCES to this function's URL(s): the audience "
                            "its callers' ID tokens name.")
    if not config.token_api_allowed_callers:
        raise Misconfigured("Set TOKEN_API_ALLOWED_CALLERS to the service accounts that may "
                            "call the token API.")
    shared = build_shared(environ, config, pool_size=EXCHANGE_POOL_SIZE)
    shared.sealer = opening_sealer(shared.secrets, config)
    sessions, _ = build_sessions(shared)
    certificates = CertificateCache(shared.http, shared.endpoints.certs_pem)
    callers = CallerVerifier(certificates, audiences=config.token_api_audiences,
                             allowed=config.token_api_allowed_callers)
    return _extend(TokenApiDependencies, shared, certificates=certificates, callers=callers,
                   sessions=sessions)


class Lazy(Generic[T]):
    """A value built on first use, once, even when the first requests arrive together."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                value = self._value
                if value is None:
                    value = self._value = self._build()
        return value


def warm_up_in_each_worker(
    target: str,
    lazy: Lazy[T],
    warm: Callable[[T], None],
    environ: Mapping[str, str] = os.environ,
) -> bool:
    """Build `target`'s dependencies and do its first calls as soon as a worker process exists.

    functions-framework imports the source in gunicorn's master, then forks the worker that
    serves requests. Threads and gRPC channels do not survive a fork (a warm-up started at
    import deadlocks the worker), so the warm-up starts in each new worker instead, alongside
    its first request, which then waits for that work rather than doing it again. Only the
    function this instance serves warms up: `FUNCTION_TARGET` names it, as Cloud Run functions'
    buildpack sets it at launch. Returns whether a warm-up was registered.
    """
    if environ.get(FUNCTION_TARGET) != target:
        return False

    def run() -> None:
        try:
            warm(lazy.get())
        except Exception as exc:  # the first request repeats each step and reports the failure
            logging.getLogger(__name__).info(
                "%s warm-up stopped at %s; the first request will retry", target,
                type(exc).__name__)

    os.register_at_fork(
        after_in_child=lambda: threading.Thread(target=run, name="warm-up", daemon=True).start()
    )
    return True
