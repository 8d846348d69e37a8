"""OAuth scope rules of Google's authorization server: normalisation and granular consent.

Google rewrites the Sign-In short names (`email`, `profile`) to their
`https://www.googleapis.com/auth/userinfo.*` URLs in every token response, and adds
`openid` whenever any Sign-In scope is granted. The granular consent rule
(google-oauth.md §7) decides whether the consent page offers per-scope checkboxes.

The consent page names scopes in the sign-in page's words: `describe` reads the `NAMES` table of
`static_site/scopes.js`, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

SIGN_IN_PAGE_SCOPES = Path(__file__).resolve().parents[2] / "static_site" / "scopes.js"

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

_JS_STRING = r'"((?:[^"\\]|\\.)*)"'
_NAMES_BLOCK = re.compile(r"const NAMES = new Map\(\[(.*?)\]\);", re.S)
_NAME_ENTRY = re.compile(r"\[\s*(AUTH\s*\+\s*)?" + _JS_STRING + r"\s*,\s*" + _JS_STRING + r"\s*\]")
_AUTH_PREFIX = re.compile(r"const AUTH = " + _JS_STRING + ";")


def read_scope_names(path: Path = SIGN_IN_PAGE_SCOPES) -> dict[str, str]:
    """`NAMES` from the sign-in page's scopes.js: `{scope: description}`.

    Entries are `["scope", "text"]` or `[AUTH + "suffix", "text"]` with double-quoted strings.
    Raises RuntimeError if the file is missing or its table cannot be read.
    """
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuntimeError(f"the local Google reads scope names from {path}: {exc}") from exc
    block, auth = _NAMES_BLOCK.search(source), _AUTH_PREFIX.search(source)
    if block is None or auth is None:
        raise RuntimeError(f"{path} has no `const AUTH = \"...\"` and `const NAMES = new Map([...]);`")
    prefix = json.loads(f'"{auth.group(1)}"')
    names = {
        (prefix if plus else "") + json.loads(f'"{key}"'): json.loads(f'"{text}"')
        for plus, key, text in _NAME_ENTRY.findall(block.group(1))
    }
    entries = block.group(1).count("[")
    if len(names) != entries:
        raise RuntimeError(f"{path}: read {len(names)} of the {entries} NAMES entries")
    return names


_DESCRIPTIONS = read_scope_names()


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
    """The sign-in page's description of a scope (falls back to the scope itself, as it does)."""
    return _DESCRIPTIONS.get(scope) or _DESCRIPTIONS.get(_ALIASES.get(scope, scope)) or scope


def only_identity(scopes: Iterable[str]) -> bool:
    """True when every scope is a Sign-In scope (the Testing-mode 7-day expiry exemption)."""
    return all(s in IDENTITY_SCOPES for s in scopes)
