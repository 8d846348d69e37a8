"""One JSON object per line on stdout, in Cloud Logging's structured format.

Cloud Logging reads `severity`, `message` and `logging.googleapis.com/trace` from each line. The
functions write one line per request with its outcome, and the job one per user and one per
run. Nothing here may receive a code, token, secret or key; as a second line of defence,
strings that look like Google credentials are masked before they are written.

Users appear in logs only as `UserRefs.ref(sub)`: an HMAC of the `sub` under a key kept in
Secret Manager, so that knowing a user's `sub` (or email) is not enough to find them in the logs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

from .errors import Misconfigured

# Shapes of Google credentials: access tokens, refresh tokens, authorization codes, JWTs.
_CREDENTIAL = re.compile(
    r"ya29\.[\w\-.~+/]+|1//[\w\-.~+/]+|4/[0-9A-Za-z][\w\-.~+/]*|eyJ[\w\-]+\.[\w\-]+\.[\w\-]*"
)
_write_lock = threading.Lock()


def mask_credentials(text: str) -> str:
    """Replace anything shaped like a Google credential with a marker."""
    return _CREDENTIAL.sub("[redacted]", text)


USER_REF_HEX_CHARS = 24  # 96 bits: no collisions among any realistic number of users
MIN_LOG_KEY_BYTES = 32


class UserRefs:
    """A user's reference in the logs: HMAC-SHA256 of the `sub` under the log key.

    The key is read on first use (or by `check_ready`, before a flow's first call to Google) and
    kept; each reference then costs one HMAC. Two functions with the same key give a user the
    same reference, so an operator can follow a user from sign-in to job runs.

    Args:
        load_key: returns the key's secret bytes (32 random bytes, base64-encoded).
    """

    def __init__(self, load_key: Callable[[], bytes]) -> None:
        self._load_key = load_key
        self._mac: hmac.HMAC | None = None
        self._lock = threading.Lock()

    def check_ready(self) -> None:
        """Read the key now, so that a missing key fails before any work.

        Raises:
            Misconfigured, Unavailable: the key cannot be read, or is not a key.
        """
        self._keyed()

    def _keyed(self) -> hmac.HMAC:
        mac = self._mac
        if mac is None:
            with self._lock:
                mac = self._mac
                if mac is None:
                    mac = self._mac = hmac.new(parse_log_key(self._load_key()), digestmod=hashlib.sha256)
        return mac

    def ref(self, sub: str) -> str:
        """The user's reference; `unavailable` when the key cannot be read (logging never fails)."""
        try:
            mac = self._keyed().copy()
        except Exception:  # a log line must still be written
            return "unavailable"
        mac.update(sub.encode())
        return mac.hexdigest()[:USER_REF_HEX_CHARS]


def parse_random_key(raw: bytes, fix: str, minimum: int = MIN_LOG_KEY_BYTES) -> bytes:
    """An HMAC key from its secret payload: at least `minimum` random bytes, base64-encoded.

    Raises:
        Misconfigured: anything else (`fix` says what to do).
    """
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) < minimum:
        raise Misconfigured(fix)
    return key


def parse_log_key(raw: bytes) -> bytes:
    """The log key from its secret payload: at least 32 random bytes, base64-encoded.

    Raises:
        Misconfigured: anything else.
    """
    return parse_random_key(raw, "The log key (LOG_USER_REF_KEY_VERSION) must hold at least 32 "
                                 "random bytes, base64-encoded (make rotate-log-key adds one).")


def trace_field(project: str, header: str | None) -> dict[str, str]:
    """The trace field for a request's `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1` header."""
    if not header:
        return {}
    trace_id = header.split("/", 1)[0].strip()
    if not re.fullmatch(r"[0-9a-fA-F]{1,64}", trace_id):
        return {}
    return {"logging.googleapis.com/trace": f"projects/{project}/traces/{trace_id}"}


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return mask_credentials(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def emit(severity: str, message: str, stream: TextIO | None = None, **fields: Any) -> None:
    """Write one structured log line."""
    entry = {"severity": severity, "message": mask_credentials(message)}
    entry.update(_clean(fields))
    line = json.dumps(entry, default=str, separators=(",", ":"))
    with _write_lock:
        out = stream or sys.stdout
        out.write(line + "\n")
        out.flush()


class JsonFormatter(logging.Formatter):
    """Formats records of Python's `logging` (ours and libraries') as structured lines."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "severity": record.levelname if record.levelname != "WARN" else "WARNING",
            "message": mask_credentials(record.getMessage()),
            "logger": record.name,
        }
        # Tracebacks can quote request data and library internals: keep only the type.
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception_type"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure_python_logging(level: int = logging.INFO) -> None:
    """Route the `logging` module to stdout as structured lines; keep HTTP debug logs off."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # urllib3 at DEBUG prints request lines, which would include query strings.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
