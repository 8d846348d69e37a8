"""The `/_control/` JSON API: test and `make dev` hooks that Google itself does not have.

Every endpoint takes and returns JSON; bad input answers 400 `{"error": "..."}`. The full
list with examples is in README.md. Control requests are not counted, delayed or faulted.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from . import control_input as cin
from . import scopes as scope_rules
from .backend import Backend
from .control_input import ControlError
from .directory import Client, User, sub_for_email, user_from_email
from .faults import Fault


def control_blueprint(backend: Backend) -> Blueprint:
    bp = Blueprint("control", __name__, url_prefix="/_control")

    @bp.errorhandler(ValueError)
    def bad_input(exc: ValueError) -> tuple[Response, int]:
        return jsonify(error=str(exc)), getattr(exc, "status", 400)

    @bp.get("/health")
    def health() -> Response:
        return jsonify(ok=True)

    @bp.post("/reset")
    def reset() -> Response:
        backend.reset()
        return jsonify(ok=True)

    @bp.get("/clients")
    def list_clients() -> Response:
        return jsonify(clients=[c.public() for c in backend.directory.clients()])

    @bp.post("/clients")
    def put_client() -> Response:
        body = cin.body()
        client_id = cin.required_str(body, "client_id")
        changes: dict[str, Any] = {}
        for name in ("client_secret", "name", "refresh_token_mode", "project_id"):
            if name in body:
                changes[name] = cin.string(body, name)
        for name in ("deleted", "testing_mode"):
            if name in body:
                changes[name] = bool(body[name])
        if "javascript_origins" in body:
            origins = body["javascript_origins"]
            if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
                raise ControlError("`javascript_origins` must be a list of origins")
            changes["javascript_origins"] = [o.rstrip("/") for o in origins]
        client = backend.directory.update_client(client_id, **changes)
        return jsonify(client.public())

    @bp.get("/users")
    def list_users() -> Response:
        return jsonify(users=[u.public() for u in backend.directory.users()])

    @bp.post("/users")
    def put_users() -> Response:
        body = cin.body()
        items = body.get("users") if "users" in body else [body]
        if not isinstance(items, list):
            raise ControlError("`users` must be a list")
        stored = [backend.directory.put_user(_user_from(item)).public() for item in items]
        return jsonify(stored[0] if "users" not in body else {"users": stored})

    @bp.post("/codes")
    def mint_code() -> Response:
        body = cin.body()
        client = _client(body)
        user = backend.directory.resolve_user(cin.opt_str(body, "sub"), cin.opt_str(body, "email"))
        requested = scope_rules.split(body.get("scopes") or body.get("scope"))
        if not requested:
            raise ControlError("`scopes` is required")
        granted = body.get("granted_scopes")
        consent = backend.oauth.consent(
            client,
            user.sub,
            requested,
            scope_rules.split(granted) if granted is not None else None,
            redirect_uri=cin.opt_str(body, "redirect_uri") or "postmessage",
            offline=bool(body.get("offline", True)),
            include_granted_scopes=bool(body.get("include_granted_scopes", True)),
            prompt=cin.opt_str(body, "prompt"),
            code_challenge=cin.opt_str(body, "code_challenge"),
            code_challenge_method=cin.opt_str(body, "code_challenge_method"),
            refresh_token_lifetime=cin.opt_int(body, "refresh_token_lifetime_seconds"),
        )
        return jsonify(
            code=consent.code,
            scope=scope_rules.join(consent.scopes),
            prompt=consent.prompt,
            sub=user.sub,
            email=user.email,
        )

    @bp.get("/faults")
    def list_faults() -> Response:
        return jsonify(faults=backend.faults.list())

    @bp.post("/faults")
    def add_fault() -> Response:
        fault = Fault.from_json(cin.body())
        backend.faults.add(fault)
        return jsonify(fault.public())

    @bp.delete("/faults")
    def clear_faults() -> Response:
        backend.faults.clear()
        return jsonify(ok=True)

    @bp.post("/latency")
    def latency() -> Response:
        ms = cin.opt_int(cin.body(), "ms")
        if ms is None or ms < 0:
            raise ControlError("`ms` must be a non-negative integer")
        backend.faults.latency_ms = ms
        return jsonify(ms=ms)

    @bp.get("/id-token-mode")
    def get_id_token_mode() -> Response:
        return jsonify(mode=backend.id_token_mode)

    @bp.post("/id-token-mode")
    def set_id_token_mode() -> Response:
        backend.set_id_token_mode(cin.required_str(cin.body(), "mode"))
        return jsonify(mode=backend.id_token_mode)

    @bp.post("/rotate-keys")
    def rotate_keys() -> Response:
        key = backend.keys.rotate()
        return jsonify(kid=key.kid, published=backend.keys.kids)

    @bp.get("/clock")
    def get_clock() -> Response:
        return jsonify(now=backend.clock.now(), offset_seconds=backend.clock.offset)

    @bp.post("/clock")
    def advance_clock() -> Response:
        seconds = cin.body().get("advance_seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise ControlError("`advance_seconds` must be a number")
        offset = backend.clock.advance(float(seconds))
        return jsonify(now=backend.clock.now(), offset_seconds=offset)

    @bp.post("/revoke-grant")
    def revoke_grant() -> Response:
        body = cin.body()
        sub = _sub(body)
        client = _client(body, allow_deleted=True)
        return jsonify(revoked=backend.oauth.revoke_grant(sub, client.project_id))

    @bp.post("/reauth-required")
    def reauth_required() -> Response:
        body = cin.body()
        sub = _sub(body)
        required = bool(body.get("required", True))
        backend.oauth.set_reauth_required(sub, required)
        return jsonify(sub=sub, required=required)

    @bp.post("/drive-files")
    def drive_files() -> Response:
        body = cin.body()
        user = backend.directory.resolve_user(cin.opt_str(body, "sub"), cin.opt_str(body, "email"))
        files = body.get("files")
        if not isinstance(files, list):
            raise ControlError("`files` must be a list of {name, mimeType?}")
        stored = backend.drive.set_files(user.sub, files, backend.clock.now())
        return jsonify(sub=user.sub, files=stored)

    @bp.get("/counters")
    def counters() -> Response:
        return jsonify(backend.counters.snapshot())

    @bp.get("/state")
    def state() -> Response:
        return jsonify(backend.oauth.snapshot())

    @bp.get("/settings")
    def get_settings() -> Response:
        return jsonify(_settings())

    @bp.post("/settings")
    def put_settings() -> Response:
        body = cin.body()
        code_ttl = cin.opt_int(body, "code_ttl_seconds")
        max_age = cin.opt_int(body, "certs_max_age_seconds")
        if code_ttl is not None:
            if code_ttl <= 0:
                raise ControlError("`code_ttl_seconds` must be positive")
            backend.oauth.code_ttl = code_ttl
        if max_age is not None:
            if max_age < 0:
                raise ControlError("`certs_max_age_seconds` must be >= 0")
            backend.certs_max_age = max_age
        return jsonify(_settings())

    def _settings() -> dict:
        return {
            "code_ttl_seconds": backend.oauth.code_ttl,
            "certs_max_age_seconds": backend.certs_max_age,
            "latency_ms": backend.faults.latency_ms,
            "id_token_mode": backend.id_token_mode,
            "default_client_id": backend.directory.default_client_id,
        }

    def _client(body: dict, allow_deleted: bool = False) -> Client:
        client_id = cin.opt_str(body, "client_id") or backend.directory.default_client_id
        client = backend.directory.client(client_id)
        if client is None:
            raise ControlError(f"unknown client_id {client_id!r}")
        if client.deleted and not allow_deleted:
            raise ControlError(f"client {client_id!r} is deleted")
        return client

    def _sub(body: dict) -> str:
        sub = cin.opt_str(body, "sub")
        if sub:
            return sub
        email = cin.opt_str(body, "email")
        user = backend.directory.user_by_email(email) if email else None
        if user is None:
            raise ControlError("`sub` (or the `email` of a known user) is required", 404 if email else 400)
        return user.sub

    return bp


def _user_from(item: Any) -> User:
    if not isinstance(item, dict):
        raise ControlError("a user is an object {sub, email, name?, picture?, hd?, email_verified?}")
    email = cin.required_str(item, "email")
    base = user_from_email(email, cin.opt_str(item, "sub") or sub_for_email(email))
    name = cin.opt_str(item, "name")
    given = cin.opt_str(item, "given_name")
    family = cin.opt_str(item, "family_name")
    if name and not given:
        given, _, rest = name.partition(" ")
        family = family or rest or None
    return User(
        sub=base.sub,
        email=email,
        name=name or base.name,
        given_name=given or base.given_name,
        family_name=family or base.family_name,
        picture=cin.opt_str(item, "picture"),
        hd=cin.opt_str(item, "hd"),
        email_verified=bool(item.get("email_verified", True)),
    )
