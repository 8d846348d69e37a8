"""The scheduled job against the real local stack, with users signed in the real way.

Users are signed in through the local Google's `mint_code` and the real exchange
(`code_exchange.complete_sign_in`), so their documents are exactly what the exchange writes.
`make_job` builds a job instance with the production constructor from `runtime`; tests swap
only the clock-like pieces (backoff delays, `now`) and capture the log lines.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
from typing import Any

import pytest
from google.cloud import firestore

from offline_access import wiring
from offline_access.offline.backoff import Backoff
from offline_access.offline.context import JobDependencies
from offline_access.offline.run import RunSummary, run_offline_job
from offline_access.signin import exchange as code_exchange
from offline_access.signin.request_guard import SignInRequest
from tests.stack_values import CLIENT_ID, DRIVE_APPDATA

ALL_SCOPES = ["openid", "email", "profile", DRIVE_APPDATA]
# Fast retries for tests: the same shape as production, milliseconds instead of seconds.
FAST_RETRIES = Backoff(base=0.02, multiplier=2.0, cap=0.2, jitter=0.5, max_attempts=4)


class JobInstance:
    """One `run_offline_job` instance and its captured log lines."""

    def __init__(self, deps: JobDependencies) -> None:
        self.deps = deps
        self.log = io.StringIO()
        deps.log_stream = self.log

    def run(self, run_id: str = "test-run") -> RunSummary:
        return run_offline_job(self.deps, run_id)

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines() if line]

    def user_lines(self) -> list[dict[str, Any]]:
        return [line for line in self.log_lines() if line.get("event") == "offline_job_user"]


class Users:
    """Signs users in through the real exchange and reads their documents (with the job's keys)."""

    def __init__(self, google, env: dict[str, str], opener) -> None:
        self.google = google
        self.exchange = wiring.build_exchange_dependencies(env)
        self.store = self.exchange.store
        self.opener = opener

    def sign_in(self, email: str, *, granted: list[str] | None = None, **mint: Any) -> str:
        minted = self.google.mint_code(client_id=CLIENT_ID, email=email, scopes=ALL_SCOPES,
                                       granted_scopes=granted or ALL_SCOPES, **mint)
        result = code_exchange.complete_sign_in(SignInRequest(code=minted["code"]), self.exchange)
        return result.body["user"]["sub"]

    def doc(self, sub: str) -> dict[str, Any]:
        return self.store.get(sub)

    def update(self, sub: str, fields: dict[str, Any]) -> None:
        self.store.ref(sub).update(fields)

    def expire_cached_access_tokens(self, *subs: str) -> None:
        """Make the stored access tokens look stale, so the next run refreshes."""
        past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
        for sub in subs:
            self.update(sub, {"access_token_expires_at": past})

    def open(self, sub: str, field: str) -> str:
        return self.opener.open(self.doc(sub)[field], sub=sub, field=field)


@pytest.fixture
def users(google, function_env, opener) -> Users:
    return Users(google, function_env, opener)


@pytest.fixture
def make_job(function_env):
    def make(env: dict[str, str] | None = None, **replace: Any) -> JobInstance:
        deps = wiring.build_job_dependencies({**function_env, **(env or {})})
        replace.setdefault("call_retries", FAST_RETRIES)
        return JobInstance(dataclasses.replace(deps, **replace))
    return make


@pytest.fixture
def job(make_job) -> JobInstance:
    return make_job()


@pytest.fixture
def firestore_client(project, firestore_emulator) -> firestore.Client:
    return firestore.Client(project=project)


def refreshes(google) -> dict[str, int]:
    """Successful refreshes per sub, from the local Google's counters."""
    return google.counters()["refresh_by_sub"]


def token_refresh_requests(google) -> int:
    return google.counters()["token_grants"].get("refresh_token", 0)


def requests_to(google, key: str) -> int:
    return google.counters()["requests"].get(key, 0)
