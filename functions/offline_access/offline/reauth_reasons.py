"""Why a user's refresh token died: the likely reason, from what the user document tells us.

Google answers every dead refresh token with the same `invalid_grant` ("Token has been expired
or revoked."), whatever the cause. The job marks the user `needs_reauth` and stores the most
likely reason, so the page (or a notification) can say something better than "sign in again",
and an operator can see, for example, that every user of an app still in Testing lost access
after a week. The reason is a diagnosis, never a reason to retry: the token is dead either way.

The decision table, first match wins:

| evidence | reason |
|---|---|
| the sealed token does not open (copied, tampered, unknown key) | `unreadable_token` |
| `error_subtype` `invalid_rapt` / `rapt_required` (session control) | `reauth_required` |
| `OAUTH_APP_TESTING_MODE`, scopes beyond Sign-In, consent >= 7 days ago | `testing_mode_expiry` |
| last use (consent or a successful refresh) >= 180 days ago | `unused_6_months` |
| the document has no consent time at all | `unknown` |
| otherwise | `revoked` |

`revoked` covers the user removing access in their Google Account, a password change with
Gmail scopes, and an administrator's policy. Eviction by the limit of 100 live refresh tokens
per account per client looks exactly the same from here, and cannot be caused by this
deployment alone: each sign-in stores the newest token, and only older ones are evicted. It
needs refresh tokens for the same client issued elsewhere (another deployment or app sharing
the client id), of which the document knows nothing, so `token_limit_eviction` stays in the
vocabulary (for a caller with that knowledge) but is not inferred here.

Reference: https://developers.google.com/identity/protocols/oauth2#expiration
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..scopes import identity_only
from ..store.users import stored_time

UNREADABLE_TOKEN = "unreadable_token"
REAUTH_REQUIRED = "reauth_required"
TESTING_MODE_EXPIRY = "testing_mode_expiry"
UNUSED_6_MONTHS = "unused_6_months"
TOKEN_LIMIT_EVICTION = "token_limit_eviction"
REVOKED = "revoked"
UNKNOWN = "unknown"
REASONS = (
    UNREADABLE_TOKEN,
    REAUTH_REQUIRED,
    TESTING_MODE_EXPIRY,
    UNUSED_6_MONTHS,
    TOKEN_LIMIT_EVICTION,
    REVOKED,
    UNKNOWN,
)

TESTING_MODE_LIFETIME = dt.timedelta(days=7)
IDLE_LIMIT = dt.timedelta(days=180)  # Google says "6 months"; the shortest reading
# Our clock and Google's differ a little, and consent happened a moment before we stored it.
_SLACK = dt.timedelta(minutes=10)
_RAPT_SUBTYPES = frozenset({"invalid_rapt", "rapt_required"})


def consent_time(record: dict[str, Any]) -> dt.datetime | None:
    """When the user last consented, as far as the document knows (`signed_in_at`)."""
    return stored_time(record.get("signed_in_at")) or stored_time(record.get("created_at"))


def last_use(record: dict[str, Any]) -> dt.datetime | None:
    """When the refresh token was last used: the later of consent and our last refresh."""
    job = record.get("job")
    if not isinstance(job, dict):
        job = {}
    times = [t for t in (consent_time(record), stored_time(job.get("refreshed_at"))) if t is not None]
    return max(times) if times else None


def classify(
    record: dict[str, Any],
    *,
    error_subtype: str,
    now: dt.datetime,
    testing_mode: bool = False,
) -> str:
    """The likely reason a refresh failed with `invalid_grant` (see the module's table).

    Args:
        record: the user document as read at the start of the user's work.
        error_subtype: Google's `error_subtype`, or `invalid_grant` when there was none.
        now: the current time (timezone-aware).
        testing_mode: the OAuth consent screen's publishing status is Testing.
    """
    if error_subtype in _RAPT_SUBTYPES:
        return REAUTH_REQUIRED
    consented = consent_time(record)
    if consented is None:
        return UNKNOWN
    scopes = record.get("granted_scopes") or ()
    if testing_mode and not identity_only(scopes) and now - consented >= TESTING_MODE_LIFETIME - _SLACK:
        return TESTING_MODE_EXPIRY
    used = last_use(record) or consented
    if now - used >= IDLE_LIMIT - _SLACK:
        return UNUSED_6_MONTHS
    return REVOKED
