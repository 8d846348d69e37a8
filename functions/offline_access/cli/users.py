"""`offline-access users ...`: who is connected, one user's record, and disconnecting users.

Nothing here prints a token, sealed or not: every command builds its output from an explicit
list of fields (`summary`, `record`), never from the whole document.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from ..accounts import lifecycle
from ..accounts.view import REAUTH_MESSAGES, security_notice
from ..offline import reauth_reasons
from ..store.job_claims import DueUser
from ..store.users import (
    PROFILE_FIELDS,
    STATUS_ACTIVE,
    STATUS_DISCONNECTING,
    STATUS_NEEDS_REAUTH,
    STATUS_NO_OFFLINE_ACCESS,
    STATUS_SUSPENDED,
    stored_time,
)
from .context import CliContext, confirm, env_summary

STATUSES = (STATUS_ACTIVE, STATUS_NEEDS_REAUTH, STATUS_NO_OFFLINE_ACCESS, STATUS_DISCONNECTING,
            STATUS_SUSPENDED)
# The short record of each security event (Cross-Account Protection) on the user document.
SECURITY_EVENT_FIELDS = ("type", "issued_at", "received_at", "action", "reason", "why")


def register(groups: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    users = groups.add_parser("users", help="list, show and disconnect users")
    commands = users.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="list users, optionally by status and reason")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--reason", choices=reauth_reasons.REASONS,
                         help="why the grant died (with needs_reauth)")
    listing.add_argument("--limit", type=int, default=1000)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(run=list_users)

    show = commands.add_parser("show", help="one user's record (never a token)")
    show.add_argument("user", metavar="SUB|EMAIL")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=show_user)

    disconnect = commands.add_parser(
        "disconnect", help="revoke a user's grant at Google and delete every record of them")
    target = disconnect.add_mutually_exclusive_group(required=True)
    target.add_argument("sub", nargs="?", metavar="SUB")
    target.add_argument("--all", action="store_true", help="every user (before a tear-down)")
    disconnect.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    disconnect.add_argument("--json", action="store_true")
    disconnect.set_defaults(run=disconnect_users)


def _iso(value: Any) -> str | None:
    time = stored_time(value)
    return time.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z") if time else None


def _short(value: Any) -> str:
    time = stored_time(value)
    return time.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M") if time else "-"


def _job(user: DueUser) -> dict[str, Any]:
    job = user.data.get("job")
    return job if isinstance(job, dict) else {}


def summary(user: DueUser) -> dict[str, Any]:
    """The fields `users list` shows."""
    data, job = user.data, _job(user)
    result = job.get("result") if isinstance(job.get("result"), dict) else {}
    return {
        "sub": user.sub,
        "email": data.get("email"),
        "status": data.get("status"),
        "reauth_reason": data.get("reauth_reason"),
        "connected_at": _iso(data.get("created_at")),
        "last_run_at": _iso(job.get("last_run_at")),
        "last_outcome": (result or {}).get("outcome"),
        "next_run_at": _iso(data.get("next_run_at")),
    }


def security_events(user: DueUser) -> list[dict[str, Any]]:
    """The security events Google sent about the user, oldest first (their short records)."""
    entries = user.data.get("security_events")
    return [{name: _iso(e.get(name)) if name.endswith("_at") else e.get(name)
             for name in SECURITY_EVENT_FIELDS if e.get(name) is not None}
            for e in (entries if isinstance(entries, list) else []) if isinstance(e, dict)]


def record(user: DueUser) -> dict[str, Any]:
    """The fields `users show` shows: profile, grant, schedule, last run, a pending disconnect,
    the security events received and what they flagged."""
    data, job = user.data, _job(user)
    disconnect = data.get("disconnect") if isinstance(data.get("disconnect"), dict) else None
    scopes = data.get("granted_scopes")
    reason = data.get("reauth_reason")
    return {
        "sub": user.sub,
        **{name: data.get(name) for name in PROFILE_FIELDS},
        "status": data.get("status"),
        "reauth_reason": reason,
        "reauth_message": REAUTH_MESSAGES.get(str(reason)) if reason else None,
        "granted_scopes": list(scopes) if isinstance(scopes, list) else [],
        "has_refresh_token": bool(data.get("refresh_token")),
        "connected_at": _iso(data.get("created_at")),
        "signed_in_at": _iso(data.get("signed_in_at")),
        "next_run_at": _iso(data.get("next_run_at")),
        "job": {
            "last_run_id": job.get("last_run_id"),
            "last_run_at": _iso(job.get("last_run_at")),
            "last_success_at": _iso(job.get("last_success_at")),
            "refreshed_at": _iso(job.get("refreshed_at")),
            "failure_count": job.get("failure_count", 0),
            "result": job.get("result"),
            "claimed_by_run": job.get("claim_run_id"),
        },
        "disconnect": None if disconnect is None else {
            "requested_at": _iso(disconnect.get("requested_at")),
            "requested_by": disconnect.get("requested_by"),
            "attempts": disconnect.get("attempts"),
            "last_error": disconnect.get("last_error"),
        },
        "security_notice": security_notice(data),
        "security_events": security_events(user),
    }


def list_users(args: argparse.Namespace, context: CliContext) -> int:
    users = context.accounts().users(status=args.status, reason=args.reason, limit=args.limit)
    rows = [summary(user) for user in users]
    if args.json:
        context.print_json(rows)
        return 0
    if not rows:
        which = " ".join(filter(None, [args.status, args.reason]))
        context.print(f"No users{f' ({which})' if which else ''} in {env_summary(context.environ)}.")
        return 0
    context.table(
        ["SUB", "EMAIL", "STATUS", "REASON", "CONNECTED", "LAST RUN", "OUTCOME", "NEXT RUN"],
        [[row["sub"], row["email"], row["status"], row["reauth_reason"] or "-",
          _short(user.data.get("created_at")), _short(_job(user).get("last_run_at")),
          row["last_outcome"] or "-", _short(user.data.get("next_run_at"))]
         for user, row in zip(users, rows, strict=True)])
    context.print(f"{len(rows)} user(s).")
    return 0


def find(context: CliContext, sub_or_email: str) -> list[DueUser]:
    """The users a SUB or an EMAIL names."""
    if "@" in sub_or_email:
        return context.accounts().find_by_email(sub_or_email)
    user = context.accounts().get(sub_or_email)
    return [user] if user is not None else []


def show_user(args: argparse.Namespace, context: CliContext) -> int:
    found = find(context, args.user)
    if not found:
        context.err.write(f"No user {args.user} in {env_summary(context.environ)}.\n")
        return 1
    records = [record(user) for user in found]
    if args.json:
        context.print_json(records[0] if len(records) == 1 else records)
        return 0
    for item in records:
        context.print(f"{item['email'] or '(no email)'}  sub {item['sub']}")
        if item["name"]:
            context.print(f"  name            {item['name']}")
        verified = "verified" if item["email_verified"] else "NOT verified by Google"
        context.print(f"  email           {verified}" + (f", Workspace {item['hd']}" if item["hd"] else ""))
        status = item["status"] + (f" ({item['reauth_reason']})" if item["reauth_reason"] else "")
        context.print(f"  status          {status}")
        if item["reauth_message"]:
            context.print(f"  why             {item['reauth_message']}")
        context.print(f"  refresh token   {'stored (sealed)' if item['has_refresh_token'] else 'none'}")
        context.print(f"  connected       {item['connected_at'] or '-'}, last sign-in {item['signed_in_at'] or '-'}")
        context.print(f"  next run        {item['next_run_at'] or '-'}")
        job = item["job"]
        result = job["result"] or {}
        context.print(f"  last run        {job['last_run_at'] or 'never'}: {result.get('outcome', '-')}"
                      f"{', failures in a row: ' + str(job['failure_count']) if job['failure_count'] else ''}")
        for name, task in sorted((result.get("tasks") or {}).items()):
            details = ", ".join(f"{k}={v}" for k, v in task.items() if k != "status")
            context.print(f"    {name:<14}{task.get('status')}" + (f" ({details})" if details else ""))
        context.print("  scopes          " + ("\n                  ".join(item["granted_scopes"]) or "-"))
        if item["disconnect"]:
            d = item["disconnect"]
            context.print(f"  disconnect      asked by {d['requested_by']} at {d['requested_at']}, "
                          f"{d['attempts'] or 0} attempt(s), last error {d['last_error'] or '-'}")
        if item["security_notice"]:
            notice = item["security_notice"]
            context.print(f"  flagged         {notice['title']} (since {notice['since'] or '-'})")
        events = item["security_events"]
        context.print(f"  security events {'none' if not events else len(events)}")
        for event in events:
            detail = ", ".join(filter(None, [event.get("reason"), event.get("why")]))
            context.print(f"    {event.get('received_at') or '-'}  {event['type']}: {event['action']}"
                          + (f" ({detail})" if detail else ""))
    return 0


def disconnect_users(args: argparse.Namespace, context: CliContext) -> int:
    if args.all:
        subs = [user.sub for user in context.accounts().users(limit=100_000)]
        question = (f"Disconnect all {len(subs)} users in {env_summary(context.environ)}: revoke "
                    "every grant at Google and delete every record?")
        expected = "disconnect all"
    else:
        subs = [args.sub]
        question = (f"Disconnect user {args.sub} in {env_summary(context.environ)}: revoke their "
                    "grant at Google and delete every record of them?")
        expected = "disconnect"
    if not subs:
        context.print(f"No users in {env_summary(context.environ)}: nothing to disconnect.")
        return 0
    if not args.yes and not confirm(context, question, expected):
        context.err.write("Not confirmed: nothing was changed. Pass --yes to skip the question.\n")
        return 2
    deps = context.job()
    results = []
    for sub in subs:
        result = lifecycle.revoke_and_delete(deps, sub, requested_by=lifecycle.REQUESTED_BY_OPERATOR,
                                             log_stream=deps.log_stream)
        results.append({"sub": sub, **result.body()})
    if deps.store.outbox is not None:
        deps.store.outbox.flush()  # the user.disconnected events, before the process ends
    failed = [r for r in results if r["outcome"] not in (lifecycle.DELETED, lifecycle.ALREADY_GONE)]
    if args.json:
        context.print_json(results)
    else:
        for r in results:
            context.print(f"{r['sub']}: {_said(r)}")
        if failed:
            context.print(f"{len(failed)} not finished: they stay disconnecting (no longer processed), "
                          "and the next job run finishes them. Run this again to retry now.")
    return 1 if failed else 0


def _said(result: dict[str, Any]) -> str:
    outcome = result["outcome"]
    if outcome == lifecycle.DELETED:
        revoked = {"revoked": "grant revoked at Google", "already_revoked": "grant already gone at Google",
                   "no_token": "no token to revoke", "unreadable_token": "token unreadable, not revoked"}
        return f"disconnected ({revoked.get(result['revoked'], result['revoked'])}, " \
               f"{result['records_deleted']} record(s) deleted)"
    if outcome == lifecycle.ALREADY_GONE:
        return "no such user (already disconnected)"
    if outcome == lifecycle.DEFERRED:
        return f"not finished: {result['error']} (marked disconnecting; the next job run retries)"
    if outcome == lifecycle.CANCELLED:
        return "not disconnected: the user signed in again meanwhile"
    return "another worker is finishing this disconnect right now"
