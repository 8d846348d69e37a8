"""Runs the configured tasks for one user, each on its own: a task's failure is that task's alone.

A task the user did not grant every scope for is not asked (`skipped`, with the missing scopes).
A final refusal by an API, an unusable answer or a bug in the task fails that task only, and the
next task still runs. Errors that end the user's work, not one task's, propagate: an outage
(Google or Firestore down, a misconfiguration), a dead grant, and the run's hard deadline.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import (
    ApiRefused,
    DeadlineReached,
    GrantError,
    OfflineAccessError,
    RefreshRefused,
    UpstreamInvalid,
)
from ..store.job_claims import DueUser
from ..store.users import PROFILE_FIELDS
from .api_session import ApiSession
from .tasks import OfflineTask


def run_tasks(
    tasks: Iterable[OfflineTask], api: ApiSession, user: DueUser, granted_scopes: tuple[str, ...]
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Each task's record (by name), and the profile fields the tasks read.

    Raises:
        OfflineAccessError: an outage (`outage` set), a dead grant (`GrantError`), a refused
            refresh (`RefreshRefused`), or the deadline (`DeadlineReached`).
    """
    results: dict[str, dict[str, Any]] = {}
    profile: dict[str, Any] = {}
    for task in tasks:
        missing = task.missing_scopes(granted_scopes)
        if missing:
            results[task.name] = {"status": "skipped", "reason": "scope_not_granted",
                                  "missing_scopes": missing}
            continue
        try:
            result = task.run(api, user)
        except ApiRefused as exc:
            results[task.name] = {"status": "failed", "error": exc.reason,
                                  "reason": exc.google_reason}
        except RefreshRefused:
            raise  # a forced refresh was refused: the user's failure, not the task's
        except UpstreamInvalid:
            results[task.name] = {"status": "failed", "error": "upstream_invalid"}
        except OfflineAccessError as exc:
            if exc.outage or isinstance(exc, (GrantError, DeadlineReached)):
                raise
            results[task.name] = {"status": "failed", "error": exc.reason}
        except Exception as exc:  # a task's bug fails that task only
            results[task.name] = {"status": "failed", "error": "task_error",
                                  "exception_type": type(exc).__name__}
        else:
            results[task.name] = {"status": "ok", **result.summary}
            profile.update({k: v for k, v in result.profile.items() if k in PROFILE_FIELDS})
    return results, profile
