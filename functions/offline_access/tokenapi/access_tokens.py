"""A valid access token for one user, now: the cached one, or one refresh across all instances.

For `POST /token {sub, scopes?}`:

1. Read the user. No document, or `disconnecting`: `UserNotFound` (404). `needs_reauth` (or
   no lasting grant, `no_offline_access`): `UserNeedsReauth` with the reason (409). A scope
   asked for that the user did not grant: `ScopeNotGranted` naming it (403).
2. The sealed access token the exchange, the job or an earlier call stored, while it has more
   than 5 minutes left (`offline.tokens.ACCESS_TOKEN_MARGIN`): answered at once, no call to
   Google.
3. Otherwise a refresh, at most one per user at a time:
   - within an instance, concurrent requests for the same user share one refresh
     (`SingleFlight`);
   - across instances, the refresh lease in the user document (`store.token_refresh`): the
     instance that takes it refreshes; the others poll the document (25 ms, growing to 250 ms)
     until the holder has stored the new token, which they answer, for at most
     `WAIT_SECONDS` (then 503 with `Retry-After`). A lease whose holder vanished lapses after
     `LEASE_SECONDS` and the next caller takes it over: a slow holder is never taken for a
     dead grant.
   The refresh is the job's (`offline.tokens.UserTokens`): the granted scopes, retries with
   backoff within `REFRESH_BUDGET_SECONDS`, a refresh token Google rotates sealed and saved
   before the new access token is used, and `invalid_grant` classified as the job does it; a
   dead grant is recorded `needs_reauth` (and `user.needs_reauth` published) and answered 409.

The answer's token carries every scope the user granted (`scopes` lists them): one cached token
serves every caller, whatever subset it asked for. Google down: `Unavailable` (503,
`Retry-After`).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..dependencies import SharedDependencies
from ..errors import (
    DeadlineReached,
    GrantError,
    GrantRevoked,
    OfflineAccessError,
    RefreshContended,
    ScopeNotGranted,
    Unavailable,
    UnreadableToken,
    UserNeedsReauth,
    UserNotFound,
)
from ..googleapis.token_endpoint import TokenResponse, refresh_access_token
from ..offline import reauth_reasons
from ..offline.backoff import CALL_RETRIES, Backoff, Retrier
from ..offline.tokens import ACCESS_TOKEN_MARGIN, UserTokens
from ..scopes import missing_scopes
from ..store.job_claims import DueUser, JobStore
from ..store.token_refresh import TokenRefreshStore, lease_of
from ..store.users import (
    STATUS_ACTIVE,
    STATUS_DISCONNECTING,
    STATUS_NEEDS_REAUTH,
    STATUS_NO_OFFLINE_ACCESS,
    stored_time,
)

T = TypeVar("T")

LEASE_SECONDS = 30
REFRESH_BUDGET_SECONDS = 20
WAIT_SECONDS = 15
FIRST_POLL_SECONDS = 0.025
MAX_POLL_SECONDS = 0.25
NO_OFFLINE_ACCESS = "no_offline_access"


@dataclass(frozen=True)
class AccessToken:
    """What `POST /token` answers. `repr` shows no token."""

    token: str = field(repr=False)
    expires_at: dt.datetime
    scopes: tuple[str, ...]
    # How it was obtained, for the log line: `cache`, `refreshed`, `waited` (another holder's).
    source: str = "cache"

    def body(self, now: dt.datetime) -> dict[str, Any]:
        return {
            "access_token": self.token,
            "expires_at": self.expires_at.astimezone(dt.timezone.utc).isoformat().replace(
                "+00:00", "Z"),
            "expires_in": max(int((self.expires_at - now).total_seconds()), 0),
            "scopes": list(self.scopes),
            "token_type": "Bearer",
        }


class SingleFlight:
    """Concurrent calls for one key share the first caller's result (or its exception)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, Future[Any]] = {}

    def do(self, key: str, fn: Callable[[], T]) -> tuple[T, bool]:
        """`fn()`'s result, and whether this caller ran it (False: it shared another's)."""
        with self._lock:
            future = self._calls.get(key)
            leader = future is None
            if future is None:
                future = self._calls[key] = Future()
        if not leader:
            return future.result(), False
        try:
            result = fn()
            future.set_result(result)
            return result, True
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._lock:
                del self._calls[key]


@dataclass
class RefreshStats:
    """What one request's refresh path did, for its log line."""

    lease_waits: int = 0
    took_over_expired_lease: bool = False
    shared: bool = False
    refresh_token_rotated: bool = False


class AccessTokens:
    """Gives out users' access tokens (see the module's steps)."""

    def __init__(self, deps: SharedDependencies, *, call_retries: Backoff = CALL_RETRIES,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._deps = deps
        self._store = TokenRefreshStore(deps.store)
        self._jobs = JobStore(deps.store)
        self._retries = call_retries
        self._clock = clock
        self._sleep = sleep
        self._flights = SingleFlight()
        self._instance = uuid.uuid4().hex[:12]

    def get(self, sub: str, scopes: tuple[str, ...] = ()) -> tuple[AccessToken, RefreshStats]:
        """A token valid for more than 5 minutes, for a user who granted `scopes`.

        Raises:
            UserNotFound, UserNeedsReauth, ScopeNotGranted: see the module's steps.
            Unavailable: Firestore, Secret Manager or Google is unavailable, or another
                instance's refresh did not finish in time (`RefreshContended`).
            Misconfigured, UpstreamInvalid: the deployment's or Google's fault.
        """
        user = self._usable(self._store.read(sub), scopes)
        cached = self._cached(user)
        if cached is not None:
            return cached, RefreshStats()
        stats = RefreshStats()
        token, leader = self._flights.do(sub, lambda: self._refresh(sub, stats))
        stats.shared = not leader
        return token, stats

    def _usable(self, user: DueUser | None, scopes: tuple[str, ...]) -> DueUser:
        if user is None or user.data.get("status") == STATUS_DISCONNECTING:
            raise UserNotFound()
        status = user.data.get("status")
        if status == STATUS_NEEDS_REAUTH:
            reason = user.data.get("reauth_reason")
            raise UserNeedsReauth(reason if isinstance(reason, str) else None)
        if status == STATUS_NO_OFFLINE_ACCESS or status != STATUS_ACTIVE \
                or not user.data.get("refresh_token"):
            raise UserNeedsReauth(NO_OFFLINE_ACCESS)
        missing = missing_scopes(scopes, user.granted_scopes)
        if missing:
            raise ScopeNotGranted(missing)
        return user

    def _cached(self, user: DueUser) -> AccessToken | None:
        expires_at = stored_time(user.data.get("access_token_expires_at"))
        if expires_at is None or expires_at - self._deps.now() <= ACCESS_TOKEN_MARGIN:
            return None
        try:
            token = self._deps.sealer.open(user.data.get("access_token"), sub=user.sub,
                                           field="access_token")
        except UnreadableToken:
            return None  # only a cache: a refresh makes up for it
        return AccessToken(token, expires_at, user.granted_scopes)

    def _refresh(self, sub: str, stats: RefreshStats) -> AccessToken:
        """Take the lease and refresh, or wait for the holder's token (module step 3)."""
        holder = f"{self._instance}-{uuid.uuid4().hex[:8]}"
        give_up_at = self._clock() + WAIT_SECONDS
        poll = FIRST_POLL_SECONDS
        while True:
            user = self._usable(self._store.read(sub), ())
            cached = self._cached(user)
            if cached is not None:
                return AccessToken(cached.token, cached.expires_at, cached.scopes, "waited")
            held_by, held_until = lease_of(user)
            now = self._deps.now()
            if held_by is not None and held_until is not None and held_until > now:
                if self._clock() + poll > give_up_at:
                    raise RefreshContended(retry_after=max(1.0, (held_until - now).total_seconds()))
                stats.lease_waits += 1
                self._sleep(poll)
                poll = min(poll * 1.6, MAX_POLL_SECONDS)
                continue
            leased = self._store.take_lease(user, holder, now, dt.timedelta(seconds=LEASE_SECONDS))
            if leased is None:
                continue  # someone wrote first (perhaps the lease): read again
            stats.took_over_expired_lease = held_by is not None
            return self._refresh_holding(leased, holder, stats)

    def _refresh_holding(self, user: DueUser, holder: str, stats: RefreshStats) -> AccessToken:
        deps = self._deps
        config = deps.config
        now = deps.now()
        retrier = Retrier(self._retries, self._clock() + REFRESH_BUDGET_SECONDS, self._clock,
                          self._sleep)
        try:
            client_secret = deps.secrets.get(config.client_secret_version).data.decode()

            def refresh(refresh_token: str, scopes: tuple[str, ...] | None) -> TokenResponse:
                return refresh_access_token(
                    deps.http, deps.endpoints.token, client_id=config.client_id,
                    client_secret=client_secret, refresh_token=refresh_token, scopes=scopes,
                    timeout=retrier.timeout(config.http_timeout_seconds))

            tokens = UserTokens(
                user, sealer=deps.sealer, refresh=refresh, retrier=retrier, now=deps.now,
                save_refresh_token=lambda sealed, expires_in, ids: self._jobs.save_refresh_token(
                    user, sealed, deps.now(), expires_in, ids=ids),
                # A rotated token keeps its identifiers, for Cross-Account Protection's matching.
                identify=deps.token_ids.of_token_if_available if deps.token_ids is not None else None)
            token = tokens.refresh()
        except GrantError as exc:
            reason = (reauth_reasons.classify(user.data, error_subtype=exc.subtype, now=now,
                                              testing_mode=config.oauth_app_testing_mode)
                      if isinstance(exc, GrantRevoked) else reauth_reasons.UNREADABLE_TOKEN)
            self._store.mark_needs_reauth(user, reason, holder, deps.now())
            raise UserNeedsReauth(reason) from None
        except DeadlineReached:
            self._release(user, holder)
            raise Unavailable("Google's token endpoint did not answer in time. Try again shortly.",
                              dependency="google", retry_after=5) from None
        except OfflineAccessError:
            self._release(user, holder)
            raise
        stats.refresh_token_rotated = tokens.rotated
        refreshed = tokens.refreshed
        assert refreshed is not None  # refresh() sets it
        try:
            # `user.update_time` moved with a saved rotation: the write is guarded by it.
            self._store.store_refreshed(user, refreshed, holder, deps.now())
        except Unavailable:
            pass  # the token is good: answer it; the lease lapses by itself
        return AccessToken(token, refreshed.expires_at, refreshed.scopes, "refreshed")

    def _release(self, user: DueUser, holder: str) -> None:
        try:
            self._store.release(user, holder)
        except Unavailable:
            pass  # the lease lapses by itself
