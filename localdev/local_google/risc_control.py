"""The control API's RISC part: service accounts, streams, pushed events and their deliveries.

Under `/_control/` like the rest of the control API (`control_api.py`), JSON in and out, bad
input 400 `{"error": ...}` (404/409 where said). README.md lists every endpoint.

Events are pushed about a user, as Google would send them: only for users who granted `email` or
`profile` to the project (else 409), with `aud` the client they signed in with. A pushed
`token-revoked` or `tokens-revoked` also revokes what it reports (unless `revoke: false`), so
the receiver and the token endpoint agree.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from . import control_input as cin
from . import risc_events
from .answers import base_url
from .backend import Backend
from .control_input import ControlError
from .directory import User
from .risc_delivery import FINAL
from .risc_stream import PUSH_DELIVERY, RiscApiError, check_receiver_url

MAX_WAIT_SECONDS = 60.0


def risc_control_blueprint(backend: Backend) -> Blueprint:
    bp = Blueprint("risc_control", __name__, url_prefix="/_control")

    @bp.errorhandler(ValueError)
    def bad_input(exc: ValueError) -> tuple[Response, int]:
        return jsonify(error=str(exc)), getattr(exc, "status", 400)

    @bp.errorhandler(RiscApiError)
    def refused(exc: RiscApiError) -> tuple[Response, int]:
        return jsonify(error=exc.message), 400

    # Service accounts

    @bp.get("/service-accounts")
    def list_service_accounts() -> Response:
        return jsonify(service_accounts=[a.public() for a in backend.service_accounts.accounts()])

    @bp.post("/service-accounts")
    def register_service_account() -> Response:
        data = cin.body()
        email = cin.opt_str(data, "email")
        project_id = cin.opt_str(data, "project_id")
        if email is None and project_id is None:
            project_id = backend.directory.default_project()
        account, kid, key_file = backend.service_accounts.register(
            email, project_id, cin.opt_str_list(data, "roles"), cin.opt_str(data, "public_key_pem"), base_url()
        )
        answer = {**account.public(), "key_id": kid}
        if key_file is not None:
            answer["key_file"] = key_file
        return jsonify(answer)

    # Settings and streams

    @bp.get("/risc/settings")
    def get_settings() -> Response:
        return jsonify(backend.risc_settings.public())

    @bp.post("/risc/settings")
    def put_settings() -> Response:
        backend.risc_settings.update(cin.body())
        return jsonify(backend.risc_settings.public())

    @bp.get("/risc/stream")
    def get_stream() -> Response:
        project_id = request.args.get("project_id") or _default_project()
        return jsonify(project_id=project_id, stream=_stream_state(project_id))

    @bp.post("/risc/stream")
    def put_stream() -> Response:
        """Configures a project's stream without a service account (what `stream:update` does)."""
        data = cin.body()
        project_id = cin.opt_str(data, "project_id") or _default_project()
        url = check_receiver_url(cin.required_str(data, "url"), backend.risc_settings)
        events = cin.opt_str_list(data, "events_requested")
        events = [risc_events.event_type_uri(e) for e in events] if events is not None else list(
            risc_events.EVENT_TYPES.values())
        status = cin.opt_str(data, "status")
        if status not in (None, "enabled", "disabled"):
            raise ControlError('`status` must be "enabled" or "disabled"')
        backend.risc_streams.update(project_id, PUSH_DELIVERY, url, events, status)
        return jsonify(project_id=project_id, stream=_stream_state(project_id))

    @bp.delete("/risc/stream")
    def delete_stream() -> Response:
        project_id = request.args.get("project_id") or _default_project()
        return jsonify(deleted=backend.risc_streams.delete(project_id))

    def _stream_state(project_id: str) -> dict | None:
        stream = backend.risc_streams.get(project_id)
        return {**stream.config(), "status": stream.status} if stream else None

    # Events

    @bp.post("/risc/events")
    def push_event() -> Response:
        data = cin.body()
        event_uri = risc_events.event_type_uri(cin.required_str(data, "type"))
        forgery = cin.opt_str(data, "forgery")
        if forgery is not None and forgery not in risc_events.FORGERIES:
            raise ControlError(f"`forgery` must be one of {', '.join(risc_events.FORGERIES)}")
        revoke = cin.opt_bool(data, "revoke")
        revoke = True if revoke is None else revoke
        reason, state = cin.opt_str(data, "reason"), data.get("state")
        if reason is not None and event_uri != risc_events.ACCOUNT_DISABLED:
            raise ControlError("`reason` is only for account-disabled")
        if reason not in (None, *risc_events.DISABLED_REASONS):
            raise ControlError(f"`reason` must be one of {', '.join(risc_events.DISABLED_REASONS)}")
        if state is not None and event_uri != risc_events.VERIFICATION:
            raise ControlError("`state` is only for verification")
        project_id, client_id = _project_and_client(data)
        revoked = None

        if event_uri == risc_events.VERIFICATION:
            event: dict = {} if state is None else {"state": str(state)}
            audience = client_id or _first_client(project_id)
        elif event_uri == risc_events.TOKEN_REVOKED:
            record = _refresh_token(data, project_id, client_id)
            project_id, audience = record.project_id, record.client_id
            _require_sign_in_grant(record.sub, project_id)
            alg = cin.opt_str(data, "token_identifier_alg") or "prefix"
            event = {"subject": risc_events.token_subject(record.token, alg)}
            if revoke:
                revoked = backend.oauth.revoke_refresh_token(record.token)
        else:
            user = _user(data)
            clients = _require_sign_in_grant(user.sub, project_id)
            audience = client_id or clients[0]
            subject_type = cin.opt_str(data, "subject_type") or "iss-sub"
            event = {"subject": risc_events.user_subject(user.sub, user.email, subject_type)}
            if reason is not None:
                event["reason"] = reason
            if event_uri == risc_events.TOKENS_REVOKED and revoke:
                revoked = backend.oauth.revoke_grant(user.sub, project_id)

        claims = risc_events.set_claims(event_uri, event, audience)
        token = risc_events.sign_set(backend.keys, claims, forgery)
        delivery = backend.transmitter.submit(project_id, token, claims["jti"], event_uri)
        return jsonify(jti=claims["jti"], token=token, claims=claims, revoked=revoked,
                       delivery=delivery.public())

    @bp.post("/risc/raw")
    def push_raw() -> Response:
        """Delivers any body: `token` verbatim, or `claims` (+ `header`, `key`) signed here."""
        data = cin.body()
        project_id, _ = _project_and_client(data)
        token = cin.opt_str(data, "token")
        jti = None
        if token is None:
            claims, header = data.get("claims"), data.get("header")
            if not isinstance(claims, dict):
                raise ControlError("give `token` (sent as is) or `claims` (an object, signed here)")
            if header is not None and not isinstance(header, dict):
                raise ControlError("`header` must be an object")
            token = risc_events.sign_raw(backend.keys, claims, header, cin.opt_str(data, "key") or "current")
            jti = claims.get("jti") if isinstance(claims.get("jti"), str) else None
        delivery = backend.transmitter.submit(project_id, token, jti, None)
        return jsonify(token=token, delivery=delivery.public())

    # Deliveries

    @bp.get("/risc/deliveries")
    def list_deliveries() -> Response:
        return jsonify(deliveries=backend.transmitter.deliveries())

    @bp.get("/risc/deliveries/<delivery_id>")
    def get_delivery(delivery_id: str) -> Response:
        found = backend.transmitter.delivery(delivery_id)
        if found is None:
            raise ControlError(f"no delivery {delivery_id!r}", 404)
        return jsonify(found)

    @bp.post("/risc/wait")
    def wait_for_delivery() -> Response:
        data = cin.body()
        delivery_id = cin.required_str(data, "id")
        timeout = cin.opt_number(data, "timeout_seconds")
        timeout = 10.0 if timeout is None else min(max(timeout, 0.0), MAX_WAIT_SECONDS)
        found = backend.transmitter.wait(delivery_id, timeout)
        if found is None:
            raise ControlError(f"no delivery {delivery_id!r}", 404)
        return jsonify(done=found["status"] in FINAL, delivery=found)

    @bp.post("/risc/resend")
    def resend() -> Response:
        delivery_id = cin.required_str(cin.body(), "id")
        try:
            delivery = backend.transmitter.resend(delivery_id)
        except KeyError:
            raise ControlError(f"no delivery {delivery_id!r}", 404) from None
        return jsonify(delivery.public())

    # Helpers

    def _default_project() -> str:
        project_id = backend.directory.default_project()
        if project_id is None:
            raise ControlError("no OAuth client, so no default project: give `project_id`")
        return project_id

    def _project_and_client(data: dict) -> tuple[str, str | None]:
        client_id = cin.opt_str(data, "client_id")
        project_id = cin.opt_str(data, "project_id")
        if client_id is not None:
            client = backend.directory.client(client_id)
            if client is None:
                raise ControlError(f"unknown client_id {client_id!r}")
            if project_id is not None and project_id != client.project_id:
                raise ControlError(f"client {client_id!r} is in project {client.project_id!r}, not {project_id!r}")
            return client.project_id, client_id
        return project_id or _default_project(), None

    def _first_client(project_id: str) -> str:
        clients = backend.directory.project_clients(project_id)
        if not clients:
            raise ControlError(f"project {project_id!r} has no OAuth client", 409)
        return clients[0].client_id

    def _user(data: dict) -> User:
        sub, email = cin.opt_str(data, "sub"), cin.opt_str(data, "email")
        if sub is None and email is None:
            raise ControlError("`sub` or `email` is required")
        user = backend.directory.find_user(sub, email)
        if user is None:
            raise ControlError(f"no user {sub or email!r}", 404)
        return user

    def _require_sign_in_grant(sub: str, project_id: str) -> list[str]:
        clients = backend.oauth.sign_in_clients(sub, project_id)
        if not clients:
            raise ControlError(
                f"user {sub} never granted email or profile to project {project_id!r}: Google sends "
                "RISC events only about users who did", 409)
        return clients

    def _refresh_token(data: dict, project_id: str, client_id: str | None):
        value = cin.opt_str(data, "refresh_token")
        if value is not None:
            record = backend.oauth.refresh_token_record(value)
            if record is None:
                raise ControlError("unknown `refresh_token`: the local Google did not issue it", 404)
            return record
        user = _user(data)
        client_id = client_id or next(iter(backend.oauth.sign_in_clients(user.sub, project_id)), None)
        record = backend.oauth.latest_refresh_token(user.sub, client_id) if client_id else None
        if record is None:
            raise ControlError(f"user {user.sub} has no live refresh token for client {client_id!r}", 409)
        return record

    return bp
