"""The `__session` cookie: who is signed in on this browser, and its pending sign-in attempts.

Firebase Hosting passes only the cookie named `__session` on to the functions it rewrites to, so
this one cookie carries both things a browser needs the server to remember:

- the session: the user's `sub`, the user document's `session_generation` when it began, and
  when it ends (`SESSION_LIFETIME_SECONDS`);
- up to three sign-in attempts: the `state` the page will send with its next code, each with
  its own short expiry (`SIGN_IN_ATTEMPT_SECONDS`). Before a sign-in the cookie holds only
  these: the short-lived pre-session cookie that binds `state` to this browser.

The value is `v1.<key id>.<base64url(nonce | AES-256-GCM ciphertext)>` under a key from Secret
Manager (`SESSION_KEY_VERSION`; 32 random bytes, base64). The key id is the key's version
number, bound as associated data, so keys rotate like the sealing keys: new cookies use the
configured version, older ones open with the version they name (only versions up to the
configured one are ever read, each once per instance). Nothing about the user can be read from
the value, and a tampered, expired, unknown-key or foreign value decodes to "nothing": never an
error the client sees. Validity against the user document (generation, status) is checked by
the caller (`accounts.api`).

Reference: https://firebase.google.com/docs/hosting/manage-cache#using_cookies
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import json
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import ClientError, Misconfigured
from ..store.secrets import SecretSource, random_key

COOKIE_NAME = "__session"
COOKIE_PATH = "/api"
FORMAT = "v1"
MAX_ATTEMPTS = 3
MAX_COOKIE_CHARS = 2048
_AAD_PREFIX = b"offline-access/session/v1|"
_NONCE_BYTES = 12
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class Session:
    """A signed-in browser: the user and the document generation the session belongs to."""

    sub: str
    generation: int
    expires_at: int  # Unix seconds

    def __repr__(self) -> str:  # the sub is personal data in logs
        return f"Session(generation={self.generation}, expires_at={self.expires_at})"


@dataclass(frozen=True)
class SignInAttempt:
    """A `state` handed to the page for its next code, and when it stops counting."""

    state: str = field(repr=False)
    expires_at: int


@dataclass(frozen=True)
class CookieState:
    """What one `__session` cookie holds; empty when there is none or it does not decode."""

    session: Session | None = None
    attempts: tuple[SignInAttempt, ...] = ()

    @property
    def empty(self) -> bool:
        return self.session is None and not self.attempts

    def live(self, now: int) -> CookieState:
        """The same without what has expired."""
        session = self.session if self.session and self.session.expires_at > now else None
        return CookieState(session, tuple(a for a in self.attempts if a.expires_at > now))

    def with_attempt(self, attempt: SignInAttempt) -> CookieState:
        """Add an attempt; the oldest goes beyond `MAX_ATTEMPTS` (one per open tab, say)."""
        return replace(self, attempts=(*self.attempts, attempt)[-MAX_ATTEMPTS:])

    def take_attempt(self, state: str) -> CookieState | None:
        """The cookie without the attempt whose state is `state`, or None if it has none such."""
        kept, found = [], False
        for attempt in self.attempts:
            if not found and hmac.compare_digest(attempt.state.encode(), state.encode()):
                found = True
            else:
                kept.append(attempt)
        return replace(self, attempts=tuple(kept)) if found else None


def parse_session_key(raw: bytes, version_name: str) -> bytes:
    """A 32-byte AES key from a secret's payload (`secrets.random_key`)."""
    return random_key(raw, version_name, what="a session key", fix=" (run `make rotate-session-key`)")


class SessionKeys:
    """The session key that seals new cookies and, by key id, the older ones that still open."""

    def __init__(self, secrets_source: SecretSource, primary_version_name: str) -> None:
        self._secrets = secrets_source
        self._primary = primary_version_name
        self._secret_name = primary_version_name.rsplit("/versions/", 1)[0]
        self._refused: set[str] = set()
        self._lock = threading.Lock()

    def primary(self) -> tuple[str, bytes]:
        """(key id, key) of the configured version.

        Raises:
            Unavailable, Misconfigured: from Secret Manager or the key's format.
        """
        value = self._secrets.get(self._primary)
        return value.version_id, parse_session_key(value.data, value.version_name)

    def by_id(self, key_id: str) -> bytes | None:
        """The key a cookie names, or None when no such key may open cookies.

        Only the configured version and older ones are read, each at most once per instance
        (a refusal is remembered too), so made-up key ids cost no Secret Manager call.
        """
        primary_id, primary_key = self.primary()
        if key_id == primary_id:
            return primary_key
        if not (key_id.isascii() and key_id.isdigit() and primary_id.isdigit()) \
                or int(key_id) >= int(primary_id) or key_id in self._refused:
            return None
        try:
            value = self._secrets.get(f"{self._secret_name}/versions/{key_id}")
            return parse_session_key(value.data, value.version_name)
        except Misconfigured:  # destroyed, disabled or malformed: its cookies are void
            with self._lock:
                self._refused.add(key_id)
            return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _now() -> int:
    return int(dt.datetime.now(dt.timezone.utc).timestamp())


class SessionCodec:
    """Seals a `CookieState` into a cookie value and opens one; the clock is injectable."""

    def __init__(self, keys: SessionKeys, clock: Callable[[], int] = _now) -> None:
        self._keys = keys
        self._clock = clock
        self._ciphers: dict[bytes, AESGCM] = {}

    def now(self) -> int:
        return self._clock()

    def check_ready(self) -> None:
        """Read the session key now, so a missing key fails before anything else happens."""
        self._keys.primary()

    def _cipher(self, key: bytes) -> AESGCM:
        cipher = self._ciphers.get(key)
        if cipher is None:
            cipher = self._ciphers[key] = AESGCM(key)
        return cipher

    def seal(self, state: CookieState) -> str:
        key_id, key = self._keys.primary()
        document: dict[str, Any] = {}
        if state.session is not None:
            document["s"] = [state.session.sub, state.session.generation, state.session.expires_at]
        if state.attempts:
            document["a"] = [[a.state, a.expires_at] for a in state.attempts]
        plaintext = json.dumps(document, separators=(",", ":")).encode()
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._cipher(key).encrypt(nonce, plaintext, _AAD_PREFIX + key_id.encode())
        return f"{FORMAT}.{key_id}.{_b64(nonce + sealed)}"

    def open(self, value: str | None) -> CookieState:
        """What a cookie value holds, without what has expired; empty for anything unusable.

        Raises:
            Unavailable, Misconfigured: the configured key cannot be read (never for a bad cookie).
        """
        if not value or len(value) > MAX_COOKIE_CHARS:
            return CookieState()
        parts = value.split(".")
        if len(parts) != 3 or parts[0] != FORMAT:
            return CookieState()
        key = self._keys.by_id(parts[1])
        if key is None:
            return CookieState()
        try:
            blob = _unb64(parts[2])
            plaintext = self._cipher(key).decrypt(
                blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _AAD_PREFIX + parts[1].encode())
            return _parse(json.loads(plaintext)).live(self.now())
        except (InvalidTag, ValueError, binascii.Error, TypeError, IndexError):
            return CookieState()


def _parse(document: Any) -> CookieState:
    if not isinstance(document, dict):
        raise ValueError("not a cookie document")
    session = None
    raw_session = document.get("s")
    if raw_session is not None:
        sub, generation, expires_at = raw_session
        if not (isinstance(sub, str) and isinstance(generation, int) and isinstance(expires_at, int)):
            raise ValueError("bad session")
        session = Session(sub, generation, expires_at)
    attempts = []
    for state, expires_at in document.get("a", []):
        if not (isinstance(state, str) and isinstance(expires_at, int)):
            raise ValueError("bad attempt")
        attempts.append(SignInAttempt(state, expires_at))
    return CookieState(session, tuple(attempts[-MAX_ATTEMPTS:]))


def new_state() -> str:
    """A fresh `state`: 32 random bytes, URL-safe."""
    return secrets.token_urlsafe(32)


BOUND = "bound"  # the state matched an attempt of this browser, which is now used up
UNBOUND = "unbound"  # a state, but no cookie at all (an app on another origin sends none)
NO_STATE = "none"  # no state at all (Google's original sample sends the raw code)


def bind_state(cookie: CookieState, state: str | None) -> tuple[CookieState, str]:
    """Check a sign-in's `state` against the browser's attempts, before the code is spent.

    A browser whose cookie holds a session or attempts (it asked `/api/sign-in-attempts`) must
    send the state of one of its attempts, and that attempt is used up. A request without a
    state, or from a client with no cookie at all (an app on another origin, which sends none),
    is not bound: CSRF is then left to `X-Requested-With` and the Origin allowlist, which no
    cross-site page can pass.

    Returns:
        The cookie without the used attempt, and `BOUND`, `UNBOUND` or `NO_STATE`.

    Raises:
        ClientError: 400 `state_mismatch`: the browser has attempts and the state is none of them.
    """
    if state is None:
        return cookie, NO_STATE
    if cookie.empty:
        return cookie, UNBOUND
    remaining = cookie.take_attempt(state)
    if remaining is None:
        raise ClientError(
            "This sign-in was not started from this page, or it took too long: its state does "
            "not match. Start the sign-in again.",
            code="state_mismatch",
        )
    return remaining, BOUND


def _is_loopback_http(origin: str) -> bool:
    parts = urlsplit(origin)
    return parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS


@dataclass(frozen=True)
class CookiePolicy:
    """How the cookie is set: `Secure` unless the page can only be plain http on loopback."""

    secure: bool
    session_lifetime: int
    attempt_lifetime: int

    @classmethod
    def for_origins(cls, allowed_origins: tuple[str, ...], *, session_lifetime: int,
                    attempt_lifetime: int) -> CookiePolicy:
        """`Secure` unless every allowed origin is `http://localhost` (or loopback) as in `make dev`:
        a browser never sends a Secure cookie over plain http to any other host."""
        loopback_only = bool(allowed_origins) and all(
            _is_loopback_http(origin) for origin in allowed_origins)
        return cls(secure=not loopback_only, session_lifetime=session_lifetime,
                   attempt_lifetime=attempt_lifetime)

    def header(self, value: str, max_age: int) -> str:
        """A `Set-Cookie` value for the cookie; `max_age` 0 deletes it."""
        flags = [f"{COOKIE_NAME}={value}", f"Max-Age={max(max_age, 0)}", f"Path={COOKIE_PATH}",
                 "HttpOnly", "SameSite=Lax"]
        if self.secure:
            flags.append("Secure")
        return "; ".join(flags)

    def max_age(self, state: CookieState, now: int) -> int:
        """Seconds until everything in the cookie has expired."""
        ends = [a.expires_at for a in state.attempts]
        if state.session is not None:
            ends.append(state.session.expires_at)
        return max(ends, default=now) - now
