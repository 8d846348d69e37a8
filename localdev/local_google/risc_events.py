"""Security event tokens (SETs) shaped and signed as Google's Cross-Account Protection sends them.

A SET is a JWT signed RS256 with the same keys as ID tokens (the RISC configuration's `jwks_uri`
is `/oauth2/v3/certs`), with header `{alg, kid}` and the claims of google-oauth.md §5:
`iss` `https://accounts.google.com/` (with the trailing slash), `aud` a client id, a unique
`jti`, `iat`, **no** `exp`, and `events: {<event type URI>: {subject, ...}}`.

`FORGERIES` are the wrong SETs a receiver must refuse (or, for `exp_in_past`, must still
accept), built from a real event so that only the one thing differs.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time

from .signing import KeyRing, SigningKey, encode_jwt

RISC_ISSUER = "https://accounts.google.com/"
_RISC = "https://schemas.openid.net/secevent/risc/event-type/"
_OAUTH = "https://schemas.openid.net/secevent/oauth/event-type/"

SESSIONS_REVOKED = _RISC + "sessions-revoked"
TOKENS_REVOKED = _OAUTH + "tokens-revoked"
TOKEN_REVOKED = _OAUTH + "token-revoked"
ACCOUNT_DISABLED = _RISC + "account-disabled"
ACCOUNT_ENABLED = _RISC + "account-enabled"
CREDENTIAL_CHANGE_REQUIRED = _RISC + "account-credential-change-required"
VERIFICATION = _RISC + "verification"

EVENT_TYPES = {
    uri.rsplit("/", 1)[1]: uri
    for uri in (SESSIONS_REVOKED, TOKENS_REVOKED, TOKEN_REVOKED, ACCOUNT_DISABLED,
                ACCOUNT_ENABLED, CREDENTIAL_CHANGE_REQUIRED, VERIFICATION)
}
DISABLED_REASONS = ("hijacking", "bulk-account")
SUBJECT_TYPES = ("iss-sub", "id_token_claims")
TOKEN_IDENTIFIER_ALGS = ("prefix", "hash_base64_sha512_sha512")
PREFIX_LENGTH = 16

FORGERIES = (
    "wrong_kid",  # a kid the JWKS does not publish, signed with the real key
    "no_kid",  # no kid in the header, signed with the real key
    "unknown_key",  # signed by an unpublished key, with that key's kid
    "wrong_aud",
    "wrong_iss",
    "alg_none",
    "hs256",  # HMAC keyed with the published public key: the alg-confusion attack
    "garbage",  # not a JWT at all
    "exp_in_past",  # valid, with an `exp` long gone: receivers must not check `exp`
)
FORGED_AUDIENCE = "forged-audience.apps.googleusercontent.com"
FORGED_ISSUER = "https://accounts.example.com/"


def event_type_uri(name: str) -> str:
    """The full type URI for a short name (`sessions-revoked`) or a full URI. Raises ValueError."""
    if name in EVENT_TYPES.values():
        return name
    if name in EVENT_TYPES:
        return EVENT_TYPES[name]
    raise ValueError(f"unknown RISC event type {name!r}; one of {', '.join(EVENT_TYPES)}")


def token_identifier(token: str, alg: str) -> str:
    """How a `token-revoked` event names a refresh token.

    `prefix`: its first 16 characters. `hash_base64_sha512_sha512`: base64 (standard alphabet,
    padded; Google does not say which) of SHA-512 of the SHA-512 digest of the token.
    """
    if alg == "prefix":
        return token[:PREFIX_LENGTH]
    if alg == "hash_base64_sha512_sha512":
        inner = hashlib.sha512(token.encode("utf-8")).digest()
        return base64.b64encode(hashlib.sha512(inner).digest()).decode("ascii")
    raise ValueError(f"`token_identifier_alg` must be one of {', '.join(TOKEN_IDENTIFIER_ALGS)}")


def user_subject(sub: str, email: str, subject_type: str = "iss-sub") -> dict:
    if subject_type == "iss-sub":
        return {"subject_type": "iss-sub", "iss": RISC_ISSUER, "sub": sub}
    if subject_type == "id_token_claims":
        return {"subject_type": "id_token_claims", "iss": RISC_ISSUER, "sub": sub, "email": email}
    raise ValueError(f"`subject_type` must be one of {', '.join(SUBJECT_TYPES)}")


def token_subject(refresh_token: str, alg: str) -> dict:
    return {
        "subject_type": "oauth_token",
        "token_type": "refresh_token",
        "token_identifier_alg": alg,
        "token": token_identifier(refresh_token, alg),
    }


def new_jti() -> str:
    # Google's example jti is 32 upper-case hex digits.
    return secrets.token_hex(16).upper()


def set_claims(event_uri: str, event: dict, audience: str) -> dict:
    """The claims of one SET; `iat` is the real time, as for ID tokens."""
    return {
        "iss": RISC_ISSUER,
        "aud": audience,
        "iat": int(time.time()),
        "jti": new_jti(),
        "events": {event_uri: event},
    }


def sign_set(keys: KeyRing, claims: dict, forgery: str | None = None) -> str:
    """Signs the SET with the current key, or forges it (`FORGERIES`)."""
    claims = dict(claims)
    key: SigningKey = keys.current
    header: dict = {"kid": key.kid}
    alg = "RS256"
    if forgery is None:
        pass
    elif forgery == "wrong_kid":
        header["kid"] = secrets.token_hex(20)
    elif forgery == "no_kid":
        header = {}
    elif forgery == "unknown_key":
        key = keys.unknown_key()
        header["kid"] = key.kid
    elif forgery == "wrong_aud":
        claims["aud"] = FORGED_AUDIENCE
    elif forgery == "wrong_iss":
        claims["iss"] = FORGED_ISSUER
    elif forgery == "alg_none":
        alg = "none"
    elif forgery == "hs256":
        alg = "HS256"
    elif forgery == "garbage":
        return "not-a-security-event-token." + secrets.token_urlsafe(24)
    elif forgery == "exp_in_past":
        claims["exp"] = claims["iat"] - 86400
    else:
        raise ValueError(f"`forgery` must be one of {', '.join(FORGERIES)}")
    return encode_jwt(header, claims, key, alg)


def sign_raw(keys: KeyRing, claims: dict, header: dict | None, key_choice: str = "current") -> str:
    """Signs arbitrary claims and header fields, for negative tests a forgery does not cover.

    `key_choice`: `current` (RS256, published), `unknown` (RS256, unpublished), `none`
    (alg none), `hs256` (HMAC keyed with the current public key). The header's `kid` defaults
    to the signing key's; a header field set to None is left out.
    """
    choices = {"current": (keys.current, "RS256"), "unknown": (keys.unknown_key(), "RS256"),
               "none": (keys.current, "none"), "hs256": (keys.current, "HS256")}
    if key_choice not in choices:
        raise ValueError(f"`key` must be one of {', '.join(choices)}")
    key, alg = choices[key_choice]
    merged = {"kid": key.kid, **(header or {})}
    alg = merged.pop("alg", None) or alg
    return encode_jwt({k: v for k, v in merged.items() if v is not None}, claims, key, alg)
