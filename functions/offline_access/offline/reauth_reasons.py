"""Why a user's refresh token died: the likely reason, from what the user document tells us.

Google answers every dead refresh token with the same `invalid_grant` ("Token has been expired
or revoked."), whatever the cause. The job marks the user `needs_reauth` and stores the most
likely reason, so the page (or a notification) can say something better than "sign in again",
and an operator can see, for example, that every user of an app still in Testing lost access
after a week. The reason is a diagnosis, never a reason to retry: the token is dead either way.

The decision table, first match wins:

| evidence | reason |
|---|---|
| the sealed token does not open (copied, tampered, its key retired or gone) | `unreadable_token` |
| a refresh refused with a 4xx (not `invalid_grant`) `REFUSALS_BEFORE_REAUTH` runs in a row | `refresh_refused` |
| `error_subtype` `invalid_rapt` / `rapt_required` (session control) | `reauth_required` |
| time-based access: `refresh_token_expires_at` has passed | `time_based_access_expiry` |
| `OAUTH_APP_TESTING_MODE`, scopes beyond Sign-In, refresh token issued >= 7 days ago | `testing_mode_expiry` |
| last use (the refresh token's issue or a successful refresh) >= 180 days ago | `unused_6_months` |
| the document has no issue or consent time at all | `unknown` |
| otherwise | `revoked` |

Google's clocks run from when the refresh token was issued (`refresh_token_issued_at`), not from
the last sign-in (`signed_in_at`, which moves with every sign-in, with or without a new refresh
token); documents written before that field existed fall back to `signed_in_at`.

`revoked` covers the user removing access in their Google Account, a password change with
Gmail scopes, and an administrator's policy. Eviction by the limit of 100 live refresh tokens
per account per client looks exactly the same from here, and cannot be caused by this
deployment alone: each sign-in stores the newest token, and only older ones are evicted. It
needs refresh tokens for the same client issued elsewhere (another deployment or app sharing
the client id), of which the document knows nothing, so `token_limit_eviction` stays in the
vocabulary (for a caller with that knowledge) but is not inferred here.

One reason is not inferred here but told by Google: `revoked_at_google`, which the RISC
receiver records when a Cross-Account Protection event says the grant was revoked
(`tokens-revoked`, or `token-revoked` naming the stored token).

Reference: https://developers.google.com/identity/protocols/oauth2#expiration
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..scopes import identity_only
from ..store.users import stored_time

UNREADABLE_TOKEN = "unreadable_token"
REFRESH_REFUSED = "refresh_refused"
REAUTH_REQUIRED = "reauth_required"
TIME_BASED_ACCESS_EXPIRY = "time_based_access_expiry"
TESTING_MODE_EXPIRY = "testing_mode_expiry"
UNUSED_6_MONTHS = "unused_6_months"
TOKEN_LIMIT_EVICTION = "token_limit_eviction"
REVOKED = "revoked"
UNKNOWN = "unknown"
REVOKED_AT_GOOGLE = "revoked_at_google"
REASONS = (
    UNREADABLE_TOKEN,
    REFRESH_REFUSED,
    REAUTH_REQUIRED,
    TIME_BASED_ACCESS_EXPIRY,
    TESTING_MODE_EXPIRY,
    UNUSED_6_MONTHS,
    TOKEN_LIMIT_EVICTION,
    REVOKED,
    UNKNOWN,
    REVOKED_AT_GOOGLE,
)

TESTING_MODE_LIFETIME = dt.timedelta(days=7)
IDLE_LIMIT = dt.timedelta(days=180)  # Google says "6 months"; the shortest reading
# Our clock and Google's differ a little, and consent happened a moment before we stored it.
_SLACK = dt.timedelta(minutes=10)
_RAPT_SUBTYPES = frozenset({"invalid_rapt", "rapt_required"})


def consent_time(record: dict[str, Any]) -> dt.datetime | None:
    """When the stored refresh token was issued (`refresh_token_issued_at`), or for older
    documents the last sign-in (`signed_in_at`, then `created_at`)."""
    return (stored_time(record.get("refresh_token_issued_at"))
            or stored_time(record.get("signed_in_at")) or stored_time(record.get("created_at")))


def last_use(record: dict[str, Any]) -> dt.datetime | None:
    """When the refresh token was last used: the later of its issue and our last refresh."""
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
    expires = stored_time(record.get("refresh_token_expires_at"))
    if expires is not None and now >= expires - _SLACK:
        return TIME_BASED_ACCESS_EXPIRY
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
