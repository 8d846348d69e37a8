"""What a signed-in user is told about their account: `GET /api/me` and the exchange's answer.

One shape for both, so the page renders a fresh sign-in and a returning visit the same way:

    {"status": "signed_in", "user": {sub, email, email_verified, name, picture, hd},
     "offline_access": bool, "granted_scopes": [...], "missing_scopes": [...],
     "account": {"status", "reauth_reason", "reauth_message", "connected_at", "signed_in_at",
                 "last_run": {"at", "outcome", "tasks": {name: {status, ...summary}}} | null,
                 "next_run_at",
                 "security_notice": {"kind", "title", "message", "help_url", "since"} | null}}

`reauth_message` says in plain words why the app lost access (the reasons of
`offline.reauth_reasons`, as stored by the job). `security_notice` is what Google's security
events asked the product to tell the user (`risc.actions`): that Google disabled the account
(status `suspended`), or that Google asks for a new password. No token, sealed or not, is ever
part of it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..scopes import missing_scopes
from ..store.users import (
    PROFILE_FIELDS,
    SECURITY_NOTICE_FIELD,
    STATUS_ACTIVE,
    STATUS_NEEDS_REAUTH,
    STATUS_SUSPENDED,
    SUSPENSION_FIELD,
    stored_time,
)

# Why a grant died, for the person it belonged to (keys: offline/reauth_reasons.py's reasons).
REAUTH_MESSAGES = {
    "revoked": "You removed this app's access in your Google Account, or Google ended it "
               "(for example after a password change).",
    "reauth_required": "Your organisation asks you to sign in to Google again before the app "
                       "may use your account.",
    "testing_mode_expiry": "This app is still in testing with Google, and Google ends its "
                           "access after 7 days.",
    "unused_6_months": "The app's access expired because it was not used for six months.",
    "unreadable_token": "The app can no longer read the permission it stored.",
    "time_based_access_expiry": "The time you chose when you gave the app access has run out.",
    "refresh_refused": "Google keeps refusing the app's access to your account.",
    "token_limit_eviction": "Google ended this access because too many newer sign-ins to the "
                            "app were made with your account.",
    "unknown": "Google no longer accepts the app's access.",
    "revoked_at_google": "Google told the app that its access to your account was revoked, for "
                         "example because you removed it in your Google Account, or to protect "
                         "your account.",
}
# What a security event flagged, for the person it concerns: (title, what happened and what to
# do, a page of Google's that helps).
SECURITY_NOTICES = {
    "account_disabled": (
        "Google disabled your Google Account",
        "The app has stopped working with your account while it is disabled. If you didn't "
        "expect this, ask Google to restore it. When Google enables your account again, the "
        "app starts working for you again by itself.",
        "https://support.google.com/accounts/answer/40695"),
    "credential_change_required": (
        "Google asks you to change your password",
        "Google found signs that someone else may know the password of your Google Account. "
        "Change it in your Google Account's security settings, then sign in here again to "
        "dismiss this notice.",
        "https://myaccount.google.com/security"),
}
NO_OFFLINE_ACCESS_MESSAGE = ("Google didn't give the app a lasting permission when you signed "
                             "in, so it can't work for you while you're away.")


def _iso(value: Any) -> str | None:
    time = stored_time(value)
    return time.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z") if time else None


def _last_run(record: dict[str, Any]) -> dict[str, Any] | None:
    job = record.get("job")
    if not isinstance(job, dict) or not job.get("last_run_at"):
        return None
    result = job.get("result")
    result = result if isinstance(result, dict) else {}
    tasks = result.get("tasks")
    tasks = tasks if isinstance(tasks, dict) else {}
    return {
        "at": _iso(job.get("last_run_at")),
        "outcome": result.get("outcome"),
        "tasks": {str(name): dict(summary) for name, summary in tasks.items()
                  if isinstance(summary, dict)},
    }


def security_notice(record: dict[str, Any]) -> dict[str, Any] | None:
    """What a security event flagged on the account, in plain words, or None."""
    kind: Any
    if record.get("status") == STATUS_SUSPENDED:
        kind, flag = "account_disabled", record.get(SUSPENSION_FIELD)
    else:
        flag = record.get(SECURITY_NOTICE_FIELD)
        kind = flag.get("kind") if isinstance(flag, dict) else None
    if kind not in SECURITY_NOTICES:
        return None
    title, message, help_url = SECURITY_NOTICES[str(kind)]
    since = flag.get("since") if isinstance(flag, dict) else None
    return {"kind": kind, "title": title, "message": message, "help_url": help_url,
            "since": _iso(since)}


def account_body(sub: str, record: dict[str, Any], wanted_scopes: tuple[str, ...]) -> dict[str, Any]:
    """The answer for a signed-in user, from their document."""
    scopes = record.get("granted_scopes")
    granted = [s for s in scopes if isinstance(s, str)] if isinstance(scopes, list) else []
    status = record.get("status")
    reason = record.get("reauth_reason") if status == STATUS_NEEDS_REAUTH else None
    if status == STATUS_NEEDS_REAUTH:
        message = REAUTH_MESSAGES.get(str(reason), REAUTH_MESSAGES["unknown"])
    elif status in (STATUS_ACTIVE, STATUS_SUSPENDED):
        message = None  # a suspension is told by its security notice
    else:
        message = NO_OFFLINE_ACCESS_MESSAGE
    user: dict[str, Any] = {"sub": sub}
    user.update({name: record.get(name) for name in PROFILE_FIELDS})
    return {
        "status": "signed_in",
        "user": user,
        "offline_access": status == STATUS_ACTIVE,
        "granted_scopes": granted,
        "missing_scopes": missing_scopes(wanted_scopes, granted),
        "account": {
            "status": status,
            "reauth_reason": reason,
            "reauth_message": message,
            "connected_at": _iso(record.get("created_at")),
            "signed_in_at": _iso(record.get("signed_in_at")),
            "last_run": _last_run(record),
            "next_run_at": _iso(record.get("next_run_at")) if status == STATUS_ACTIVE else None,
            "security_notice": security_notice(record),
        },
    }
