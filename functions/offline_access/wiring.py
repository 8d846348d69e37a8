"""Builds each function's dependencies once per instance, on first use, and warms new workers.

`build_shared` builds what both functions use (configuration, endpoints, secrets, the sealer,
one pooled HTTP session, the user store); `build_exchange_dependencies` and
`build_job_dependencies` add what only one function needs. Nothing is created at import time,
so cold starts stay close to a bare import of the client libraries, and tests build the same
dependencies with the same constructors.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from .config import MODE_PUBSUB, Config
from .dependencies import SharedDependencies
from .errors import Misconfigured
from .googleapis.certificates import CertificateCache
from .googleapis.endpoints import GoogleEndpoints
from .googleapis.http_session import make_session
from .messaging.publisher import Publisher
from .offline import tasks as offline_tasks
from .offline.context import JobDependencies
from .offline.worker import Worker
from .signin.exchange import ExchangeDependencies
from .signin.prefetch import ColdStartPrefetch
from .store import secrets as secret_store
from .store import users as user_store
from .store.sealing import SealingKeys, TokenSealer

T = TypeVar("T")
D = TypeVar("D", bound=SharedDependencies)

FUNCTION_TARGET = "FUNCTION_TARGET"
# Concurrent requests of one exchange instance (the Terraform default); each may hold a connection.
EXCHANGE_POOL_SIZE = 32


def build_shared(environ: Mapping[str, str], config: Config, *, pool_size: int) -> SharedDependencies:
    """What both functions use. Builds clients; does no I/O."""
    secrets = secret_store.SecretSource(secret_store.make_client(environ))
    return SharedDependencies(
        config=config,
        endpoints=GoogleEndpoints.from_env(environ),
        secrets=secrets,
        sealer=TokenSealer(SealingKeys(secrets, config.sealing_key_version)),
        session=make_session(pool_size=pool_size, environ=environ),
        store=user_store.UserStore(user_store.make_client(config.project), config.users_collection),
    )


def _extend(cls: type[D], shared: SharedDependencies, **own: Any) -> D:
    """A function's container: the shared dependencies plus its own."""
    fields = {f.name: getattr(shared, f.name) for f in dataclasses.fields(SharedDependencies)}
    return cls(**fields, **own)


def build_exchange_dependencies(environ: Mapping[str, str] = os.environ) -> ExchangeDependencies:
    """Dependencies of `exchange_code` from the environment.

    Raises:
        Misconfigured: a setting is missing or malformed.
    """
    config = Config.from_env(environ)
    if not config.allowed_origins:
        raise Misconfigured("Set ALLOWED_ORIGINS to the sign-in page's origin(s).")
    shared = build_shared(environ, config, pool_size=EXCHANGE_POOL_SIZE)
    certificates = CertificateCache(shared.session, shared.endpoints.certs_pem)
    prefetch = ColdStartPrefetch(
        secrets=shared.secrets,
        client_secret_version=config.client_secret_version,
        sealer=shared.sealer,
        certificates=certificates,
        store=shared.store,
    )
    return _extend(ExchangeDependencies, shared, certificates=certificates, prefetch=prefetch)


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
