"""Authorization codes, grants, access tokens and refresh tokens, with Google's lifecycle rules.

This is the state behind `/token`, `/revoke`, the consent page and the APIs that take a bearer
token (google-oauth.md §8.1-8.5):

- A *grant* is what a user consented to for one project: a set of scopes, unioned over
  consents through any of the project's clients (so `include_granted_scopes` covers scopes
  granted through another client of the project). Revoking any token of the grant (or the user
  removing the app) deletes the grant, which kills every token issued under it, for every
  client of the project.
- *Sign-In scopes* (openid, email, profile) are granted as a whole: a consent that grants only
  some of the requested ones is refused.
- *Codes* are single-use and expire after a TTL. Redeeming a code twice fails and, as
  RFC 6749 §4.1.2 recommends, revokes the tokens the first redemption produced.
- *Refresh tokens* are issued only for offline codes that came with a consent screen (first
  consent to the project, new scopes, re-consent after a refresh token expired, or
  `prompt=consent`) unless the client's mode is "always". They belong to one client. At most
  100 stay live per (user, client), the oldest evicted
  silently. They die when revoked, after 180 days unused, 7 days after consent in Testing
  mode (unless only Sign-In scopes), or at a time-based expiry.

Every method takes the lock only around dictionary work; nothing here sleeps or signs.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field

from . import scopes as scope_rules
from .clock import Clock
from .directory import Client

ACCESS_TOKEN_LIFETIME = 3600
# Google reports one second less than the token lives.
ACCESS_TOKEN_EXPIRES_IN = 3599
DEFAULT_CODE_TTL = 600
MAX_LIVE_REFRESH_TOKENS = 100
TESTING_MODE_LIFETIME = 7 * 24 * 3600
# Google says "six months"; 180 days makes any test that advances "6 months" trip it.
IDLE_LIFETIME = 180 * 24 * 3600
# Observed: Google's description of a dead token changes to "Bad Request" after about 12 h.
DEAD_DESCRIPTION_SWITCH = 12 * 3600

CODE_PATTERN = re.compile(r"^4/[0-9A-Za-z_\-]{10,}$")

EXPIRED_OR_REVOKED = "Token has been expired or revoked."
REAUTH_URI = "https://support.google.com/a/answer/9368756"


class OAuthError(Exception):
    """An OAuth error answer: HTTP status, `error`, `error_description` and extra fields."""

    def __init__(self, status: int, error: str, description: str, **extra: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.extra = extra

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description, **self.extra}


def _bad_request() -> OAuthError:
    return OAuthError(400, "invalid_grant", "Bad Request")


@dataclass(slots=True)
class Grant:
    id: int
    scopes: set[str]
    created_at: float
    # The project's clients the user consented through, in order.
    client_ids: list[str] = field(default_factory=list)
    # Set when a refresh token expired (Testing mode, time-based, idle): the next sign-in shows
    # the consent screen again and so brings a new refresh token.
    reconsent: bool = False


@dataclass(slots=True)
class Code:
    code: str
    client_id: str
    project_id: str
    sub: str
    redirect_uri: str
    scopes: frozenset[str]
    offline: bool
    consent_screen: bool
    consented_at: float
    expires_at: float
    grant_id: int
    code_challenge: str | None = None
    code_challenge_method: str = "plain"
    refresh_token_lifetime: int | None = None
    used: bool = False
    issued_access: list[str] = field(default_factory=list)
    issued_refresh: str | None = None


@dataclass(slots=True)
class RefreshToken:
    token: str
    sub: str
    client_id: str
    project_id: str
    grant_id: int
    scopes: frozenset[str]
    issued_at: float
    last_used_at: float
    expires_at: float | None = None
    expiry_reason: str | None = None
    dead_reason: str | None = None
    dead_at: float | None = None


@dataclass(slots=True)
class AccessToken:
    token: str
    sub: str
    client_id: str
    project_id: str
    grant_id: int
    scopes: frozenset[str]
    expires_at: float
    refresh_token: str | None


@dataclass(slots=True)
class Issue:
    """What a successful token request produced (the ID token is added by the caller)."""

    sub: str
    client_id: str
    access_token: str
    scopes: frozenset[str]
    refresh_token: str | None = None
    refresh_token_expires_in: int | None = None


@dataclass(slots=True)
class Consent:
    code: str
    scopes: frozenset[str]
    prompt: str


def new_code() -> str:
    return "4/0A" + secrets.token_urlsafe(51)


def new_access_token() -> str:
    return "ya29.a0" + secrets.token_urlsafe(96)


def new_refresh_token() -> str:
    return "1//0" + secrets.token_urlsafe(72)


def _pkce_matches(verifier: str, challenge: str, method: str) -> bool:
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    else:
        computed = verifier
    return secrets.compare_digest(computed, challenge)


class OAuthState:
    """The authorization server's memory. Thread-safe; see the module docstring for rules."""

    def __init__(self, clock: Clock, code_ttl: int = DEFAULT_CODE_TTL) -> None:
        self.clock = clock
        self.code_ttl = code_ttl
        self._lock = threading.Lock()
        self._reset_locked()

    def _reset_locked(self) -> None:
        self._codes: dict[str, Code] = {}
        self._grants: dict[tuple[str, str], Grant] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._live: dict[tuple[str, str], deque[str]] = {}
        self._access: dict[str, AccessToken] = {}
        self._reauth: set[str] = set()
        # (sub, project) -> clients through which the user ever granted email or profile: RISC
        # events go to users who did, even after they revoked the grant.
        self._sign_in_clients: dict[tuple[str, str], list[str]] = {}
        self._next_grant_id = 1
        self._codes_since_sweep = 0
        self._access_since_sweep = 0

    def reset(self) -> None:
        with self._lock:
            self._reset_locked()

    # Consent (the consent page and the control hook)

    def consent(
        self,
        client: Client,
        sub: str,
        requested: list[str],
        granted: list[str] | None = None,
        *,
        redirect_uri: str = "postmessage",
        offline: bool = True,
        include_granted_scopes: bool = True,
        prompt: str | None = None,
        code_challenge: str | None = None,
        code_challenge_method: str | None = None,
        refresh_token_lifetime: int | None = None,
    ) -> Consent:
        """Records the user's approval and mints a code, as the consent page's Allow does.

        Raises:
            ValueError: no scopes, invalid scopes, granted scopes that were not requested, or
                a grant of only some of the requested Sign-In scopes.
        """
        invalid = [s for s in requested if not scope_rules.is_valid(s)]
        if invalid:
            raise ValueError(f"Some requested scopes were invalid. {{invalid=[{', '.join(invalid)}]}}")
        requested_set = scope_rules.normalise(requested)
        granted_set = scope_rules.normalise(granted) if granted is not None else requested_set
        if not granted_set:
            raise ValueError("no scopes granted")
        if not granted_set <= requested_set:
            extra = sorted(granted_set - requested_set)
            raise ValueError(f"granted scopes were not requested: {extra}")
        missing_sign_in = sorted((requested_set - granted_set) & scope_rules.IDENTITY_SCOPES)
        if missing_sign_in:
            raise ValueError(
                "Sign-In scopes (openid, email, profile) are granted as a whole: the grant must "
                f"include every requested one, and misses {missing_sign_in}"
            )
        if code_challenge_method not in (None, "plain", "S256"):
            raise ValueError("code_challenge_method must be plain or S256")

        code = new_code()
        key = (sub, client.project_id)
        now = self.clock.now()
        with self._lock:
            self._expire_project_locked(key, now)
            grant = self._grants.get(key)
            consent_screen = (
                grant is None
                or grant.reconsent
                or not granted_set <= grant.scopes
                or prompt == "consent"
            )
            if grant is None:
                grant = Grant(self._next_grant_id, set(granted_set), now)
                self._next_grant_id += 1
                self._grants[key] = grant
            else:
                grant.scopes |= granted_set
                if consent_screen:
                    grant.reconsent = False
            if client.client_id not in grant.client_ids:
                grant.client_ids.append(client.client_id)
            if granted_set & scope_rules.RISC_ELIGIBLE_SCOPES:
                clients = self._sign_in_clients.setdefault(key, [])
                if client.client_id not in clients:
                    clients.append(client.client_id)
            code_scopes = frozenset(grant.scopes) if include_granted_scopes else granted_set
            self._codes[code] = Code(
                code=code,
                client_id=client.client_id,
                project_id=client.project_id,
                sub=sub,
                redirect_uri=redirect_uri,
                scopes=code_scopes,
                offline=offline,
                consent_screen=consent_screen,
                consented_at=now,
                expires_at=now + self.code_ttl,
                grant_id=grant.id,
                code_challenge=code_challenge,
                code_challenge_method=code_challenge_method or "plain",
                refresh_token_lifetime=refresh_token_lifetime,
            )
            self._codes_since_sweep += 1
            if self._codes_since_sweep >= 1024:
                self._sweep_codes_locked(now)
        return Consent(code, code_scopes, "consent" if consent_screen else "none")

    # /token grant_type=authorization_code

    def exchange(
        self,
        client: Client,
        code: str,
        redirect_uri: str | None,
        code_verifier: str | None,
    ) -> Issue:
        """Redeems a code (client already authenticated). Raises OAuthError in §8.2's order."""
        if not CODE_PATTERN.match(code):
            raise OAuthError(400, "invalid_grant", "Malformed auth code.")
        access_token, refresh_token = new_access_token(), new_refresh_token()
        now = self.clock.now()
        with self._lock:
            rec = self._codes.get(code)
            if rec is None or rec.client_id != client.client_id:
                raise _bad_request()
            if rec.used:
                self._revoke_code_tokens_locked(rec, now)
                raise _bad_request()
            if now >= rec.expires_at:
                raise _bad_request()
            if not redirect_uri:
                raise OAuthError(400, "invalid_request", "Missing required parameter: redirect_uri")
            # Google's docs disagree on the popup exchange's redirect_uri: a code minted for a
            # page origin is accepted with that origin or with "postmessage".
            accepted = {rec.redirect_uri}
            if rec.redirect_uri != "postmessage":
                accepted.add("postmessage")
            if redirect_uri not in accepted:
                raise OAuthError(400, "redirect_uri_mismatch", "Bad Request")
            if code_verifier and not rec.code_challenge:
                raise OAuthError(400, "invalid_grant", "code_verifier or verifier is not needed.")
            if rec.code_challenge and not code_verifier:
                raise OAuthError(400, "invalid_grant", "Missing code verifier.")
            if rec.code_challenge and not _pkce_matches(
                code_verifier or "", rec.code_challenge, rec.code_challenge_method
            ):
                raise OAuthError(400, "invalid_grant", "Invalid code verifier.")
            grant = self._grants.get((rec.sub, rec.project_id))
            if grant is None or grant.id != rec.grant_id:
                raise _bad_request()
            rec.used = True

            issue = Issue(rec.sub, rec.client_id, access_token, rec.scopes)
            if rec.offline and (client.refresh_token_mode == "always" or rec.consent_screen):
                self._add_refresh_locked(rec, client, refresh_token, now, issue)
            rec.issued_access.append(access_token)
            self._add_access_locked(access_token, rec, rec.scopes, issue.refresh_token, now)
        return issue

    def _add_refresh_locked(
        self, rec: Code, client: Client, token: str, now: float, issue: Issue
    ) -> None:
        expiry: list[tuple[float, str]] = []
        if client.testing_mode and not scope_rules.only_identity(rec.scopes):
            expiry.append((rec.consented_at + TESTING_MODE_LIFETIME, "testing_mode_expiry"))
        if rec.refresh_token_lifetime:
            expiry.append((now + rec.refresh_token_lifetime, "time_based_expiry"))
            issue.refresh_token_expires_in = int(rec.refresh_token_lifetime)
        expires_at, reason = min(expiry) if expiry else (None, None)
        key = (rec.sub, rec.client_id)
        self._refresh[token] = RefreshToken(
            token=token, sub=rec.sub, client_id=rec.client_id, project_id=rec.project_id,
            grant_id=rec.grant_id, scopes=rec.scopes, issued_at=now, last_used_at=now,
            expires_at=expires_at, expiry_reason=reason,
        )
        live = self._live.setdefault(key, deque())
        live.append(token)
        while len(live) > MAX_LIVE_REFRESH_TOKENS:
            self._kill_locked(self._refresh[live[0]], "token_limit_eviction", now)
        rec.issued_refresh = token
        issue.refresh_token = token

    def _add_access_locked(
        self,
        token: str,
        origin: Code | RefreshToken,
        scopes: frozenset[str],
        refresh_token: str | None,
        now: float,
    ) -> None:
        """Records an access token issued from a code or a refresh token (`origin`)."""
        self._access[token] = AccessToken(
            token=token, sub=origin.sub, client_id=origin.client_id, project_id=origin.project_id,
            grant_id=origin.grant_id, scopes=scopes, expires_at=now + ACCESS_TOKEN_LIFETIME,
            refresh_token=refresh_token,
        )
        self._access_since_sweep += 1
        if self._access_since_sweep >= 4096:
            self._access_since_sweep = 0
            for dead in [t for t, a in self._access.items() if a.expires_at <= now]:
                del self._access[dead]

    def _revoke_code_tokens_locked(self, rec: Code, now: float) -> None:
        for token in rec.issued_access:
            self._access.pop(token, None)
        if rec.issued_refresh:
            refresh = self._refresh.get(rec.issued_refresh)
            if refresh is not None and refresh.dead_reason is None:
                self._kill_locked(refresh, "code_reuse", now)

    # /token grant_type=refresh_token

    def refresh(self, client: Client, token: str, scope: str | None) -> Issue:
        """Mints an access token from a refresh token (client already authenticated)."""
        access_token = new_access_token()
        now = self.clock.now()
        with self._lock:
            rec = self._refresh.get(token)
            if rec is None:
                raise _bad_request()
            if rec.client_id != client.client_id:
                raise OAuthError(401, "unauthorized_client", "Unauthorized")
            if not self._alive_locked(rec, now):
                raise self._dead_error(rec, now)
            if rec.sub in self._reauth:
                raise OAuthError(
                    400,
                    "invalid_grant",
                    "reauth related error (invalid_rapt)",
                    error_uri=REAUTH_URI,
                    error_subtype="invalid_rapt",
                )
            granted = rec.scopes
            requested = scope_rules.split(scope)
            if requested:
                wanted = scope_rules.normalise_exact(requested)
                invalid = sorted(wanted - rec.scopes)
                if invalid:
                    raise OAuthError(
                        400,
                        "invalid_scope",
                        f"Some requested scopes were invalid. {{invalid=[{', '.join(invalid)}]}}",
                    )
                granted = wanted
            rec.last_used_at = now
            self._add_access_locked(access_token, rec, granted, rec.token, now)
        return Issue(rec.sub, rec.client_id, access_token, granted)

    @staticmethod
    def _dead_error(rec: RefreshToken, now: float) -> OAuthError:
        if rec.dead_at is not None and now - rec.dead_at > DEAD_DESCRIPTION_SWITCH:
            return _bad_request()
        return OAuthError(400, "invalid_grant", EXPIRED_OR_REVOKED)

    def _alive_locked(self, rec: RefreshToken, now: float) -> bool:
        """Evaluates lazily whether a refresh token died, recording why."""
        if rec.dead_reason is not None:
            return False
        grant = self._grants.get((rec.sub, rec.project_id))
        if grant is None or grant.id != rec.grant_id:
            self._kill_locked(rec, "revoked", now)
            return False
        # An expired token means offline access ended: Google asks for consent again.
        if rec.expires_at is not None and now >= rec.expires_at:
            self._kill_locked(rec, rec.expiry_reason or "expired", now)
            grant.reconsent = True
            return False
        if now - rec.last_used_at >= IDLE_LIFETIME:
            self._kill_locked(rec, "unused_6_months", now)
            grant.reconsent = True
            return False
        return True

    def _project_live_locked(self, key: tuple[str, str]) -> list[RefreshToken]:
        """The live refresh tokens of a user's grant on a project, over all its clients."""
        sub, project_id = key
        return [
            self._refresh[token]
            for (live_sub, _client_id), tokens in self._live.items()
            if live_sub == sub
            for token in tokens
            if self._refresh[token].project_id == project_id
        ]

    def _expire_project_locked(self, key: tuple[str, str], now: float) -> None:
        for rec in self._project_live_locked(key):
            self._alive_locked(rec, now)

    def _kill_locked(self, rec: RefreshToken, reason: str, now: float) -> None:
        rec.dead_reason, rec.dead_at = reason, now
        live = self._live.get((rec.sub, rec.client_id))
        if live is not None:
            try:
                live.remove(rec.token)
            except ValueError:
                pass
            if not live:
                del self._live[(rec.sub, rec.client_id)]

    # Revocation

    def revoke(self, token: str) -> bool:
        """`/revoke`: kills the token's whole grant. False if the token is unknown or dead."""
        now = self.clock.now()
        with self._lock:
            refresh = self._refresh.get(token)
            if refresh is not None:
                if not self._alive_locked(refresh, now):
                    return False
                self._revoke_grant_locked((refresh.sub, refresh.project_id), now)
                return True
            access = self._access_locked(token, now)
            if access is None:
                return False
            self._revoke_grant_locked((access.sub, access.project_id), now)
            return True

    def revoke_grant(self, sub: str, project_id: str) -> bool:
        """The user removes the app (the project) from their Google Account."""
        with self._lock:
            return self._revoke_grant_locked((sub, project_id), self.clock.now())

    def _revoke_grant_locked(self, key: tuple[str, str], now: float) -> bool:
        grant = self._grants.pop(key, None)
        for rec in self._project_live_locked(key):
            self._kill_locked(rec, "revoked", now)
        return grant is not None

    def revoke_refresh_token(self, token: str) -> bool:
        """Kills one refresh token (and its access tokens), leaving the grant and its other
        tokens alive: what Google reports with a RISC `token-revoked` event."""
        now = self.clock.now()
        with self._lock:
            rec = self._refresh.get(token)
            if rec is None or not self._alive_locked(rec, now):
                return False
            self._kill_locked(rec, "revoked", now)
            return True

    # Bearer tokens for the APIs

    def access_token(self, token: str) -> AccessToken | None:
        """The live access token record, or None if unknown, expired or revoked."""
        with self._lock:
            return self._access_locked(token, self.clock.now())

    def _access_locked(self, token: str, now: float) -> AccessToken | None:
        rec = self._access.get(token)
        if rec is None or now >= rec.expires_at:
            return None
        grant = self._grants.get((rec.sub, rec.project_id))
        if grant is None or grant.id != rec.grant_id:
            return None
        if rec.refresh_token is not None:
            refresh = self._refresh.get(rec.refresh_token)
            if refresh is not None and refresh.dead_reason in ("revoked", "code_reuse"):
                return None
        return rec

    # What RISC events need to know

    def sign_in_clients(self, sub: str, project_id: str) -> list[str]:
        """Clients of the project through which the user ever granted email or profile (kept
        after a revocation: Google sends RISC events only about such users)."""
        with self._lock:
            return list(self._sign_in_clients.get((sub, project_id), ()))

    def latest_refresh_token(self, sub: str, client_id: str) -> RefreshToken | None:
        """The user's newest live refresh token for the client, if any."""
        now = self.clock.now()
        with self._lock:
            for token in reversed(self._live.get((sub, client_id), ())):
                rec = self._refresh[token]
                if self._alive_locked(rec, now):
                    return rec
        return None

    def refresh_token_record(self, token: str) -> RefreshToken | None:
        with self._lock:
            return self._refresh.get(token)

    # Session control

    def set_reauth_required(self, sub: str, required: bool) -> None:
        with self._lock:
            if required:
                self._reauth.add(sub)
            else:
                self._reauth.discard(sub)

    # Housekeeping and inspection

    def _sweep_codes_locked(self, now: float) -> None:
        self._codes_since_sweep = 0
        for code in [c for c, rec in self._codes.items() if rec.expires_at <= now]:
            del self._codes[code]

    def snapshot(self) -> dict:
        """Grants and refresh tokens for assertions in tests (`GET /_control/state`)."""
        now = self.clock.now()
        with self._lock:
            for key in list(self._live):
                for token in list(self._live.get(key, ())):
                    self._alive_locked(self._refresh[token], now)
            grants = [
                {
                    "sub": sub,
                    "project_id": project_id,
                    "client_id": grant.client_ids[0] if grant.client_ids else None,
                    "client_ids": list(grant.client_ids),
                    "scopes": sorted(grant.scopes),
                    "created_at": grant.created_at,
                    "live_refresh_tokens": [r.token for r in self._project_live_locked((sub, project_id))],
                }
                for (sub, project_id), grant in self._grants.items()
            ]
            refresh_tokens = [
                {
                    "token": rec.token,
                    "sub": rec.sub,
                    "client_id": rec.client_id,
                    "project_id": rec.project_id,
                    "scope": scope_rules.join(rec.scopes),
                    "issued_at": rec.issued_at,
                    "last_used_at": rec.last_used_at,
                    "expires_at": rec.expires_at,
                    "live": rec.dead_reason is None,
                    "dead_reason": rec.dead_reason,
                }
                for rec in self._refresh.values()
            ]
            return {
                "now": now,
                "grants": grants,
                "refresh_tokens": refresh_tokens,
                "live_access_tokens": sum(1 for a in self._access.values() if a.expires_at > now),
                "codes_outstanding": sum(
                    1 for c in self._codes.values() if not c.used and c.expires_at > now
                ),
                "reauth_required": sorted(self._reauth),
            }
