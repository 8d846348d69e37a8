"""Helpers on the current Flask request shared by every group of endpoints.

Google answers in a few fixed shapes: OAuth errors (`oauth_state.OAuthError`), and the Google API
error `{"error": {"code", "message", "errors"?, "status"}}` built here. The request helpers read
form parameters, bearer tokens and the base URL the caller used.
"""

from __future__ import annotations

import json

from flask import Response, request

JSON_UTF8 = "application/json; charset=utf-8"
API_JSON = "application/json; charset=UTF-8"

API_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
}


def form_params() -> dict[str, str]:
    """Form fields (or a JSON object body, which Google's token endpoint also takes)."""
    if request.form:
        return request.form.to_dict()
    if request.mimetype == "application/json":
        data = request.get_json(silent=True)
        if isinstance(data, dict):
            return {str(k): str(v) for k, v in data.items() if v is not None}
    return {}


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.args.get("access_token") or None


def base_url() -> str:
    """`http://host:port` as the caller reached this server."""
    return request.host_url.rstrip("/")


def json_response(
    body: dict,
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str = JSON_UTF8,
) -> Response:
    response = Response(json.dumps(body, indent=2), status, content_type=content_type)
    if headers:
        response.headers.update(headers)
    return response


def api_error(
    status: int,
    message: str,
    reason: str | None = None,
    location: str | None = None,
    location_type: str = "parameter",
    *,
    item_message: str | None = None,
    headers: dict[str, str] | None = None,
    details: list | None = None,
) -> Response:
    """Google's API error: `{"error": {"code", "message", "errors"?, "status", "details"?}}`.

    `errors` (the v3 APIs' legacy list) is included only when a `reason` is given: newer APIs
    such as RISC answer without it.
    """
    error: dict = {"code": status, "message": message}
    if reason is not None:
        item: dict = {"message": item_message or message, "domain": "global", "reason": reason}
        if location:
            item["location"] = location
            item["locationType"] = location_type
        error["errors"] = [item]
    error["status"] = API_STATUS.get(status, "UNKNOWN")
    if details:
        error["details"] = details
    return json_response({"error": error}, status, headers, content_type=API_JSON)
