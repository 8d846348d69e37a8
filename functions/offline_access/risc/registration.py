"""Google's RISC stream management API: register the receiver, read the stream, verify it.

The calls (google-oauth.md §5), under `https://risc.googleapis.com/v1beta` (with
`GOOGLE_EMULATOR_HOST`, the local Google's `/v1beta`):

- `POST stream:update` `{"delivery": {"delivery_method": PUSH, "url"}, "events_requested"}`;
- `GET stream` (404: nothing registered) and `GET stream/status`;
- `POST stream:verify` `{"state"}`: Google sends a `verification` event with that state.

Only a service account may call them, one with RISC Configuration Admin
(`roles/riscconfigs.admin`) in the project of the OAuth client. Its credential, from google-auth:

- a key file: a self-signed JWT (`google.auth.jwt.Credentials`: `iss` = `sub` = the account,
  `aud` = `RISC_AUDIENCE`, `kid` = the key's id, one hour), Google's documented way;
- `impersonate`: an access token for that account, minted from the caller's Application
  Default Credentials (the caller needs Service Account Token Creator on it), with the scopes
  the call needs: no key file ever leaves Google;
- otherwise Application Default Credentials themselves, when they are that service account.

Google's errors come back as `ApiRefused` (its HTTP status and message), an outage as
`GoogleUnavailable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import google.auth
import google.auth.credentials
import google.auth.exceptions
import requests
from google.auth import impersonated_credentials, jwt
from google.auth.transport.requests import AuthorizedSession

from ..errors import ApiRefused, GoogleUnavailable
from . import events as ev

RISC_AUDIENCE = "https://risc.googleapis.com/google.identity.risc.v1beta.RiscManagementService"
PUSH_DELIVERY = "https://schemas.openid.net/secevent/risc/delivery-method/push"
_AUTH = "https://www.googleapis.com/auth/"
# What each operation needs of an access token (Google's table of scopes per endpoint).
CONFIGURE_SCOPES = (_AUTH + "risc.configuration.readwrite",)
READ_SCOPES = (_AUTH + "risc.configuration.readonly", _AUTH + "risc.status.readonly")
VERIFY_SCOPES = (_AUTH + "risc.verify",)
STATUS_SCOPES = (_AUTH + "risc.status.readwrite",)
ALL_EVENT_TYPES = tuple(ev.EVENT_TYPES.values())


def management_credentials(*, key_file: str | None = None, impersonate: str | None = None,
                           scopes: Sequence[str] = ()) -> google.auth.credentials.Credentials:
    """The credential the management API is called with (see the module's three ways)."""
    if key_file:
        credentials: google.auth.credentials.Credentials = jwt.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
            key_file, audience=RISC_AUDIENCE)
        return credentials
    if impersonate:
        source, _ = google.auth.default()
        return impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
            source_credentials=source, target_principal=impersonate, target_scopes=list(scopes),
            lifetime=600)
    credentials, _ = google.auth.default(scopes=list(scopes))
    return credentials


class StreamManagement:
    """The project's RISC stream, through the management API at `base_url` (`…/v1beta`)."""

    def __init__(self, base_url: str, credentials: google.auth.credentials.Credentials, *,
                 timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        self._timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              *, missing_ok: bool = False) -> dict[str, Any] | None:
        try:
            response = self._session.request(  # type: ignore[no-untyped-call]
                method, f"{self.base_url}/{path}", json=body, timeout=self._timeout)
        except (requests.RequestException, google.auth.exceptions.TransportError):
            raise GoogleUnavailable("Google's RISC API could not be reached.") from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code == 429 or response.status_code >= 500:
            raise GoogleUnavailable(f"Google's RISC API answered HTTP {response.status_code}.")
        try:
            answer = response.json() if response.content else {}
        except ValueError:
            answer = {}
        if response.status_code >= 400:
            error = answer.get("error") if isinstance(answer, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            raise ApiRefused(response.status_code, str(message or ""))
        return answer if isinstance(answer, dict) else {}

    def register(self, url: str, events: Sequence[str] = ALL_EVENT_TYPES) -> dict[str, Any]:
        """Point the stream at `url` for `events` (`stream:update`); the configuration."""
        body = {"delivery": {"delivery_method": PUSH_DELIVERY, "url": url},
                "events_requested": list(events)}
        return self._call("POST", "stream:update", body) or {}

    def configuration(self) -> dict[str, Any] | None:
        """The stream's configuration, or None when nothing is registered."""
        return self._call("GET", "stream", missing_ok=True)

    def status(self) -> str | None:
        """`enabled` or `disabled`, or None when nothing is registered."""
        answer = self._call("GET", "stream/status", missing_ok=True)
        return None if answer is None else str(answer.get("status"))

    def set_status(self, status: str) -> str:
        """Turn delivery on or off (`stream/status:update`)."""
        answer = self._call("POST", "stream/status:update", {"status": status}) or {}
        return str(answer.get("status"))

    def verify(self, state: str) -> None:
        """Ask Google to send a `verification` event carrying `state` (`stream:verify`)."""
        self._call("POST", "stream:verify", {"state": state})
