"""Configuration of every function, read once per instance from the environment.

Every setting is named here, with its default; a missing or malformed required setting fails
fast with a message that says which variable to set. Secrets are not configuration: only the
names of their Secret Manager versions are.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ConfigError
from .scopes import DRIVE_APPDATA_SCOPE

DEFAULT_SCOPES = ("openid", "email", "profile", DRIVE_APPDATA_SCOPE)

_SECRET_VERSION = re.compile(r"projects/[^/]+/secrets/[^/]+/versions/(latest|[1-9][0-9]*)")
_SECRET = re.compile(r"projects/[^/]+/secrets/[^/]+")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?")
_URL = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[^\s]*)?")
_EMAIL = re.compile(r"[^@\s,]+@[^@\s,]+")
# CloudEvents `type`s are prefixed with a reverse-DNS name (the spec's recommendation).
DEFAULT_EVENT_TYPE_PREFIX = "dev.offline-access"
_REVERSE_DNS = re.compile(r"[a-z0-9][a-z0-9\-]*(\.[a-z0-9][a-z0-9\-]*)+")
DAY = 86400
_TOPIC = re.compile(r"projects/[a-z][a-z0-9\-.:]{0,62}/topics/[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")

# How the scheduled job reaches its users (`JOB_MODE`): all in the scheduled call, or fanned out
# through Pub/Sub to workers.
MODE_INLINE = "inline"
MODE_PUBSUB = "pubsub"


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"Set the environment variable {name}.")
    return value


def _secret_version(env: Mapping[str, str], name: str) -> str:
    value = _required(env, name)
    if not _SECRET_VERSION.fullmatch(value):
        raise ConfigError(
            f"{name} must look like projects/PROJECT/secrets/NAME/versions/VERSION "
            "(a version number or 'latest')."
        )
    return value


def _optional_secret_version(env: Mapping[str, str], name: str) -> str | None:
    return _secret_version(env, name) if env.get(name, "").strip() else None


def _optional_secret(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if not _SECRET.fullmatch(value):
        raise ConfigError(f"{name} must look like projects/PROJECT/secrets/NAME (no version).")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1,
         maximum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}.") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}.")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}.")
    return value


def _mode(env: Mapping[str, str]) -> str:
    mode = env.get("JOB_MODE", "").strip().lower() or MODE_INLINE
    if mode not in (MODE_INLINE, MODE_PUBSUB):
        raise ConfigError(f"JOB_MODE must be {MODE_INLINE} or {MODE_PUBSUB}, not {mode!r}.")
    return mode


def _topic(env: Mapping[str, str], name: str, project: str, *,
           required_because: str | None = None) -> str | None:
    """A Pub/Sub topic setting as a full topic name (a topic id means one of `project`)."""
    raw = env.get(name, "").strip()
    if not raw:
        if required_because:
            raise ConfigError(f"Set {name} to a Pub/Sub topic ({required_because}).")
        return None
    topic = raw if raw.startswith("projects/") else f"projects/{project}/topics/{raw}"
    if not _TOPIC.fullmatch(topic):
        raise ConfigError(f"{name} must be a topic id or projects/PROJECT/topics/TOPIC, not {raw!r}.")
    return topic


def _list(env: Mapping[str, str], name: str, sep: str = ",") -> tuple[str, ...]:
    raw = env.get(name, "")
    return tuple(item.strip() for item in raw.split(sep) if item.strip())


def _bool(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}.")


def _url(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    if value and not _URL.fullmatch(value):
        raise ConfigError(f"{name} must be an http:// or https:// URL, not {value!r}.")
    return value or None


def _urls(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    urls = _list(env, name)
    for url in urls:
        if not _URL.fullmatch(url):
            raise ConfigError(f"{name} entry {url!r} is not an http:// or https:// URL.")
    return urls


def _emails(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    emails = tuple(e.lower() for e in _list(env, name))
    for email in emails:
        if not _EMAIL.fullmatch(email):
            raise ConfigError(f"{name} entry {email!r} is not an email address.")
    return emails


def _event_type_prefix(env: Mapping[str, str]) -> str:
    value = env.get("EVENT_TYPE_PREFIX", "").strip() or DEFAULT_EVENT_TYPE_PREFIX
    if not _REVERSE_DNS.fullmatch(value):
        raise ConfigError("EVENT_TYPE_PREFIX must be a reverse-DNS name such as "
                          f"com.example.offline-access, not {value!r}.")
    return value


def _origins(env: Mapping[str, str]) -> tuple[str, ...]:
    origins = _list(env, "ALLOWED_ORIGINS")
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise ConfigError(
                f"ALLOWED_ORIGINS entry {origin!r} is not an origin "
                "(scheme://host[:port], no path, no trailing slash)."
            )
    return origins


@dataclass(frozen=True)
class Config:
    """Settings shared by every function (each reads only what it needs)."""

    project: str
    client_id: str
    client_secret_version: str
    # The primary public key (`store.sealing`): every function that seals reads it.
    sealing_public_key_version: str
    # The key of the logs' user references (`structured_log.UserRefs`).
    log_key_version: str
    allowed_origins: tuple[str, ...]
    redirect_uri: str
    scopes: tuple[str, ...]
    allowed_hosted_domains: tuple[str, ...]
    users_collection: str
    offline_tasks: tuple[str, ...]
    job_time_budget_seconds: int
    job_concurrency: int
    job_page_size: int
    job_interval_seconds: int
    job_claim_ttl_seconds: int
    http_timeout_seconds: float
    # The OAuth consent screen is in Testing: Google expires refresh tokens after 7 days.
    oauth_app_testing_mode: bool = False
    # Sessions (the `__session` cookie) of the public functions; the key is read only by them.
    session_key_version: str | None = None
    session_lifetime_seconds: int = 14 * DAY
    sign_in_attempt_seconds: int = 600
    # The account API asks this internal function to revoke and delete a user.
    disconnect_function_url: str | None = None
    # How often Cloud Scheduler runs the job: the longest a pending disconnect waits.
    job_schedule_period_seconds: int = 900
    # Only in functions that open tokens: the private keys' secret (versions by key id), and a
    # version of the first releases' AES secret while tokens sealed with it remain.
    sealing_private_keys_secret: str | None = None
    legacy_sealing_key_version: str | None = None
    # How long reading a request body may take before the answer is 408.
    request_body_timeout_seconds: float = 10.0
    # Fan-out (`offline.dispatch`, `offline.worker`): the mode, the work topic, users per message,
    # and the push subscription's maximum delivery attempts (the worker knows its last one).
    job_mode: str = MODE_INLINE
    job_work_topic: str | None = None
    job_message_users: int = 50
    job_max_delivery_attempts: int = 10
    # Cross-Account Protection: the key of the stored refresh-token identifiers
    # (`store.refresh_token_ids`; unset: none are stored), and the project's other OAuth
    # clients, whose security events the receiver also accepts (`aud`).
    refresh_token_id_key_version: str | None = None
    risc_client_ids: tuple[str, ...] = ()

    @property
    def risc_audiences(self) -> tuple[str, ...]:
        """The client ids a security event token may be addressed to."""
        return (self.client_id, *(c for c in self.risc_client_ids if c != self.client_id))
    # The token API: the audiences its callers' ID tokens must name (its own URLs), and the
    # service accounts it admits (Cloud Run IAM admits the same ones before the code runs).
    token_api_audiences: tuple[str, ...] = ()
    token_api_allowed_callers: tuple[str, ...] = ()
    # Lifecycle events: the Pub/Sub topic (None: no events, no outbox writes) and the
    # reverse-DNS prefix of their CloudEvents types.
    events_topic: str | None = None
    event_type_prefix: str = DEFAULT_EVENT_TYPE_PREFIX

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Config:
        scopes = tuple(env.get("OAUTH_SCOPES", "").split()) or DEFAULT_SCOPES
        project = _required(env, "GOOGLE_CLOUD_PROJECT")
        mode = _mode(env)
        return cls(
            project=project,
            client_id=_required(env, "OAUTH_CLIENT_ID"),
            client_secret_version=_secret_version(env, "OAUTH_CLIENT_SECRET_VERSION"),
            sealing_public_key_version=_secret_version(env, "TOKEN_SEALING_PUBLIC_KEY_VERSION"),
            log_key_version=_secret_version(env, "LOG_USER_REF_KEY_VERSION"),
            sealing_private_keys_secret=_optional_secret(env, "TOKEN_SEALING_PRIVATE_KEYS_SECRET"),
            legacy_sealing_key_version=_optional_secret_version(env, "TOKEN_SEALING_KEY_VERSION"),
            request_body_timeout_seconds=float(_int(env, "REQUEST_BODY_TIMEOUT_SECONDS", 10)),
            allowed_origins=_origins(env),
            redirect_uri=env.get("OAUTH_REDIRECT_URI", "").strip() or "postmessage",
            scopes=scopes,
            allowed_hosted_domains=tuple(d.lower() for d in _list(env, "ALLOWED_HOSTED_DOMAINS")),
            users_collection=env.get("USERS_COLLECTION", "").strip() or "users",
            offline_tasks=_list(env, "OFFLINE_TASKS") or ("drive_appdata", "userinfo"),
            job_time_budget_seconds=_int(env, "JOB_TIME_BUDGET_SECONDS", 300),
            job_concurrency=_int(env, "JOB_CONCURRENCY", 32),
            job_page_size=_int(env, "JOB_PAGE_SIZE", 200),
            job_interval_seconds=_int(env, "JOB_INTERVAL_SECONDS", 3600),
            job_claim_ttl_seconds=_int(env, "JOB_CLAIM_TTL_SECONDS", 600),
            http_timeout_seconds=float(_int(env, "HTTP_TIMEOUT_SECONDS", 10)),
            oauth_app_testing_mode=_bool(env, "OAUTH_APP_TESTING_MODE"),
            session_key_version=_optional_secret_version(env, "SESSION_KEY_VERSION"),
            session_lifetime_seconds=_int(env, "SESSION_LIFETIME_SECONDS", 14 * DAY, minimum=60),
            sign_in_attempt_seconds=_int(env, "SIGN_IN_ATTEMPT_SECONDS", 600, minimum=30),
            disconnect_function_url=_url(env, "DISCONNECT_FUNCTION_URL"),
            job_schedule_period_seconds=_int(env, "JOB_SCHEDULE_PERIOD_SECONDS", 900, minimum=60),
            job_mode=mode,
            job_work_topic=_topic(env, "JOB_WORK_TOPIC", project, required_because=(
                "the topic of the job's work: JOB_MODE is pubsub") if mode == MODE_PUBSUB else None),
            # A BatchWrite takes 500 writes: a message's users are claimed in one.
            job_message_users=_int(env, "JOB_MESSAGE_USERS", 50, maximum=500),
            # Pub/Sub's dead-letter policy allows 5 to 100 attempts.
            job_max_delivery_attempts=_int(env, "JOB_MAX_DELIVERY_ATTEMPTS", 10, minimum=5,
                                           maximum=100),
            refresh_token_id_key_version=_optional_secret_version(env, "REFRESH_TOKEN_ID_KEY_VERSION"),
            risc_client_ids=_list(env, "RISC_CLIENT_IDS"),
            token_api_audiences=_urls(env, "TOKEN_API_AUDIENCES"),
            token_api_allowed_callers=_emails(env, "TOKEN_API_ALLOWED_CALLERS"),
            events_topic=_topic(env, "EVENTS_TOPIC", project),
            event_type_prefix=_event_type_prefix(env),
        )
