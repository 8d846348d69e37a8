"""The Flask app: Google's OAuth, OpenID and Drive endpoints on Google's own paths.

Routes (see google-oauth.md §8 and docs/design.md "Google endpoints"):

- `POST /token`, `POST /revoke`: the authorization server (oauth2.googleapis.com), including
  the JWT-bearer grant that gives service accounts ID tokens (`service_accounts.py`).
- `GET /oauth2/v1/certs`, `GET /oauth2/v3/certs`, `GET /.well-known/openid-configuration`.
- `GET /oauth2/v3/userinfo` (and the discovery's `/v1/userinfo`), `GET /drive/v3/files[/<id>]`.
- `GET /gsi/client` (the GIS script) and `GET|POST /o/oauth2/v2/auth` (the consent popup).
- `/_control/...` is registered from `control_api.py`.

Before any non-control route runs, the request is counted, its body drained (so HTTP/1.1
keep-alive stays in sync), the fixed latency applied and a matching fault served.
"""

from __future__ import annotations

import hmac
import json
import re
import socket
import time
from importlib import resources
from urllib.parse import unquote_plus

from flask import Flask, Response, render_template, request
from werkzeug.http import http_date

from . import scopes as scope_rules
from .backend import Backend
from .control_api import control_blueprint
from .directory import Client
from .drive import (
    DriveError,
    parse_page_size,
    parse_spaces,
    select_file_fields,
    select_list_fields,
)
from .oauth_state import ACCESS_TOKEN_EXPIRES_IN, AccessToken, Issue, OAuthError
from .service_accounts import JWT_BEARER
from .signing import ISSUER, mint_id_token

JSON_UTF8 = "application/json; charset=utf-8"
# Google's token endpoint answers every response with these.
TOKEN_HEADERS = {
    "Cache-Control": "no-cache, no-store, max-age=0, must-revalidate",
    "Pragma": "no-cache",
    "Expires": "Mon, 01 Jan 1990 00:00:00 GMT",
}
REALM = 'Bearer realm="https://accounts.google.com/"'
MESSAGE_TYPE = "local-google/code-response"
ORIGIN_PATTERN = re.compile(r"^https?://[^/?#@\s]+$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PACKAGE = resources.files(__package__)


class AuthPageError(Exception):
    """An authorization request Google would answer with its "Error 400: ..." page."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.status = status
        self.error = error
        self.message = message


def create_app(backend: Backend) -> Flask:
    """Builds the WSGI app serving `backend`."""
    app = Flask(__name__, template_folder=str(_PACKAGE), static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    gsi_script = (_PACKAGE / "gsi_client.js").read_text(encoding="utf-8")

    @app.before_request
    def intercept() -> Response | None:
        # Drained for every request: an unread body would corrupt the next keep-alive request.
        request.get_data(cache=True)
        if request.path.startswith("/_control/"):
            return None
        backend.counters.request(request.method, request.path)
        if request.path == "/token" and request.method == "POST":
            backend.counters.grant(_params().get("grant_type") or "(missing)")
        fault = None
        if backend.faults.has_any():
            fault = backend.faults.take(request.method, request.path, _params())
        delay_ms = backend.faults.latency_ms + (fault.latency_ms if fault else 0)
        if delay_ms:
            time.sleep(delay_ms / 1000)
        if fault is None:
            return None
        backend.counters.fault_served()
        if fault.timeout:
            backend.stopping.wait(fault.hang_seconds)
            _drop_connection()
            return Response(status=504)
        if fault.status is None:
            return None
        body, content_type = fault.response_body()
        response = Response(body, fault.status, content_type=content_type)
        response.headers.update(fault.headers)
        return response

    @app.errorhandler(OAuthError)
    def oauth_error(exc: OAuthError) -> Response:
        return _json(exc.body(), exc.status, TOKEN_HEADERS)

    @app.errorhandler(DriveError)
    def drive_error(exc: DriveError) -> Response:
        return _api_error(exc.status, exc.message, exc.reason, exc.location)

    # Authorization server

    @app.post("/token")
    def token() -> Response:
        params = _params()
        grant_type = params.get("grant_type", "")
        if grant_type == JWT_BEARER:
            # A service account's signed assertion authenticates itself: no client id or secret.
            if not params.get("assertion"):
                raise OAuthError(400, "invalid_request", "Missing required parameter: assertion")
            id_token = backend.service_accounts.id_token_for(params["assertion"], backend.keys)
            return _json({"id_token": id_token}, 200, TOKEN_HEADERS)
        if grant_type not in ("authorization_code", "refresh_token"):
            raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        credential = "code" if grant_type == "authorization_code" else "refresh_token"
        if not params.get(credential):
            raise OAuthError(400, "invalid_request", f"Missing required parameter: {credential}")
        client = _authenticate_client(params)
        if grant_type == "authorization_code":
            issue = backend.oauth.exchange(
                client, params["code"], params.get("redirect_uri"), params.get("code_verifier")
            )
        else:
            issue = backend.oauth.refresh(client, params["refresh_token"], params.get("scope"))
            backend.counters.refreshed(issue.sub)
        return _json(_token_body(issue), 200, TOKEN_HEADERS)

    def _authenticate_client(params: dict[str, str]) -> Client:
        """client_secret_basic or client_secret_post, checked in §8.2's order."""
        client_id, secret = params.get("client_id"), params.get("client_secret")
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            # RFC 6749 §2.3.1: both halves are form-urlencoded before base64.
            client_id = unquote_plus(auth.username or "")
            secret = unquote_plus(auth.password or "")
        if not client_id:
            raise OAuthError(400, "invalid_request", "Could not determine client ID from request.")
        client = backend.directory.client(client_id)
        if client is None:
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        if not secret:
            raise OAuthError(400, "invalid_request", "client_secret is missing.")
        if not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
            raise OAuthError(401, "invalid_client", "Unauthorized")
        if client.deleted:
            raise OAuthError(401, "deleted_client", "The OAuth client was deleted.")
        return client

    def _token_body(issue: Issue) -> dict:
        body: dict = {"access_token": issue.access_token, "expires_in": ACCESS_TOKEN_EXPIRES_IN}
        if issue.refresh_token:
            body["refresh_token"] = issue.refresh_token
            if issue.refresh_token_expires_in is not None:
                body["refresh_token_expires_in"] = issue.refresh_token_expires_in
        body["scope"] = scope_rules.join(issue.scopes)
        body["token_type"] = "Bearer"
        if scope_rules.OPENID in issue.scopes:
            user = backend.directory.user(issue.sub)
            if user is not None:
                claims = backend.user_claims(user, issue.scopes, _base_url())
                body["id_token"] = mint_id_token(
                    backend.keys, claims, issue.client_id, issue.access_token, backend.id_token_mode
                )
        return body

    @app.route("/revoke", methods=["GET", "POST"])
    def revoke() -> Response:
        if request.method == "GET":
            return _not_found()
        token_value = request.args.get("token") or _params().get("token")
        if not token_value:
            raise OAuthError(400, "invalid_request", "Missing required parameter: token")
        if not backend.oauth.revoke(token_value):
            raise OAuthError(400, "invalid_token", "Token expired or revoked")
        response = Response(b"", 200, content_type=JSON_UTF8)
        response.headers.update(TOKEN_HEADERS)
        return response

    # Keys and discovery

    @app.get("/oauth2/v1/certs")
    def certs_v1() -> Response:
        return _certs(backend.keys.v1_certs())

    @app.get("/oauth2/v3/certs")
    def certs_v3() -> Response:
        return _certs(backend.keys.v3_certs())

    def _certs(body: bytes) -> Response:
        max_age = backend.certs_max_age
        response = Response(body, 200, content_type="application/json; charset=UTF-8")
        response.headers["Cache-Control"] = f"public, max-age={max_age}, must-revalidate, no-transform"
        response.headers["Expires"] = http_date(time.time() + max_age)
        return response

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Response:
        base = _base_url()
        return _json(
            {
                "issuer": ISSUER,
                "authorization_endpoint": f"{base}/o/oauth2/v2/auth",
                "token_endpoint": f"{base}/token",
                "userinfo_endpoint": f"{base}/v1/userinfo",
                "revocation_endpoint": f"{base}/revoke",
                "jwks_uri": f"{base}/oauth2/v3/certs",
                "response_types_supported": ["code", "token", "id_token", "code token",
                                             "code id_token", "token id_token",
                                             "code token id_token", "none"],
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "claims_supported": ["aud", "email", "email_verified", "exp", "family_name",
                                     "given_name", "iat", "iss", "name", "picture", "sub"],
                "code_challenge_methods_supported": ["plain", "S256"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
            },
            200,
            {"Cache-Control": "public, max-age=3600"},
        )

    # Google APIs taking a bearer token

    @app.route("/oauth2/v3/userinfo", methods=["GET", "POST"])
    @app.route("/v1/userinfo", methods=["GET", "POST"])
    def userinfo() -> Response:
        presented = _bearer_token()
        record = backend.oauth.access_token(presented) if presented else None
        if record is None:
            challenge = REALM + (', error="invalid_token"' if presented else "")
            return _json(
                {"error": "invalid_request", "error_description": "Invalid Credentials"},
                401,
                {"WWW-Authenticate": challenge},
            )
        if not record.scopes & scope_rules.IDENTITY_SCOPES:
            challenge = REALM + ', error="insufficient_scope", scope="openid email profile"'
            return _json(
                {"error": "insufficient_scope", "error_description": "Insufficient Permission"},
                403,
                {"WWW-Authenticate": challenge},
            )
        user = backend.directory.user(record.sub)
        if user is None:
            return _json({"error": "invalid_request", "error_description": "Invalid Credentials"},
                         401, {"WWW-Authenticate": REALM + ', error="invalid_token"'})
        body: dict = {"sub": user.sub}
        if scope_rules.USERINFO_PROFILE in record.scopes:
            body.update(
                name=user.name,
                given_name=user.given_name,
                family_name=user.family_name,
                picture=backend.picture_url(user, _base_url()),
            )
        if scope_rules.USERINFO_EMAIL in record.scopes:
            body.update(email=user.email, email_verified=user.email_verified)
        if user.hd:
            body["hd"] = user.hd
        return _json(body, 200, {"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate"})

    @app.get("/drive/v3/files")
    def drive_list() -> Response:
        spaces = parse_spaces(request.args.get("spaces"))
        record = _drive_auth(spaces, "List")
        if isinstance(record, Response):
            return record
        page_size = parse_page_size(request.args.get("pageSize"))
        listing = backend.drive.list(record.sub, spaces, page_size, request.args.get("pageToken"))
        return _json(select_list_fields(listing, request.args.get("fields")), 200,
                     content_type="application/json; charset=UTF-8")

    @app.get("/drive/v3/files/<file_id>")
    def drive_get(file_id: str) -> Response:
        record = _drive_auth(["appDataFolder"], "Get")
        if isinstance(record, Response):
            return record
        if file_id in ("appDataFolder", "appfolder"):
            item = backend.drive.folder(record.sub)
        else:
            item = backend.drive.get(record.sub, file_id)
        if item is None:
            raise DriveError(404, f"File not found: {file_id}.", "notFound", "fileId")
        return _json(select_file_fields(item, request.args.get("fields")), 200,
                     content_type="application/json; charset=UTF-8")

    def _drive_auth(spaces: list[str], method: str) -> AccessToken | Response:
        presented = _bearer_token()
        record = backend.oauth.access_token(presented) if presented else None
        if record is None:
            if presented:
                return _api_error(
                    401,
                    "Request had invalid authentication credentials. Expected OAuth 2 access "
                    "token, login cookie or other valid authentication credential. See "
                    "https://developers.google.com/identity/sign-in/web/devconsole-project.",
                    "authError",
                    "Authorization",
                    "header",
                    item_message="Invalid Credentials",
                    headers={"WWW-Authenticate": REALM + ', error="invalid_token"'},
                )
            return _api_error(
                401,
                "Request is missing required authentication credential. Expected OAuth 2 "
                "access token, login cookie or other valid authentication credential. See "
                "https://developers.google.com/identity/sign-in/web/devconsole-project.",
                "required",
                "Authorization",
                "header",
                item_message="Login Required.",
                headers={"WWW-Authenticate": REALM},
            )
        missing = []
        if "appDataFolder" in spaces and scope_rules.DRIVE_APPDATA not in record.scopes:
            missing.append(scope_rules.DRIVE_APPDATA)
        if "drive" in spaces and not record.scopes & scope_rules.DRIVE_SPACE_SCOPES:
            missing.append("https://www.googleapis.com/auth/drive.readonly")
        if missing:
            return _insufficient_scopes(missing, method)
        return record

    # Sign-in for browsers

    @app.get("/gsi/client")
    def gsi_client() -> Response:
        script = gsi_script.replace("__LOCAL_GOOGLE_BASE__", json.dumps(_base_url()))
        response = Response(script, 200, content_type="text/javascript; charset=utf-8")
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.route("/o/oauth2/v2/auth", methods=["GET", "POST"])
    def authorize() -> Response | str | tuple[str, int]:
        client, origin, requested = _check_auth_request()
        identity, others = scope_rules.partition(requested)
        granular = scope_rules.granular_screen(identity, others)
        if request.method == "GET":
            return _consent_page(client, identity, others, granular)
        state = request.args.get("state")
        if request.form.get("decision") != "allow":
            return _result_page(origin, _denied(state))
        account = request.form.get("account", "")
        if account == "custom":
            email = request.form.get("custom_email", "").strip()
            if not EMAIL_PATTERN.match(email):
                return _consent_page(client, identity, others, granular,
                                     error="Enter a valid email address.", status=400)
            user = backend.directory.resolve_user(email=email)
        else:
            user = backend.directory.user(account)
            if user is None:
                return _consent_page(client, identity, others, granular,
                                     error="Choose an account.", status=400)
        chosen = request.form.getlist("scope") if granular else others
        granted = identity + [s for s in others if s in chosen]
        if not granted:
            return _result_page(origin, _denied(state))
        consent = backend.oauth.consent(
            client,
            user.sub,
            requested,
            granted,
            redirect_uri=origin,
            offline=request.args.get("access_type") == "offline",
            include_granted_scopes=request.args.get("include_granted_scopes") == "true",
            prompt=request.args.get("prompt"),
        )
        response: dict = {
            "code": consent.code,
            "scope": scope_rules.join(consent.scopes),
            "authuser": "0",
        }
        if user.hd:
            response["hd"] = user.hd
        response["prompt"] = consent.prompt
        if state is not None:
            response["state"] = state
        return _result_page(origin, response)

    def _check_auth_request() -> tuple[Client, str, list[str]]:
        """Validates the authorization request; failures become Google-style error pages."""
        args = request.args
        client_id = args.get("client_id")
        if not client_id:
            raise AuthPageError(400, "invalid_request", "Missing required parameter: client_id")
        client = backend.directory.client(client_id)
        if client is None:
            raise AuthPageError(401, "invalid_client", "The OAuth client was not found.")
        if client.deleted:
            raise AuthPageError(401, "deleted_client", "The OAuth client was deleted.")
        origin = args.get("redirect_uri")
        if not origin:
            raise AuthPageError(400, "invalid_request", "Missing required parameter: redirect_uri")
        if not ORIGIN_PATTERN.match(origin):
            # Only the popup flow (redirect_uri = the page origin) is served here.
            raise AuthPageError(400, "redirect_uri_mismatch",
                                f"The redirect URI in the request, {origin}, does not match the "
                                "ones authorized for the OAuth client.")
        if origin not in client.javascript_origins:
            raise AuthPageError(400, "origin_mismatch",
                                "You can't sign in to this app because it doesn't comply with "
                                "Google's OAuth 2.0 policy. Register the JavaScript origin "
                                f"{origin} for the client.")
        if args.get("response_type", "code") != "code":
            raise AuthPageError(400, "unsupported_response_type",
                                "Only response_type=code is served by the local Google.")
        requested = scope_rules.split(args.get("scope"))
        if not requested:
            raise AuthPageError(400, "invalid_request", "Missing required parameter: scope")
        invalid = [s for s in requested if not scope_rules.is_valid(s)]
        if invalid:
            raise AuthPageError(400, "invalid_scope", "Some requested scopes were invalid. "
                                f"{{invalid=[{', '.join(invalid)}]}}")
        return client, origin, requested

    def _consent_page(
        client: Client,
        identity: list[str],
        others: list[str],
        granular: bool,
        error: str | None = None,
        status: int = 200,
    ) -> tuple[str, int]:
        hint = (request.args.get("login_hint") or "").lower()
        users = backend.directory.users()
        selected = next(
            (u.sub for u in users if hint and hint in (u.sub, u.email.lower())),
            users[0].sub if users else "custom",
        )
        custom_email = ""
        if hint and "@" in hint and not any(u.email.lower() == hint for u in users):
            selected, custom_email = "custom", hint
        if request.method == "POST":
            selected = request.form.get("account", selected)
            custom_email = request.form.get("custom_email", custom_email)
        page = render_template(
            "consent.html",
            client=client,
            users=users,
            selected=selected,
            custom_email=custom_email,
            identity=identity,
            others=[(s, scope_rules.describe(s)) for s in others],
            granular=granular,
            error=error,
            action=request.full_path,
        )
        return page, status

    def _result_page(origin: str, response: dict) -> str:
        return render_template(
            "consent_result.html", response=response, target_origin=origin, message_type=MESSAGE_TYPE
        )

    @app.errorhandler(AuthPageError)
    def auth_page_error(exc: AuthPageError) -> tuple[str, int]:
        page = render_template("error.html", status=exc.status, error=exc.error, message=exc.message)
        return page, exc.status

    @app.get("/a/<sub>")
    def avatar(sub: str) -> Response:
        user = backend.directory.user(sub)
        initial = (user.given_name[:1] if user else "?").upper() or "?"
        svg = (
            '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">'
            '<circle cx="48" cy="48" r="48" fill="#5c6bc0"/><text x="48" y="62" font-size="44" '
            'text-anchor="middle" fill="#fff" font-family="sans-serif">'
            f"{_xml_escape(initial)}</text></svg>"
        )
        return Response(svg, 200, content_type="image/svg+xml")

    app.register_blueprint(control_blueprint(backend))
    return app


# Helpers on the current request


def _params() -> dict[str, str]:
    """Form fields (or a JSON object body, which Google's token endpoint also takes)."""
    if request.form:
        return request.form.to_dict()
    if request.mimetype == "application/json":
        data = request.get_json(silent=True)
        if isinstance(data, dict):
            return {str(k): str(v) for k, v in data.items() if v is not None}
    return {}


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.args.get("access_token") or None


def _base_url() -> str:
    return request.host_url.rstrip("/")


def _json(
    body: dict,
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str = JSON_UTF8,
) -> Response:
    response = Response(json.dumps(body, indent=2), status, content_type=content_type)
    if headers:
        response.headers.update(headers)
    return response


_API_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
               404: "NOT_FOUND"}


def _api_error(
    status: int,
    message: str,
    reason: str,
    location: str | None = None,
    location_type: str = "parameter",
    *,
    item_message: str | None = None,
    headers: dict[str, str] | None = None,
    details: list | None = None,
) -> Response:
    """Google's API error shape: `{"error": {"code", "message", "errors": [...], "status"}}`."""
    item: dict = {"message": item_message or message, "domain": "global", "reason": reason}
    if location:
        item["location"] = location
        item["locationType"] = location_type
    error: dict = {"code": status, "message": message, "errors": [item],
                   "status": _API_STATUS.get(status, "UNKNOWN")}
    if details:
        error["details"] = details
    return _json({"error": error}, status, headers, content_type="application/json; charset=UTF-8")


def _insufficient_scopes(missing: list[str], method: str) -> Response:
    return _api_error(
        403,
        "Request had insufficient authentication scopes.",
        "insufficientPermissions",
        item_message="Insufficient Permission",
        headers={"WWW-Authenticate": REALM + f', error="insufficient_scope", scope="{" ".join(missing)}"'},
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                "domain": "googleapis.com",
                "metadata": {
                    "service": "drive.googleapis.com",
                    "method": f"com.google.apps.drive.v3.DriveFiles.{method}",
                },
            }
        ],
    )


def _denied(state: str | None) -> dict:
    response = {"error": "access_denied"}
    if state is not None:
        response["state"] = state
    return response


def _not_found() -> Response:
    body = (
        "<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Error 404 (Not Found)!!1</title>"
        f"<p><b>404.</b> That's an error.<p>The requested URL <code>{_xml_escape(request.path)}"
        "</code> was not found on this server. That's all we know.</html>"
    )
    return Response(body, 404, content_type="text/html; charset=UTF-8")


def _drop_connection() -> None:
    """Closes the client's socket without an answer, like a connection that timed out."""
    sock = request.environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")

