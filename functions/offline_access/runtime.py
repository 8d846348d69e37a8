"""Builds each function's dependencies once per instance, on first use.

Nothing is created at import time, so cold starts stay close to a bare import of the client
libraries, and tests can build dependencies of their own with the same constructors.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import TypeVar

from . import secret_source, user_store
from .code_exchange import ExchangeDependencies
from .config import Config, ConfigError
from .errors import Misconfigured
from .google_endpoints import GoogleEndpoints
from .http_session import make_session
from .id_token_verifier import CertificateCache
from .token_sealing import SealingKeys, TokenSealer

T = TypeVar("T")


def build_exchange_dependencies(environ: Mapping[str, str] = os.environ) -> ExchangeDependencies:
    """Dependencies of `exchange_code` from the environment.

    Raises:
        Misconfigured: a setting is missing or malformed.
    """
    try:
        config = Config.from_env(environ)
    except ConfigError as exc:
        raise Misconfigured(str(exc)) from None
    if not config.allowed_origins:
        raise Misconfigured("Set ALLOWED_ORIGINS to the sign-in page's origin(s).")
    endpoints = GoogleEndpoints.from_env(environ)
    session = make_session(pool_size=32, environ=environ)
    secrets = secret_source.SecretSource(secret_source.make_client(environ))
    return ExchangeDependencies(
        config=config,
        endpoints=endpoints,
        secrets=secrets,
        sealer=TokenSealer(SealingKeys(secrets, config.sealing_key_version)),
        session=session,
        certificates=CertificateCache(session, endpoints.certs_pem),
        store=user_store.UserStore(
            user_store.make_client(config.project), config.users_collection
        ),
    )


class Lazy:
    """A value built on first use, once, even when the first requests arrive together."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value = None
        self._lock = threading.Lock()

    def get(self):
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
        return self._value


FUNCTION_TARGET = "FUNCTION_TARGET"


def warm_up_in_each_worker(
    target: str,
    lazy: Lazy,
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


def build_job_dependencies(environ: Mapping[str, str] = os.environ):
    """Dependencies of `run_offline_job` from the environment.

    One pooled HTTP session sized to `JOB_CONCURRENCY` serves every user and thread of the
    instance. The tasks named by `OFFLINE_TASKS` are resolved here, so a typo fails at the
    first run with a message that names the known tasks.

    Raises:
        Misconfigured: a setting is missing or malformed, or a task name is unknown.
    """
    from . import offline_job, user_tasks

    try:
        config = Config.from_env(environ)
    except ConfigError as exc:
        raise Misconfigured(str(exc)) from None
    tasks = user_tasks.resolve(config.offline_tasks)
    secrets = secret_source.SecretSource(secret_source.make_client(environ))
    session = make_session(pool_size=config.job_concurrency, environ=environ)
    return offline_job.JobDependencies(
        config=config,
        endpoints=GoogleEndpoints.from_env(environ),
        secrets=secrets,
        sealer=TokenSealer(SealingKeys(secrets, config.sealing_key_version)),
        session=session,
        store=user_store.UserStore(
            user_store.make_client(config.project), config.users_collection
        ),
        tasks=tasks,
        testing_mode=config.oauth_app_testing_mode,
    )
