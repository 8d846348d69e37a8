"""How a public function asks the internal `disconnect_user` function to finish a disconnect.

The call is an HTTPS POST with an ID token for the callee's URL, which Cloud Run checks
(`run.invoker` is granted to the service accounts of the account API and the RISC receiver
only, the two public functions that end accounts). The token comes from
google-auth's `id_token.fetch_id_token_credentials`: on Cloud Run from the metadata server;
with `GOOGLE_APPLICATION_CREDENTIALS` naming a service-account key file (as `make dev` and the
tests do, with a key the local Google issued), through the JWT-bearer grant at the key file's
`token_uri`. One code path: only the environment differs. The credentials are kept and
refreshed before they expire, so a warm instance asks for a token about once an hour.

A failed call is not an error for the caller: the user is already `disconnecting`, and the next
job run finishes the disconnect. `request` then answers None.
"""

from __future__ import annotations

import threading
from typing import Any

import google.auth.exceptions
from google.oauth2 import id_token

from ..googleapis.http_session import AuthRequest, HttpClient, TransportError
from ..structured_log import emit
from .lifecycle import DisconnectResult


class DisconnectCaller:
    """Calls `disconnect_user` at `url` as this function's service account."""

    def __init__(self, url: str, http: HttpClient, timeout: float) -> None:
        self.url = url
        self._http = http
        self._timeout = timeout
        self._credentials: Any = None
        self._lock = threading.Lock()

    def _token(self) -> str:
        with self._lock:
            request = AuthRequest(self._http)
            if self._credentials is None:
                self._credentials = id_token.fetch_id_token_credentials(  # type: ignore[no-untyped-call]
                    self.url, request=request)
            if not self._credentials.valid:
                self._credentials.refresh(request)
            return str(self._credentials.token)

    def request(self, sub: str, requested_by: str) -> DisconnectResult | None:
        """Ask for the disconnect to be finished now; its result, or None if the call failed."""
        try:
            response = self._http.post(
                self.url, json={"sub": sub, "requested_by": requested_by},
                headers={"Authorization": f"Bearer {self._token()}"}, timeout=self._timeout)
            body = response.json()
        except (TransportError, ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            emit("WARNING", "disconnect_user could not be called; the next job run finishes it",
                 event="disconnect_call_failed", exception_type=type(exc).__name__)
            return None
        if response.status_code not in (200, 202) or not isinstance(body, dict):
            emit("WARNING", "disconnect_user refused the call; the next job run finishes it",
                 event="disconnect_call_failed", status=response.status_code)
            return None
        return DisconnectResult(
            outcome=str(body.get("outcome")),
            revoked=body.get("revoked") if isinstance(body.get("revoked"), str) else None,
            records_deleted=int(body.get("records_deleted") or 0),
            error=body.get("error") if isinstance(body.get("error"), str) else None,
        )
