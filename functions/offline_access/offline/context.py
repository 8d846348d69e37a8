"""What a run works with: the instance's dependencies, and the run's own context.

`JobDependencies` is built once per instance (`wiring.build_job_dependencies`); a `RunContext`
once per run. `offline.one_user.process_user` needs only these two and the user document, not
the page or the pool, so users can be handed to other instances unchanged.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from ..dependencies import SharedDependencies
from ..messaging.publisher import Publisher
from ..store.job_claims import JobStore
from .backoff import CALL_RETRIES, DEFERRAL, Backoff
from .decision import Policy
from .tasks import OfflineTask


@dataclass(kw_only=True)
class JobDependencies(SharedDependencies):
    """Everything a run talks to, built once per instance (`wiring.build_job_dependencies`)."""

    tasks: tuple[OfflineTask, ...]
    call_retries: Backoff = CALL_RETRIES
    deferral: Backoff = DEFERRAL
    # Users in a row that met an outage before the run stops starting more: with Google down,
    # the rest would only add load and time.
    breaker_threshold: int = 20
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    log_stream: TextIO | None = None
    # With `JOB_MODE=pubsub`: where the scheduled call publishes the work (`offline.dispatch`).
    publisher: Publisher | None = None
    jobs: JobStore = field(init=False)

    def __post_init__(self) -> None:
        self.jobs = JobStore(self.store)

    @property
    def policy(self) -> Policy:
        return Policy(
            interval=dt.timedelta(seconds=self.config.job_interval_seconds),
            deferral=self.deferral,
            testing_mode=self.config.oauth_app_testing_mode,
            allowed_hosted_domains=self.config.allowed_hosted_domains,
        )


@dataclass(frozen=True)
class RunContext:
    """What `process_user` needs to know about the run."""

    run_id: str
    claim_id: str  # unique to this delivery: two deliveries of one run id are told apart
    started_at: dt.datetime
    # `deps.clock()` value of the hard deadline: no user starts within `start_reserve` of it, no
    # call starts after it, and every call's timeout is cut to end by it.
    deadline: float
    # `deps.clock()` value after which no user starts: the deadline less `run.start_reserve`.
    last_start: float
    client_secret: str = field(repr=False)
    # How late a `next_run_at` still counts as due (None: now); later for runs ahead of schedule.
    due_by: dt.datetime | None = None
