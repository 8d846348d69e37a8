"""OAuth scopes as both flows compare them.

Google reports `email` and `profile` under their long names (`.../auth/userinfo.email`), adds
`openid`, and grants the Sign-In scopes (`openid`, `email`, `profile`) as a whole. Every comparison
of scopes goes through `normalize_scope`, so a short name in the configuration and Google's long
name in a token response count as the same scope.

Reference: https://developers.google.com/identity/protocols/oauth2/resources/granular-permissions
"""

from __future__ import annotations

from collections.abc import Iterable

OPENID_SCOPE = "openid"
EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"
PROFILE_SCOPE = "https://www.googleapis.com/auth/userinfo.profile"
DRIVE_APPDATA_SCOPE = "https://www.googleapis.com/auth/drive.appdata"

_ALIASES = {"email": EMAIL_SCOPE, "profile": PROFILE_SCOPE}
# The Sign-In scopes, in their long form: a grant of only these is exempt from Testing's expiry.
SIGN_IN_SCOPES = frozenset({OPENID_SCOPE, EMAIL_SCOPE, PROFILE_SCOPE})


def normalize_scope(scope: str) -> str:
    """The spelling Google uses in its answers (`email` → `.../auth/userinfo.email`)."""
    return _ALIASES.get(scope, scope)


def missing_scopes(wanted: Iterable[str], granted: Iterable[str]) -> list[str]:
    """The scopes of `wanted` that `granted` lacks, in `wanted`'s order and spelling."""
    have = {normalize_scope(s) for s in granted}
    return [s for s in wanted if normalize_scope(s) not in have]


def identity_only(scopes: Iterable[str]) -> bool:
    """True when a grant holds only Sign-In scopes (name, email, profile)."""
    return all(normalize_scope(scope) in SIGN_IN_SCOPES for scope in scopes)
