"""Injected failures and latency, and the request counters tests assert on.

Faults are rules queued per path and served first-in, first-out: each answers up to `times`
matching requests with a status/body, extra latency (before the endpoint runs), a hang that ends
with the connection dropped before any answer (`timeout`), or a stalled answer: the status line,
the headers and the first `stall_after_bytes` bytes of the body go out, then the rest is held for
`hang_seconds` and the connection closed, or dripped one byte every `drip_interval_ms` (an
answer that never trips a per-read timeout). A fixed latency can be added before every
non-control answer (benchmarks). Counters count every served request, including faulted ones.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus

# Default bodies when a fault gives a status but no body: OAuth endpoints answer in the
# OAuth shape, Google APIs in the `{"error": {"code", "message", "status"}}` shape.
_OAUTH_PATHS = ("/token", "/revoke")
_OAUTH_ERRORS = {
    429: "rate_limit_exceeded",
    500: "internal_failure",
    502: "internal_failure",
    503: "temporarily_unavailable",
    504: "internal_failure",
}
_API_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass(slots=True)
class Fault:
    path: str
    status: int | None = None
    body: str | dict | list | None = None
    headers: dict[str, str] = field(default_factory=dict)
    latency_ms: int = 0
    timeout: bool = False
    hang_seconds: float = 30.0
    times: int = 1
    match: dict[str, str] = field(default_factory=dict)
    method: str | None = None
    stall_after_bytes: int | None = None
    drip_interval_ms: int | None = None

    @property
    def stalls(self) -> bool:
        return self.stall_after_bytes is not None or self.drip_interval_ms is not None

    @classmethod
    def from_json(cls, data: dict) -> Fault:
        path = data.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError("`path` must be a path starting with /")
        fault = cls(
            path=path,
            status=_opt_int(data.get("status")),
            body=data.get("body"),
            headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()},
            latency_ms=_opt_int(data.get("latency_ms")) or 0,
            timeout=bool(data.get("timeout", False)),
            hang_seconds=float(data.get("hang_seconds", 30.0)),
            times=_opt_int(data.get("times")) if data.get("times") is not None else 1,
            match={str(k): str(v) for k, v in (data.get("match") or {}).items()},
            method=(data.get("method") or None) and str(data["method"]).upper(),
            stall_after_bytes=_opt_int(data.get("stall_after_bytes")),
            drip_interval_ms=_opt_int(data.get("drip_interval_ms")),
        )
        if fault.times == 0 or fault.times < -1:
            raise ValueError("`times` must be positive, or -1 for until cleared")
        if fault.status is not None and not 100 <= fault.status <= 599:
            raise ValueError("`status` must be an HTTP status")
        if fault.latency_ms < 0 or fault.hang_seconds < 0:
            raise ValueError("`latency_ms` and `hang_seconds` must be >= 0")
        if fault.stall_after_bytes is not None and fault.stall_after_bytes < 0:
            raise ValueError("`stall_after_bytes` must be >= 0")
        if fault.drip_interval_ms is not None and fault.drip_interval_ms <= 0:
            raise ValueError("`drip_interval_ms` must be > 0")
        if fault.timeout and fault.stalls:
            raise ValueError("`timeout` sends nothing; `stall_after_bytes`/`drip_interval_ms` send part of an answer")
        return fault

    def matches(self, method: str, path: str, params: dict[str, str]) -> bool:
        if self.method and self.method != method:
            return False
        if self.path.endswith("*"):
            if not path.startswith(self.path[:-1]):
                return False
        elif self.path != path:
            return False
        return all(params.get(k) == v for k, v in self.match.items())

    def response_body(self) -> tuple[bytes, str]:
        """The body and its default Content-Type."""
        if isinstance(self.body, str):
            return self.body.encode(), "text/html; charset=UTF-8"
        if self.body is not None:
            return json.dumps(self.body).encode(), "application/json; charset=utf-8"
        status = self.status or 500
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        if self.path in _OAUTH_PATHS:
            error = _OAUTH_ERRORS.get(status, "server_error")
            payload: dict = {"error": error, "error_description": phrase}
        else:
            payload = {
                "error": {"code": status, "message": phrase, "status": _API_STATUS.get(status, "UNKNOWN")}
            }
        return json.dumps(payload).encode(), "application/json; charset=utf-8"

    def public(self) -> dict:
        return {
            "path": self.path,
            "status": self.status,
            "body": self.body,
            "headers": self.headers,
            "latency_ms": self.latency_ms,
            "timeout": self.timeout,
            "hang_seconds": self.hang_seconds,
            "times": self.times,
            "match": self.match,
            "method": self.method,
            "stall_after_bytes": self.stall_after_bytes,
            "drip_interval_ms": self.drip_interval_ms,
        }

    def stalled_body(self, body: bytes, stopping: threading.Event) -> Iterator[bytes]:
        """The body as a stalled answer sends it (see the module doc); ends early on `stopping`."""
        sent = self.stall_after_bytes or 0
        yield body[:sent]
        if self.drip_interval_ms is None:
            stopping.wait(self.hang_seconds)
            return  # the rest never comes: the server closes the connection
        for index in range(sent, len(body)):
            if stopping.wait(self.drip_interval_ms / 1000):
                return
            yield body[index:index + 1]


def _opt_int(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


class FaultInjector:
    """Queued fault rules and the fixed per-request latency."""

    def __init__(self, latency_ms: int = 0) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.default_latency_ms = latency_ms
        self.latency_ms = latency_ms

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        self.clear()
        self.latency_ms = self.default_latency_ms

    def list(self) -> list[dict]:
        with self._lock:
            return [f.public() for f in self._faults]

    def has_any(self) -> bool:
        return bool(self._faults)

    def take(self, method: str, path: str, params: dict[str, str]) -> Fault | None:
        """Consumes one use of the first rule matching this request."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.matches(method, path, params):
                    if fault.times > 0:
                        fault.times -= 1
                        if fault.times == 0:
                            del self._faults[index]
                    return fault
        return None


class Counters:
    """Request counts by "METHOD /path", token grants by type, successful refreshes by sub."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._requests: Counter[str] = Counter()
            self._grants: Counter[str] = Counter()
            self._refresh_by_sub: Counter[str] = Counter()
            self._faults_served = 0

    def request(self, method: str, path: str) -> None:
        with self._lock:
            self._requests[f"{method} {path}"] += 1

    def grant(self, grant_type: str) -> None:
        with self._lock:
            self._grants[grant_type] += 1

    def refreshed(self, sub: str) -> None:
        with self._lock:
            self._refresh_by_sub[sub] += 1

    def fault_served(self) -> None:
        with self._lock:
            self._faults_served += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "requests": dict(self._requests),
                "token_grants": dict(self._grants),
                "refresh_by_sub": dict(self._refresh_by_sub),
                "faults_served": self._faults_served,
            }
