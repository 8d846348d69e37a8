"""A user's access token during a run: the cached one, a refreshed one, and a saved rotation.

For each user the job opens the sealed refresh token, then:

- reuses the cached access token (sealed in the document by the exchange or an earlier run)
  while it stays valid for more than 5 minutes, else refreshes it, asking for the scopes the
  user granted (with granular consent, asking for the configured ones can fail);
- retries 429, 5xx and timeouts with jittered exponential backoff that honours `Retry-After`,
  but never waits past the run's deadline; after that the caller defers the user;
- if Google ever returns a new refresh token, seals and saves it before the new access token
  is used; a response without one never touches the stored token;
- answers `invalid_scope` (the stored scopes name one the grant no longer holds) with one more
  refresh without `scope`, and keeps the scopes Google then reports as the granted ones;
- says which sealed values are under an older key, re-sealed under the primary (`resealed`),
  so that the job store rewrites them and retired keys fall out of use;

`offline.api_session.ApiSession` asks it for a token before each call, and for a forced refresh
after a 401.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from ..errors import InvalidScope, SealError, UnreadableToken
from ..googleapis.token_endpoint import TokenResponse
from ..store.job_claims import DueUser
from ..store.job_results import RefreshedToken
from ..store.sealing import TokenSealer
from ..store.users import stored_time
from .backoff import Retrier

ACCESS_TOKEN_MARGIN = dt.timedelta(minutes=5)


class UserTokens:
    """One user's tokens for one run: the cache, refreshes, and a saved rotation."""

    def __init__(
        self,
        user: DueUser,
        *,
        sealer: TokenSealer,
        refresh: Callable[[str, tuple[str, ...] | None], TokenResponse],
        save_refresh_token: Callable[[dict[str, Any], int | None, dict[str, str] | None], None],
        retrier: Retrier,
        now: Callable[[], dt.datetime],
        identify: Callable[[str], dict[str, str] | None] | None = None,
    ) -> None:
        """Open the user's sealed refresh token and cached access token.

        Args:
            user: the claimed user document.
            sealer: opens and seals tokens bound to the user.
            refresh: calls the token endpoint: (refresh token, scopes or None) -> response.
            save_refresh_token: stores a new sealed refresh token, its `refresh_token_expires_in`
                and its keyed identifiers (raises if it cannot).
            retrier: retries transient failures of the refresh.
            now: the current time.
            identify: a new refresh token's keyed identifiers (`store.refresh_token_ids`), or
                None when there are none to store.

        Raises:
            UnreadableToken: the refresh token is missing or does not open for this user
                (`SealingKeyGone`: the key that sealed it is gone).
            Misconfigured, Unavailable: a key this function needs cannot be read.
        """
        self._sub = user.sub
        self._sealer = sealer
        self._refresh_call = refresh
        self._save_refresh_token = save_refresh_token
        self._identify = identify
        self._retrier = retrier
        self._now = now
        self.granted_scopes = user.granted_scopes
        self.refreshed: RefreshedToken | None = None
        self.refresh_calls = 0
        self.rotated = False
        self.scope_fallback = False
        sealed_refresh = user.data.get("refresh_token")
        try:
            self._refresh_token = sealer.open(sealed_refresh, sub=user.sub, field="refresh_token")
        except SealError:
            raise UnreadableToken() from None
        self._refresh_is_current = sealer.is_current(sealed_refresh)
        self._access: str | None = None
        self._access_is_current = True
        self._expires_at: dt.datetime | None = None
        expires_at = stored_time(user.data.get("access_token_expires_at"))
        if expires_at is not None and expires_at - now() > ACCESS_TOKEN_MARGIN:
            sealed_access = user.data.get("access_token")
            try:
                self._access = sealer.open(sealed_access, sub=user.sub, field="access_token")
                self._expires_at = expires_at
                self._access_is_current = sealer.is_current(sealed_access)
            except UnreadableToken:
                # Only a cache: a fresh token makes up for it, and the refresh token opened.
                self._access = None

    @property
    def used_cache(self) -> bool:
        return self.refresh_calls == 0 and self._access is not None

    def access_token(self) -> str:
        """A token valid for more than the margin: the cached one, or a refreshed one.

        Raises:
            GrantRevoked: the refresh token is dead.
            GoogleUnavailable: the token endpoint kept failing within the deadline.
            Misconfigured, RefreshRefused, UpstreamInvalid: see `refresh_access_token`.
            DeadlineReached: the run's deadline came first.
            Unavailable: a new refresh token could not be saved (the user must be deferred).
        """
        if (
            self._access is not None
            and self._expires_at is not None
            and self._expires_at - self._now() > ACCESS_TOKEN_MARGIN
        ):
            return self._access
        return self.refresh()

    def resealed(self) -> dict[str, dict[str, Any]]:
        """The stored values sealed under an older key, sealed again under the primary, by field.

        A refresh already stores a new access token (and a rotated refresh token) under the
        primary; only what is left under an older key is returned.
        """
        fields: dict[str, dict[str, Any]] = {}
        if not self._refresh_is_current and not self.rotated:
            fields["refresh_token"] = self._sealer.seal(
                self._refresh_token, sub=self._sub, field="refresh_token")
        if (not self._access_is_current and self.refreshed is None
                and self._access is not None):
            fields["access_token"] = self._sealer.seal(self._access, sub=self._sub, field="access_token")
        return fields

    def refresh(self) -> str:
        """Refresh now, even if the current token looks valid (after a 401). See `access_token`.

        Raises: as `access_token`; `RefreshRefused` for a refusal of this user's refresh, and
        `InvalidScope` only if the refresh without `scope` is refused that way too.
        """
        scopes = self.granted_scopes or None
        self.refresh_calls += 1
        try:
            response = self._retrier.call(lambda: self._refresh_call(self._refresh_token, scopes))
        except InvalidScope:
            if scopes is None:
                raise
            # The stored scopes name one the grant no longer holds: ask for the whole grant,
            # whose scopes Google's answer lists.
            self.refresh_calls += 1
            self.scope_fallback = True
            response = self._retrier.call(lambda: self._refresh_call(self._refresh_token, None))
        if response.refresh_token and response.refresh_token != self._refresh_token:
            # Saved first: if the save fails, nothing below runs and the old token stays stored.
            sealed = self._sealer.seal(response.refresh_token, sub=self._sub, field="refresh_token")
            ids = self._identify(response.refresh_token) if self._identify else None
            self._save_refresh_token(sealed, response.refresh_token_expires_in, ids)
            self._refresh_token = response.refresh_token
            self.rotated = True
        expires_at = self._now() + dt.timedelta(seconds=max(response.expires_in, 0))
        if response.scopes:
            self.granted_scopes = response.scopes
        self.refreshed = RefreshedToken(
            sealed_access_token=self._sealer.seal(
                response.access_token, sub=self._sub, field="access_token"
            ),
            expires_at=expires_at,
            scopes=self.granted_scopes,
        )
        self._access, self._expires_at = response.access_token, expires_at
        return response.access_token
