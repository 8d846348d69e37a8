"""The events of a security event token, as plain values: what each one says about whom.

A token's `events` claim maps event type URIs to an object with the `subject` and the event's
own fields (google-oauth.md §5). User events name the user by an `iss-sub` or `id_token_claims`
subject; `token-revoked` names a refresh token (`oauth_token`: its first 16 characters, or a
double SHA-512 hash); `verification` names nobody and carries the `state` it was asked with.
An event of a type or with a subject this module does not know is kept with a `problem`: the
receiver logs it and acknowledges it, as Google may add types at any time.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_RISC = "https://schemas.openid.net/secevent/risc/event-type/"
_OAUTH = "https://schemas.openid.net/secevent/oauth/event-type/"

SESSIONS_REVOKED = "sessions-revoked"
TOKENS_REVOKED = "tokens-revoked"
TOKEN_REVOKED = "token-revoked"
ACCOUNT_DISABLED = "account-disabled"
ACCOUNT_ENABLED = "account-enabled"
CREDENTIAL_CHANGE_REQUIRED = "account-credential-change-required"
VERIFICATION = "verification"
UNSUPPORTED = "unsupported"

# Short name -> type URI, for every type the receiver acts on (and registers for).
EVENT_TYPES = {
    SESSIONS_REVOKED: _RISC + SESSIONS_REVOKED,
    TOKENS_REVOKED: _OAUTH + TOKENS_REVOKED,
    TOKEN_REVOKED: _OAUTH + TOKEN_REVOKED,
    ACCOUNT_DISABLED: _RISC + ACCOUNT_DISABLED,
    ACCOUNT_ENABLED: _RISC + ACCOUNT_ENABLED,
    CREDENTIAL_CHANGE_REQUIRED: _RISC + CREDENTIAL_CHANGE_REQUIRED,
    VERIFICATION: _RISC + VERIFICATION,
}
_SHORT_NAMES = {uri: name for name, uri in EVENT_TYPES.items()}
USER_EVENTS = (SESSIONS_REVOKED, TOKENS_REVOKED, ACCOUNT_DISABLED, ACCOUNT_ENABLED,
               CREDENTIAL_CHANGE_REQUIRED)

# `account-disabled` reasons.
HIJACKING = "hijacking"
BULK_ACCOUNT = "bulk-account"
_REASONS = (HIJACKING, BULK_ACCOUNT)

# How Google's subjects spell the issuer of the `sub` (its SETs use the trailing slash).
GOOGLE_SUBJECT_ISSUERS = ("https://accounts.google.com/", "https://accounts.google.com",
                          "accounts.google.com")
_SUB = re.compile(r"[A-Za-z0-9_.\-]{1,255}")
_TOKEN_ALGS = ("prefix", "hash_base64_sha512_sha512")
MAX_STATE_CHARS = 128


@dataclass(frozen=True)
class SecurityEvent:
    """One event of a verified token.

    Attributes:
        type: the short name (`sessions-revoked`...), or `unsupported`.
        uri: the type URI as sent.
        issued_at: the token's `iat`: when Google issued the event.
        sub: the user, for user events.
        token_alg, token_id: how `token-revoked` names the refresh token (never logged).
        reason: `account-disabled`'s `reason` (`hijacking`, `bulk-account`, or None).
        state: `verification`'s `state`.
        problem: why the event cannot be acted on (`unsupported_type`, `unsupported_subject`).
    """

    type: str
    uri: str
    issued_at: dt.datetime
    sub: str | None = field(default=None, repr=False)
    token_alg: str | None = None
    token_id: str | None = field(default=None, repr=False)
    reason: str | None = None
    state: str | None = None
    problem: str | None = None


def _user_sub(subject: Any) -> str | None:
    if not isinstance(subject, Mapping):
        return None
    if subject.get("subject_type") not in ("iss-sub", "id_token_claims"):
        return None
    if subject.get("iss") not in GOOGLE_SUBJECT_ISSUERS:
        return None
    sub = subject.get("sub")
    return sub if isinstance(sub, str) and _SUB.fullmatch(sub) else None


def _one(uri: str, body: Any, issued_at: dt.datetime) -> SecurityEvent:
    name = _SHORT_NAMES.get(uri)
    if name is None:
        return SecurityEvent(UNSUPPORTED, uri, issued_at, problem="unsupported_type")
    body = body if isinstance(body, Mapping) else {}
    subject = body.get("subject")
    if name == VERIFICATION:
        state = body.get("state")
        return SecurityEvent(name, uri, issued_at,
                             state=state[:MAX_STATE_CHARS] if isinstance(state, str) else None)
    if name == TOKEN_REVOKED:
        subject = subject if isinstance(subject, Mapping) else {}
        alg, token = subject.get("token_identifier_alg"), subject.get("token")
        if subject.get("subject_type") != "oauth_token" or subject.get("token_type") != "refresh_token" \
                or alg not in _TOKEN_ALGS or not isinstance(token, str) or not 0 < len(token) <= 256:
            return SecurityEvent(name, uri, issued_at, problem="unsupported_subject")
        return SecurityEvent(name, uri, issued_at, token_alg=str(alg), token_id=token)
    sub = _user_sub(subject)
    if sub is None:
        return SecurityEvent(name, uri, issued_at, problem="unsupported_subject")
    reason = body.get("reason") if name == ACCOUNT_DISABLED else None
    return SecurityEvent(name, uri, issued_at, sub=sub,
                         reason=reason if reason in _REASONS else None)


def events_of(claims: Mapping[str, Any]) -> list[SecurityEvent]:
    """The events of a verified token's claims (whose `events` is a non-empty object)."""
    issued_at = dt.datetime.fromtimestamp(float(claims["iat"]), dt.timezone.utc)
    return [_one(str(uri), body, issued_at) for uri, body in claims["events"].items()]
