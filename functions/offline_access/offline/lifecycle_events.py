"""The job's part in the lifecycle events (`events.outbox`): what earlier publishes left behind
goes out at the start of a run (or of a dispatch), and a run's (or a delivery's) own events go
out before it answers: an idle Cloud Run instance may get no CPU after its answer.
"""

from __future__ import annotations

from ..errors import OfflineAccessError
from .context import JobDependencies


def publish_leftover_events(deps: JobDependencies) -> None:
    """Publish the lifecycle events earlier publishes left in the outbox (`events.outbox`); it
    logs its own line."""
    outbox = deps.store.outbox
    if outbox is None:
        return
    try:
        outbox.publish_leftovers()
    except OfflineAccessError:
        pass  # Firestore is down: the run's own reads say so; the events wait for the next run


def flush_events(deps: JobDependencies) -> None:
    """Let this run's events go out before the answer (an idle instance may get no CPU after)."""
    if deps.store.outbox is not None:
        deps.store.outbox.flush(timeout=10)
