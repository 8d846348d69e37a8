"""Which change makes which lifecycle event, and what each event says: pure, no I/O.

Every event is a CloudEvent 1.0 (structured JSON) whose `type` is a reverse-DNS prefix
(`EVENT_TYPE_PREFIX`, default `dev.offline-access`) and one of the names below, whose `subject`
is the user's `sub`, and whose `id` is derived from the change itself (a hash of the type, the
`sub` and what identifies the change: a creation time, a run id...), so that the same change
always carries the same id and a subscriber drops a second delivery by its id.

- `user.connected`: a sign-in created the user's document (a first sign-in, or one after a
  disconnect). `data`: `status`, `offline_access`, `email`, `granted_scopes`.
- `user.reconnected`: a sign-in made a user `active` who was not (`needs_reauth`,
  `no_offline_access`, or a pending disconnect cancelled). `data`: `status`, `previous_status`,
  `granted_scopes`.
- `user.scopes_changed`: the granted scopes changed, at a sign-in or because a refresh reported
  others. `data`: `granted_scopes`, `added`, `removed`.
- `user.needs_reauth`: the grant died (the job or the token API found out). `data`: `reason`
  (the document's `reauth_reason`).
- `user.disconnected`: the grant was revoked and every record deleted. `data`: `requested_by`,
  `revoked`.
- `user.suspended`: Google disabled the account (Cross-Account Protection's `account-disabled`,
  not for hijacking): the job stops working for the user, the grant is kept. `data`: `reason`
  (`account_disabled`), `google_reason` (`bulk-account` or null).
- `user.restored`: Google enabled the suspended account again. `data`: `status` (`active`, or
  `needs_reauth` if the grant died meanwhile).
- `offline.task_completed`: an offline task ran for the user in a job run. `data`: `run_id`,
  `task`, `outcome` (the user's run), `summary` (the task's own).

Nothing in an event is a token, a code or a secret.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

SPEC_VERSION = "1.0"
USER_CONNECTED = "user.connected"
USER_RECONNECTED = "user.reconnected"
USER_SCOPES_CHANGED = "user.scopes_changed"
USER_NEEDS_REAUTH = "user.needs_reauth"
USER_DISCONNECTED = "user.disconnected"
USER_SUSPENDED = "user.suspended"
USER_RESTORED = "user.restored"
TASK_COMPLETED = "offline.task_completed"
TYPES = (USER_CONNECTED, USER_RECONNECTED, USER_SCOPES_CHANGED, USER_NEEDS_REAUTH,
         USER_DISCONNECTED, USER_SUSPENDED, USER_RESTORED, TASK_COMPLETED)

Event = dict[str, Any]  # a structured CloudEvent: its attributes, and `data`


def rfc3339(moment: dt.datetime) -> str:
    """`2026-06-01T12:00:00.123456Z`: CloudEvents' `time` (RFC 3339, UTC)."""
    utc = moment.astimezone(dt.timezone.utc) if moment.tzinfo else moment
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _scopes(value: Any) -> list[str]:
    return sorted(s for s in value if isinstance(s, str)) if isinstance(value, (list, tuple)) else []


class EventCatalog:
    """Builds this deployment's events: its type prefix, and its `source`."""

    def __init__(self, prefix: str, project: str) -> None:
        self.prefix = prefix
        # A URI reference naming the producer: this deployment's users (CloudEvents `source`).
        self.source = f"//offline-access/projects/{project}"

    def type_of(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def event(self, name: str, sub: str, at: dt.datetime, data: Mapping[str, Any],
              change: str) -> Event:
        """One event; `change` identifies the change, so that the id is the same each time."""
        digest = hashlib.sha256(f"{name}|{sub}|{change}".encode()).hexdigest()[:32]
        return {
            "specversion": SPEC_VERSION,
            "id": digest,
            "source": self.source,
            "type": self.type_of(name),
            "subject": sub,
            "time": rfc3339(at),
            "datacontenttype": "application/json",
            "data": dict(data),
        }

    def sign_in(self, sub: str, previous: Mapping[str, Any] | None, written: Mapping[str, Any],
                now: dt.datetime) -> list[Event]:
        """The events of a sign-in: `previous` is the document before it (None: it created it),
        `written` the fields it wrote."""
        status = written.get("status")
        scopes = _scopes(written.get("granted_scopes"))
        marker = str(int(now.timestamp() * 1_000_000))
        if previous is None:
            return [self.event(USER_CONNECTED, sub, now, {
                "status": status, "offline_access": status == "active",
                "email": written.get("email"), "granted_scopes": scopes}, marker)]
        events = []
        before = previous.get("status")
        if status == "active" and before != "active":
            events.append(self.event(USER_RECONNECTED, sub, now, {
                "status": status, "previous_status": before, "granted_scopes": scopes}, marker))
        events.extend(self.scopes_changed(sub, previous.get("granted_scopes"), scopes, now))
        return events

    def scopes_changed(self, sub: str, before: Any, after: Iterable[str],
                       now: dt.datetime) -> list[Event]:
        """`user.scopes_changed` when the scopes differ, else nothing."""
        old, new = set(_scopes(before)), set(_scopes(list(after)))
        if old == new:
            return []
        marker = f"{int(now.timestamp() * 1_000_000)}|{' '.join(sorted(new))}"
        return [self.event(USER_SCOPES_CHANGED, sub, now, {
            "granted_scopes": sorted(new), "added": sorted(new - old),
            "removed": sorted(old - new)}, marker)]

    def needs_reauth(self, sub: str, reason: str | None, now: dt.datetime) -> Event:
        return self.event(USER_NEEDS_REAUTH, sub, now, {"reason": reason},
                          f"{int(now.timestamp() * 1_000_000)}|{reason}")

    def disconnected(self, sub: str, *, requested_by: str | None, revoked: str | None,
                     requested_at: dt.datetime | None, now: dt.datetime) -> Event:
        # One disconnect request is one change, however many workers try to finish it.
        when = requested_at or now
        return self.event(USER_DISCONNECTED, sub, now, {"requested_by": requested_by,
                                                        "revoked": revoked},
                          str(int(when.timestamp() * 1_000_000)))

    def security_event(self, sub: str, lifecycle: str | None, fields: Mapping[str, Any], *,
                       record: str, now: dt.datetime) -> list[Event]:
        """The events of a Cross-Account Protection action (`risc.actions.Plan.lifecycle`, with
        the fields it writes), identified by the security event's record: a revoked grant is
        `user.needs_reauth`, a suspension `user.suspended`, its end `user.restored`. Ended
        sessions, a password-change notice and a disconnect request publish nothing here (the
        disconnect publishes `user.disconnected` when it is done)."""
        if lifecycle == "grant_revoked":
            return [self.event(USER_NEEDS_REAUTH, sub, now, {"reason": fields.get("reauth_reason")},
                               record)]
        if lifecycle == "account_suspended":
            held = fields.get("suspension")
            suspension = held if isinstance(held, Mapping) else {}
            return [self.event(USER_SUSPENDED, sub, now, {
                "reason": suspension.get("reason"), "google_reason": suspension.get("google_reason")},
                record)]
        if lifecycle == "account_restored":
            return [self.event(USER_RESTORED, sub, now, {"status": fields.get("status")}, record)]
        return []

    def tasks_completed(self, sub: str, run_id: str, outcome: str,
                        tasks: Mapping[str, Mapping[str, Any]], now: dt.datetime) -> list[Event]:
        """One `offline.task_completed` per task that ran (`status: ok`) in the user's run."""
        events = []
        for name, record in sorted(tasks.items()):
            if record.get("status") != "ok":
                continue
            summary = {k: v for k, v in record.items() if k != "status"}
            events.append(self.event(TASK_COMPLETED, sub, now, {
                "run_id": run_id, "task": name, "outcome": outcome, "summary": summary},
                f"{run_id}|{name}"))
        return events
