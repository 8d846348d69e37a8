"""Google's Cross-Account Protection (RISC) transmitter endpoints, on Google's paths.

- `GET /.well-known/risc-configuration` (accounts.google.com): issuer, `jwks_uri` (the ID-token
  JWKS: SETs are signed with the same keys), delivery method, management endpoints.
- The management API (risc.googleapis.com): `GET /v1beta/stream`, `POST /v1beta/stream:update`,
  `GET /v1beta/stream/status`, `POST /v1beta/stream/status:update`, `POST /v1beta/stream:verify`.

A management call authenticates as a service account of the project, with a self-signed JWT
(`aud` = `RISC_AUDIENCE`) or an access token carrying the endpoint's scope (Google's table, in
`ENDPOINT_SCOPES`). Checks run in this order: no or bad credential (401), a user's token (403),
missing scope (403), missing role (403), a project without OAuth clients (403); then the
endpoint's own (400/403/404). Answers use Google's API error shape.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from . import risc_events
from .answers import api_error, base_url, bearer_token, json_response
from .backend import Backend
from .risc_stream import PUSH_DELIVERY, RiscApiError, Stream, check_update
from .service_accounts import RISC_ADMIN_ROLE, ServiceAccount, ServiceAccountAuthError

RISC_AUDIENCE = "https://risc.googleapis.com/google.identity.risc.v1beta.RiscManagementService"
_AUTH = "https://www.googleapis.com/auth/"
# Google's "Access token scopes" table: any one of the scopes admits the call.
ENDPOINT_SCOPES = {
    "stream": (_AUTH + "risc.configuration.readonly", _AUTH + "risc.configuration.readwrite"),
    "stream:update": (_AUTH + "risc.configuration.readwrite",),
    "stream/status": (_AUTH + "risc.status.readonly", _AUTH + "risc.status.readwrite"),
    "stream/status:update": (_AUTH + "risc.status.readwrite",),
    "stream:verify": (_AUTH + "risc.verify",),
}
NO_CONFIGURATION = "Project has no RISC configuration."


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def risc_blueprint(backend: Backend) -> Blueprint:
    bp = Blueprint("risc", __name__)

    @bp.errorhandler(_Refused)
    @bp.errorhandler(RiscApiError)
    def refused(exc: _Refused | RiscApiError) -> Response:
        headers = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'} if exc.status == 401 else None
        return api_error(exc.status, exc.message, headers=headers)

    @bp.get("/.well-known/risc-configuration")
    def configuration() -> Response:
        base = base_url()
        return json_response(
            {
                "issuer": risc_events.RISC_ISSUER,
                "jwks_uri": f"{base}/oauth2/v3/certs",
                "delivery_methods_supported": [PUSH_DELIVERY],
                "get_configuration_endpoint": f"{base}/v1beta/stream",
                "update_configuration_endpoint": f"{base}/v1beta/stream:update",
                "get_status_endpoint": f"{base}/v1beta/stream/status",
                "verification_endpoint": f"{base}/v1beta/stream:verify",
            },
            200,
            {"Cache-Control": "public, max-age=3600"},
        )

    def _caller(endpoint: str) -> ServiceAccount:
        """The service account the request authenticates as, with the endpoint's rights."""
        token = bearer_token()
        if not token:
            raise _Refused(401, "Unauthorized.")
        scopes = None
        record = backend.service_accounts.access_token(token)
        if record is not None:
            account = backend.service_accounts.get(record.email)
            scopes = record.scopes
        elif backend.oauth.access_token(token) is not None:
            raise _Refused(403, "Stream management APIs should only be called by a service account.")
        else:
            try:
                account = backend.service_accounts.verify_self_signed_jwt(token, RISC_AUDIENCE)
            except ServiceAccountAuthError as exc:
                raise _Refused(401, "Unauthorized.") from exc
        if account is None:
            raise _Refused(401, "Unauthorized.")
        if scopes is not None and not scopes & set(ENDPOINT_SCOPES[endpoint]):
            raise _Refused(403, "Request had insufficient authentication scopes.")
        if RISC_ADMIN_ROLE not in account.roles:
            raise _Refused(403, "Service account needs permission to access your RISC configuration")
        if not backend.directory.project_clients(account.project_id):
            raise _Refused(403, "To use this API your project must have at least one OAuth client configured.")
        return account

    def _stream(account: ServiceAccount) -> Stream:
        stream = backend.risc_streams.get(account.project_id)
        if stream is None:
            raise RiscApiError(404, NO_CONFIGURATION)
        return stream

    @bp.get("/v1beta/stream")
    def get_stream() -> Response:
        return json_response(_stream(_caller("stream")).config())

    @bp.post("/v1beta/stream:update")
    def update_stream() -> Response:
        account = _caller("stream:update")
        method, url, events = check_update(request.get_json(silent=True), backend.risc_settings)
        stream = backend.risc_streams.update(account.project_id, method, url, events)
        return json_response(stream.config())

    @bp.get("/v1beta/stream/status")
    def get_status() -> Response:
        return json_response({"status": _stream(_caller("stream/status")).status})

    @bp.post("/v1beta/stream/status:update")
    def update_status() -> Response:
        account = _caller("stream/status:update")
        body = request.get_json(silent=True)
        status = body.get("status") if isinstance(body, dict) else None
        if not isinstance(status, str):
            raise RiscApiError(400, "Stream status must contain status field.")
        stream = backend.risc_streams.set_status(account.project_id, status)
        return json_response({"status": stream.status})

    @bp.post("/v1beta/stream:verify")
    def verify() -> Response:
        account = _caller("stream:verify")
        _stream(account)
        body = request.get_json(silent=True)
        state = body.get("state") if isinstance(body, dict) else None
        event: dict = {} if state is None else {"state": str(state)}
        audience = backend.directory.project_clients(account.project_id)[0].client_id
        claims = risc_events.set_claims(risc_events.VERIFICATION, event, audience)
        token = risc_events.sign_set(backend.keys, claims)
        backend.transmitter.submit(account.project_id, token, claims["jti"], risc_events.VERIFICATION)
        return json_response({})

    return bp
