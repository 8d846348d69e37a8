"""Checks an incoming sign-in request before anything else happens, and extracts the code.

Order matters: method, then the CSRF defences (the `X-Requested-With` header, which browsers
only send after a CORS preflight, and the `Origin` allowlist; a POST without `Origin` is
refused), then the body's size, type and shape. Every refusal happens before any I/O and
changes nothing. Patterns must match the whole value (`fullmatch`: `$` alone would let a
trailing newline through). Two bodies are accepted: JSON `{"code": ..., "state": ...}`, and
the code alone as `application/octet-stream`, which is what Google's original sample (`$.ajax`
with `processData: false`) sends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from werkzeug.datastructures import Headers

from ..errors import ClientError

MAX_BODY_BYTES = 4096
PREFLIGHT_MAX_AGE_SECONDS = 3600
ALLOWED_REQUEST_HEADERS = frozenset({"content-type", "x-requested-with"})
# Google's codes are URL-safe text such as `4/0AeanS0b...`; anything else cannot be a code.
_CODE = re.compile(r"[A-Za-z0-9/_\-.~+%=]{8,2048}")
_STATE = re.compile(r"[A-Za-z0-9_\-.~]{1,256}")


@dataclass(frozen=True)
class SignInRequest:
    """What a valid request carries. `repr` never shows the code."""

    code: str
    state: str | None = None

    def __repr__(self) -> str:
        return f"SignInRequest(code=<{len(self.code)} chars>, state={self.state!r})"


def cors_headers(origin: str | None, allowed_origins: tuple[str, ...]) -> dict[str, str]:
    """Headers that let an allowlisted page read the answer; none for anyone else."""
    headers = {"Vary": "Origin"}
    if origin and origin in allowed_origins:
        headers["Access-Control-Allow-Origin"] = origin
    return headers


def check_preflight(headers: Mapping[str, str] | Headers, allowed_origins: tuple[str, ...]) -> dict[str, str]:
    """Answer headers for an allowed CORS preflight.

    Raises:
        ClientError: 403 for any other origin, method or header.
    """
    origin = headers.get("Origin")
    if not origin or origin not in allowed_origins:
        raise ClientError(
            "This page's origin may not call the sign-in endpoint.",
            code="origin_not_allowed",
            status=403,
        )
    method = headers.get("Access-Control-Request-Method", "")
    requested = {
        h.strip().lower()
        for h in headers.get("Access-Control-Request-Headers", "").split(",")
        if h.strip()
    }
    if method != "POST" or not requested <= ALLOWED_REQUEST_HEADERS:
        raise ClientError(
            "Only POST with Content-Type and X-Requested-With headers is allowed.",
            code="preflight_rejected",
            status=403,
        )
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": "Content-Type, X-Requested-With",
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_SECONDS),
        "Vary": "Origin",
    }


def check_post_headers(headers: Mapping[str, str] | Headers, allowed_origins: tuple[str, ...]) -> None:
    """The CSRF checks of a POST, and its declared size.

    Browsers send `Origin` with every POST (Fetch standard), so a POST without one did not come
    from the page and is refused like one from a foreign origin.

    Raises:
        ClientError: 403 without the header, without `Origin` or from a foreign origin; 413
            when too large.
    """
    if headers.get("X-Requested-With", "").strip().lower() != "xmlhttprequest":
        raise ClientError(
            "The request must carry the header X-Requested-With: XMLHttpRequest.",
            code="csrf_check_failed",
            status=403,
        )
    origin = headers.get("Origin")
    if origin is None:
        raise ClientError(
            "The request has no Origin header: only the sign-in page may call this endpoint.",
            code="origin_not_allowed",
            status=403,
        )
    if origin not in allowed_origins:
        raise ClientError(
            "This page's origin may not call the sign-in endpoint.",
            code="origin_not_allowed",
            status=403,
        )
    length = headers.get("Content-Length")
    if length is not None:
        try:
            too_large = int(length) > MAX_BODY_BYTES
        except ValueError:
            raise ClientError("The Content-Length header is not a number.") from None
        if too_large:
            raise _too_large()


def _too_large() -> ClientError:
    return ClientError(
        f"The request body is larger than {MAX_BODY_BYTES} bytes.",
        code="payload_too_large",
        status=413,
    )


def _media_type(content_type: str) -> tuple[str, dict[str, str]]:
    parts = [p.strip() for p in content_type.split(";")]
    params = {}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        params[key.strip().lower()] = value.strip().strip('"').lower()
    return parts[0].lower(), params


def _reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def parse_body(content_type: str | None, body: bytes) -> SignInRequest:
    """The code (and state) from a body already capped at `MAX_BODY_BYTES` + 1 bytes.

    Raises:
        ClientError: 413, 415 or 400 with a sentence saying what is wrong.
    """
    if len(body) > MAX_BODY_BYTES:
        raise _too_large()
    media_type, params = _media_type(content_type or "")
    if media_type not in ("application/json", "application/octet-stream"):
        raise ClientError(
            "Send the code as application/json or application/octet-stream.",
            code="unsupported_media_type",
            status=415,
        )
    if params.get("charset", "utf-8") not in ("utf-8", "utf8"):
        raise ClientError(
            "The body must be UTF-8.", code="unsupported_media_type", status=415
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientError("The body is not valid UTF-8.") from None

    state: str | None = None
    code: object
    if media_type == "application/octet-stream":
        code = text.strip()
    else:
        try:
            document = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
        except (ValueError, RecursionError):
            raise ClientError("The body is not a JSON object with a code.") from None
        if not isinstance(document, dict):
            raise ClientError("The body must be a JSON object with a code.")
        code = document.get("code")
        raw_state = document.get("state")
        if not isinstance(code, str):
            raise ClientError("The JSON body must have a string field 'code'.")
        if raw_state is not None and (not isinstance(raw_state, str) or not _STATE.fullmatch(raw_state)):
            raise ClientError("The field 'state' must be a short URL-safe string.")
        state = raw_state
    if not isinstance(code, str) or not code:
        raise ClientError("The body must contain the one-time code.")
    if not _CODE.fullmatch(code):
        raise ClientError("The code is not a Google authorization code.")
    return SignInRequest(code=code, state=state)
