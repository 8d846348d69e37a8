"""`UserCredentials`: a user's Google access token from the token API, as google-auth credentials."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from google.auth import credentials

if TYPE_CHECKING:
    from .client import TokenApiClient


class UserCredentials(credentials.Credentials):
    """Credentials of one user of the deployment; `refresh` asks the token API for a token.

    The token API answers a token valid for more than five minutes; google-auth refreshes a
    few minutes before `expiry`, so a long-lived client library object keeps working.
    """

    def __init__(self, client: TokenApiClient, sub: str,
                 scopes: Sequence[str] | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._client = client
        self._sub = sub
        self._scopes = tuple(scopes or ())
        self.granted_scopes: tuple[str, ...] = ()

    @property
    def sub(self) -> str:
        """The user's Google `sub`."""
        return self._sub

    @property
    def requested_scopes(self) -> tuple[str, ...]:
        return self._scopes

    def refresh(self, request: Any) -> None:
        """Get a fresh access token for the user through `request` (a google-auth transport).

        Raises:
            offline_access_client.TokenApiError: a `RefreshError` subclass for each error answer.
        """
        answer = self._client.access_token(self._sub, self._scopes, request=request)
        self.token = answer.token
        # google-auth compares `expiry` with naive UTC times.
        self.expiry = answer.expires_at.astimezone(dt.timezone.utc).replace(tzinfo=None)
        self.granted_scopes = answer.scopes

    def __repr__(self) -> str:  # never the token
        return f"UserCredentials(sub={self._sub!r}, valid={self.valid})"
