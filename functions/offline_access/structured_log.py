"""One JSON object per line on stdout, in Cloud Logging's structured format.

Cloud Logging reads `severity`, `message` and `logging.googleapis.com/trace` from each line. The
functions write one line per request with its outcome, and the job one per user and one per
run. Nothing here may receive a code, token, secret or key; as a second line of defence,
strings that look like Google credentials are masked before they are written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import threading
from typing import Any, TextIO

# Shapes of Google credentials: access tokens, refresh tokens, authorization codes, JWTs.
_CREDENTIAL = re.compile(
    r"ya29\.[\w\-.~+/]+|1//[\w\-.~+/]+|4/[0-9A-Za-z][\w\-.~+/]*|eyJ[\w\-]+\.[\w\-]+\.[\w\-]*"
)
_write_lock = threading.Lock()


def mask_credentials(text: str) -> str:
    """Replace anything shaped like a Google credential with a marker."""
    return _CREDENTIAL.sub("[redacted]", text)


def user_ref(sub: str) -> str:
    """A short, stable, non-reversible reference to a user for logs (never the email)."""
    return hashlib.sha256(b"offline-access-user|" + sub.encode()).hexdigest()[:16]


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
