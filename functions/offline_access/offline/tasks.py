"""The work the scheduled job does for each user: named tasks, selected by `OFFLINE_TASKS`.

This file is the extension point. A task is a function that receives an authorized session
(`ApiSession`: requests to Google as the user, with token refresh, retries and the one forced
refresh after a 401 already handled) and the user's document (`DueUser`, read-only), calls
whatever Google APIs it needs, and returns a `TaskResult` whose small summary is stored under
`job.result.tasks.<name>` on the user document.

To add one, write a function here and register it under a name with the scopes it needs:

    @offline_task("calendar_next_event", scopes=("https://www.googleapis.com/auth/calendar.readonly",))
    def calendar_next_event(api: ApiSession, user: DueUser) -> TaskResult:
        events = api.get_json("https://www.googleapis.com/calendar/v3/calendars/primary/events",
                              params={"maxResults": 1, "orderBy": "startTime",
                                      "singleEvents": "true", "timeMin": "..."})
        return TaskResult(summary={"has_upcoming_event": bool(events.get("items"))})

then add its scope to `OAUTH_SCOPES` (so the page asks for it) and its name to `OFFLINE_TASKS`.
Build URLs from `api.endpoints` where one exists, so that the local Google can serve them.

What the job does around a task:

- A user who did not grant every scope in `scopes` is not asked: the task is recorded as
  `{"status": "skipped", "reason": "scope_not_granted"}` and the user's run still succeeds.
- `ApiRefused` (a final 4xx), an invalid answer, or any other exception fails this task only
  (`{"status": "failed", "error": ...}`); the other tasks still run.
- `GoogleUnavailable` (Google still failing after the retries) defers the whole user, and
  `GrantRevoked` marks them `needs_reauth`: let those propagate.
- Keep summaries small (counts, flags, ids; no personal content, no tokens): they are written to
  Firestore and logged. A task must be safe to run again for the same user (runs are at least
  once: a crash after the calls and before the result write repeats them in a later run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import Misconfigured, UpstreamInvalid
from ..scopes import DRIVE_APPDATA_SCOPE, OPENID_SCOPE, missing_scopes
from ..store.job_claims import DueUser
from ..store.users import PROFILE_FIELDS
from .api_session import ApiSession


@dataclass(frozen=True)
class TaskResult:
    """What a task hands back.

    Attributes:
        summary: a small JSON-like map stored under `job.result.tasks.<name>` and logged.
        profile: profile fields (`email`, `email_verified`, `name`, `picture`, `hd`) to store on
            the user document; other keys are ignored.
    """

    summary: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)


TaskFunction = Callable[[ApiSession, DueUser], TaskResult]


@dataclass(frozen=True)
class OfflineTask:
    """A registered task: its name, the scopes it needs (all of them), and the function."""

    name: str
    scopes: tuple[str, ...]
    run: TaskFunction

    def missing_scopes(self, granted: Iterable[str]) -> list[str]:
        """The task's scopes that `granted` lacks (`email`/`profile` short names understood)."""
        return missing_scopes(self.scopes, granted)


_REGISTRY: dict[str, OfflineTask] = {}


def offline_task(name: str, *, scopes: Iterable[str]) -> Callable[[TaskFunction], TaskFunction]:
    """Register a task function under `name`, the name `OFFLINE_TASKS` selects it by."""

    def register(function: TaskFunction) -> TaskFunction:
        if name in _REGISTRY:
            raise ValueError(f"an offline task named {name!r} is already registered")
        _REGISTRY[name] = OfflineTask(name=name, scopes=tuple(scopes), run=function)
        return function

    return register


def registered() -> dict[str, OfflineTask]:
    """Every registered task, by name."""
    return dict(_REGISTRY)


def resolve(names: Iterable[str]) -> tuple[OfflineTask, ...]:
    """The tasks `OFFLINE_TASKS` names, in its order.

    Raises:
        Misconfigured: a name is not registered (checked when the job's dependencies are built).
    """
    tasks = []
    for name in names:
        task = _REGISTRY.get(name)
        if task is None:
            known = ", ".join(sorted(_REGISTRY)) or "none"
            raise Misconfigured(
                f"OFFLINE_TASKS names {name!r}, which is not a registered task (known: {known})."
            )
        if task not in tasks:
            tasks.append(task)
    return tuple(tasks)


# Built-in tasks


_DRIVE_MAX_PAGES = 10


@offline_task("drive_appdata", scopes=(DRIVE_APPDATA_SCOPE,))
def drive_appdata(api: ApiSession, user: DueUser) -> TaskResult:
    """The seed's Drive call: count the files in the user's appDataFolder (`files.list`).

    Reference: https://developers.google.com/workspace/drive/api/guides/appdata
    """
    count = 0
    page_token = None
    for _ in range(_DRIVE_MAX_PAGES):
        params = {"spaces": "appDataFolder", "fields": "nextPageToken,files(id)",
                  "pageSize": 1000}
        if page_token:
            params["pageToken"] = page_token
        listing = api.get_json(f"{api.endpoints.drive}/files", params=params)
        files = listing.get("files")
        if not isinstance(files, list):
            raise UpstreamInvalid("Drive's file list has no `files` array.")
        count += len(files)
        page_token = listing.get("nextPageToken")
        if not page_token:
            return TaskResult(summary={"files": count})
    return TaskResult(summary={"files": count, "truncated": True})


@offline_task("userinfo", scopes=(OPENID_SCOPE,))
def userinfo(api: ApiSession, user: DueUser) -> TaskResult:
    """OpenID Connect userinfo: keep the stored name, picture and email current.

    Only the claims the grant covers are returned (`profile` for name and picture, `email`
    for email); the others are left as they are. `hd` is kept in step with the email.

    Reference: https://developers.google.com/identity/openid-connect/openid-connect#obtaininguserprofileinformation
    """
    claims = api.get_json(api.endpoints.userinfo)
    if claims.get("sub") != user.sub:
        raise UpstreamInvalid("userinfo answered for another account.")
    profile = {name: claims[name] for name in PROFILE_FIELDS if name in claims}
    if "email" in claims:
        profile["hd"] = claims.get("hd")
    changed = sorted(name for name, value in profile.items() if user.data.get(name) != value)
    return TaskResult(summary={"changed": changed}, profile=profile)
