"""OAuth scope rules of Google's authorization server: normalisation and granular consent.

Google rewrites the Sign-In short names (`email`, `profile`) to their
`https://www.googleapis.com/auth/userinfo.*` URLs in every token response, and adds
`openid` whenever any Sign-In scope is granted. The granular consent rule
(google-oauth.md §7) decides whether the consent page offers per-scope checkboxes.
"""

from __future__ import annotations

from collections.abc import Iterable

OPENID = "openid"
USERINFO_EMAIL = "https://www.googleapis.com/auth/userinfo.email"
USERINFO_PROFILE = "https://www.googleapis.com/auth/userinfo.profile"
DRIVE_APPDATA = "https://www.googleapis.com/auth/drive.appdata"

_ALIASES = {"email": USERINFO_EMAIL, "profile": USERINFO_PROFILE}

# After normalisation, these are the "Sign-In" scopes: consented as a whole.
IDENTITY_SCOPES = frozenset({OPENID, USERINFO_EMAIL, USERINFO_PROFILE})
# Google sends RISC events only about users who granted one of these.
RISC_ELIGIBLE_SCOPES = frozenset({USERINFO_EMAIL, USERINFO_PROFILE})

# Scopes that let a token read the user's regular Drive space (not appDataFolder).
DRIVE_SPACE_SCOPES = frozenset(
    "https://www.googleapis.com/auth/" + name
    for name in (
        "drive",
        "drive.file",
        "drive.readonly",
        "drive.metadata",
        "drive.metadata.readonly",
    )
)

_DESCRIPTIONS = {
    DRIVE_APPDATA: "See, create, and delete its own configuration data in your Google Drive",
    "https://www.googleapis.com/auth/drive": "See, edit, create, and delete all of your Google Drive files",
    "https://www.googleapis.com/auth/drive.file": (
        "See, edit, create, and delete only the specific Google Drive files you use with this app"
    ),
    "https://www.googleapis.com/auth/drive.readonly": "See and download all your Google Drive files",
    "https://www.googleapis.com/auth/calendar": (
        "See, edit, share, and permanently delete all the calendars you can access using Google Calendar"
    ),
    "https://www.googleapis.com/auth/gmail.readonly": "View your email messages and settings",
}


def split(scope: str | Iterable[str] | None) -> list[str]:
    """Splits a space-delimited scope string (or passes a list through), dropping blanks."""
    if scope is None:
        return []
    items = scope.split(" ") if isinstance(scope, str) else list(scope)
    return [item for item in (s.strip() for s in items) if item]


def is_valid(scope: str) -> bool:
    """True for scopes Google would accept syntactically: short names or URLs."""
    return scope in _ALIASES or scope == OPENID or scope.startswith("https://")


def normalise(scopes: Iterable[str]) -> frozenset[str]:
    """Maps `email`/`profile` to their URLs and adds `openid` when any Sign-In scope is present."""
    result = {_ALIASES.get(s, s) for s in scopes}
    if result & IDENTITY_SCOPES:
        result.add(OPENID)
    return frozenset(result)


def normalise_exact(scopes: Iterable[str]) -> frozenset[str]:
    """Maps short names to URLs without adding `openid` (for refresh `scope` subsets)."""
    return frozenset(_ALIASES.get(s, s) for s in scopes)


def join(scopes: Iterable[str]) -> str:
    """The `scope` string of a response: space-delimited, in a stable order."""
    return " ".join(sorted(scopes))


def partition(scopes: Iterable[str]) -> tuple[list[str], list[str]]:
    """Splits requested scopes into (Sign-In scopes, other scopes), both normalised, order kept."""
    identity: list[str] = []
    others: list[str] = []
    for scope in scopes:
        scope = _ALIASES.get(scope, scope)
        bucket = identity if scope in IDENTITY_SCOPES else others
        if scope not in bucket:
            bucket.append(scope)
    return identity, others


def granular_screen(identity: list[str], others: list[str]) -> bool:
    """The §7 rule: checkboxes when Sign-In plus >=1 other scope, or >=2 other scopes."""
    return (bool(identity) and len(others) >= 1) or len(others) >= 2


def describe(scope: str) -> str:
    """A human description for the consent page (falls back to the scope itself)."""
    return _DESCRIPTIONS.get(scope, scope)


def only_identity(scopes: Iterable[str]) -> bool:
    """True when every scope is a Sign-In scope (the Testing-mode 7-day expiry exemption)."""
    return all(s in IDENTITY_SCOPES for s in scopes)
