"""RISC event streams: one per project, configured through `stream:update`, and their rules.

A stream names the receiver URL (push delivery), the event types requested and whether it is
enabled. `check_update` applies Google's checks to a `stream:update` body and returns the
configuration or raises `RiscApiError` with Google's status and message (google-oauth.md §5 and
Google's RISC error table). `RiscSettings` holds what the local Google lets tests change:
whether plain-HTTP receivers are allowed, the authorized domains, and the redelivery policy.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .risc_events import EVENT_TYPES

PUSH_DELIVERY = "https://schemas.openid.net/secevent/risc/delivery-method/push"
STATUSES = ("enabled", "disabled")
LOOPBACK_NAMES = ("localhost",)


class RiscApiError(Exception):
    """An answer of the RISC management API other than 200: status and Google's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class RiscSettings:
    """Local choices. Defaults: HTTP receivers only on loopback, no domain check, 5 attempts
    with backoff 0.2 s doubling up to 2 s, 5 s per attempt."""

    # Google refuses every http:// receiver. "loopback" also allows http://127.0.0.1, ::1 and
    # localhost, so a test's receiver needs no TLS; True allows any http:// host (containers);
    # False is Google's rule.
    allow_http_receivers: str | bool = "loopback"
    # The projects' authorized domains: a receiver's host must be one of them or a subdomain
    # (loopback hosts are exempt). None: not checked.
    authorized_domains: list[str] | None = None
    max_attempts: int = 5
    backoff_seconds: float = 0.2
    max_backoff_seconds: float = 2.0
    timeout_seconds: float = 5.0

    def public(self) -> dict:
        return {
            "allow_http_receivers": self.allow_http_receivers,
            "authorized_domains": self.authorized_domains,
            "max_attempts": self.max_attempts,
            "backoff_seconds": self.backoff_seconds,
            "max_backoff_seconds": self.max_backoff_seconds,
            "timeout_seconds": self.timeout_seconds,
        }

    def update(self, changes: dict) -> None:
        """Applies the changes after checking all of them (ValueError: nothing changed)."""
        checked: dict = {}
        for name, value in changes.items():
            if name == "allow_http_receivers":
                if not (value == "loopback" or isinstance(value, bool)):
                    raise ValueError('`allow_http_receivers` must be "loopback", true or false')
            elif name == "authorized_domains":
                if value is not None and (not isinstance(value, list)
                                          or not all(isinstance(d, str) and d for d in value)):
                    raise ValueError("`authorized_domains` must be a list of domains, or null")
                value = [d.lower().strip(".") for d in value] if value is not None else None
            elif name == "max_attempts":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError("`max_attempts` must be an integer >= 1")
            elif name in ("backoff_seconds", "max_backoff_seconds", "timeout_seconds"):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"`{name}` must be a number >= 0")
                if name == "timeout_seconds" and value == 0:
                    raise ValueError("`timeout_seconds` must be > 0")
                value = float(value)
            else:
                raise ValueError(f"unknown RISC setting `{name}`")
            checked[name] = value
        for name, value in checked.items():
            setattr(self, name, value)

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt."""
        return min(self.backoff_seconds * 2 ** (attempts - 1), self.max_backoff_seconds)


@dataclass
class Stream:
    project_id: str
    url: str
    events_requested: list[str]
    delivery_method: str = PUSH_DELIVERY
    status: str = "enabled"
    events_delivered: list[str] = field(default_factory=list)

    def config(self) -> dict:
        """The stream configuration as `GET /v1beta/stream` answers it."""
        return {
            "delivery": {"delivery_method": self.delivery_method, "url": self.url},
            "events_requested": list(self.events_requested),
            "events_delivered": list(self.events_delivered),
        }


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_receiver_url(url: object, settings: RiscSettings) -> str:
    """Google's rules for a delivery URL, with the local HTTP allowance. Raises RiscApiError."""
    if not isinstance(url, str) or not url:
        raise RiscApiError(400, "Stream configuration must contain delivery.url field.")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise RiscApiError(403, "The delivery endpoint must be an HTTPS URL.")
    loopback = _is_loopback(host)
    if parts.scheme == "http":
        allowed = settings.allow_http_receivers
        if not (allowed is True or (allowed == "loopback" and loopback)):
            raise RiscApiError(403, "The delivery endpoint must be an HTTPS URL.")
    domains = settings.authorized_domains
    if domains is not None and not loopback and not any(host == d or host.endswith("." + d) for d in domains):
        raise RiscApiError(403, "The delivery endpoint does not belong to any of your project's domains.")
    return url


def check_update(body: object, settings: RiscSettings) -> tuple[str, str, list[str]]:
    """Validates a `stream:update` body: (delivery method, url, events requested)."""
    if not isinstance(body, dict):
        raise RiscApiError(400, "Stream configuration must contain delivery field.")
    delivery = body.get("delivery")
    if not isinstance(delivery, dict):
        raise RiscApiError(400, "Stream configuration must contain delivery field.")
    method = delivery.get("delivery_method")
    if not isinstance(method, str) or not method:
        raise RiscApiError(400, "Stream configuration must contain delivery.delivery_method field.")
    if method != PUSH_DELIVERY:
        raise RiscApiError(400, f"Unsupported delivery method {method}: only {PUSH_DELIVERY} is supported.")
    url = check_receiver_url(delivery.get("url"), settings)
    events = body.get("events_requested")
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise RiscApiError(400, "Stream configuration must contain events_requested field.")
    return method, url, list(dict.fromkeys(events))


class StreamRegistry:
    """The RISC stream of each project. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, Stream] = {}

    def reset(self) -> None:
        with self._lock:
            self._streams.clear()

    def get(self, project_id: str) -> Stream | None:
        with self._lock:
            stream = self._streams.get(project_id)
            return dataclasses.replace(stream) if stream else None

    def update(self, project_id: str, method: str, url: str, events_requested: list[str],
               status: str | None = None) -> Stream:
        """Creates (enabled) or replaces the configuration; an update keeps the status."""
        supported = set(EVENT_TYPES.values())
        delivered = [e for e in events_requested if e in supported]
        with self._lock:
            current = self._streams.get(project_id)
            stream = Stream(
                project_id, url, events_requested, method,
                status or (current.status if current else "enabled"), delivered,
            )
            self._streams[project_id] = stream
            return dataclasses.replace(stream)

    def set_status(self, project_id: str, status: str) -> Stream:
        """Raises RiscApiError: 404 without a configuration, 403 for an unknown status."""
        if status not in STATUSES:
            raise RiscApiError(403, "Unsupported status.")
        with self._lock:
            stream = self._streams.get(project_id)
            if stream is None:
                raise RiscApiError(404, "Project has no existing RISC configuration, cannot update status.")
            stream.status = status
            return dataclasses.replace(stream)

    def delete(self, project_id: str) -> bool:
        with self._lock:
            return self._streams.pop(project_id, None) is not None
