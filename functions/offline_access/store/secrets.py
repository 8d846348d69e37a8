"""Reads secrets (the OAuth client secret, the sealing keys, the log key) from Secret Manager.

Each secret version is read once per instance and then served from memory: Secret Manager is
called at most once per version for the life of the instance, and never on a warm request. The
payload's CRC32C is checked. Setting `SECRET_MANAGER_EMULATOR_HOST=host:port` points the same
client at a local gRPC server over an insecure channel.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from google.api_core import exceptions as api_exceptions
from google.cloud import secretmanager_v1
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)

from ..errors import Misconfigured, SecretVersionGone, Unavailable
from .cloud_retry import bounded_retry

SECRET_MANAGER_EMULATOR_HOST = "SECRET_MANAGER_EMULATOR_HOST"
_TIMEOUT_SECONDS = 5.0


def random_key(raw: bytes, version_name: str, *, what: str, fix: str = "") -> bytes:
    """A 32-byte key from a secret's payload: 32 random bytes, base64-encoded.

    Raises:
        Misconfigured: anything else (a passphrase of 32 characters is not a key); the message
            names the version, what it should hold (`what`) and how to make one (`fix`).
    """
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise Misconfigured(f"Secret version {version_name} is not {what}: it must hold 32 random "
                            f"bytes, base64-encoded{fix}.")
    return key


def make_client(
    environ: Mapping[str, str] = os.environ,
) -> secretmanager_v1.SecretManagerServiceClient:
    """A Secret Manager client for production, or for the local server named in the environment."""
    host_port = environ.get(SECRET_MANAGER_EMULATOR_HOST, "").strip()
    if not host_port:
        return secretmanager_v1.SecretManagerServiceClient()
    channel = grpc.insecure_channel(host_port)
    transport = SecretManagerServiceGrpcTransport(channel=channel)
    return secretmanager_v1.SecretManagerServiceClient(transport=transport)


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli), as Secret Manager computes `data_crc32c`."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


@dataclass(frozen=True)
class SecretValue:
    """A secret's bytes and the version they came from (resolved when `latest` was asked)."""

    data: bytes
    version_name: str

    @property
    def version_id(self) -> str:
        return self.version_name.rsplit("/", 1)[-1]

    def __repr__(self) -> str:  # never print the value
        return f"SecretValue(version_name={self.version_name!r}, data=<{len(self.data)} bytes>)"


class SecretSource:
    """Reads secret versions once per instance and keeps them in memory."""

    def __init__(self, client: secretmanager_v1.SecretManagerServiceClient) -> None:
        self._client = client
        self._cache: dict[str, SecretValue] = {}
        self._lock = threading.Lock()
        self._readers: dict[str, threading.Lock] = {}

    def is_cached(self, version_name: str) -> bool:
        return version_name in self._cache

    def get(self, version_name: str) -> SecretValue:
        """The secret at `version_name` (`.../versions/N` or `.../versions/latest`).

        Raises:
            Unavailable: Secret Manager is down or timed out (the request may be retried).
            SecretVersionGone: the version (or its secret) does not exist, or is disabled or
                destroyed (a `Misconfigured`).
            Misconfigured: the function may not read it.
        """
        cached = self._cache.get(version_name)
        if cached is not None:
            return cached
        # One reader per version: concurrent cold requests wait for it instead of all calling
        # out, while different secrets (the prefetch reads three) are read side by side.
        with self._lock:
            reader = self._readers.setdefault(version_name, threading.Lock())
        with reader:
            cached = self._cache.get(version_name)
            if cached is None:
                cached = self._access(version_name)
                with self._lock:
                    self._cache[version_name] = cached
                    self._cache.setdefault(cached.version_name, cached)
            return cached

    def refresh(self, version_name: str) -> SecretValue:
        """Read `version_name` again (a `latest` that may have moved) and keep the new value.

        Raises: as `get`; the value already kept stays when the read fails.
        """
        value = self._access(version_name)
        with self._lock:
            self._cache[version_name] = value
            self._cache.setdefault(value.version_name, value)
        return value

    def _access(self, version_name: str) -> SecretValue:
        retry = bounded_retry(_TIMEOUT_SECONDS)
        try:
            response = self._client.access_secret_version(
                request={"name": version_name}, retry=retry, timeout=_TIMEOUT_SECONDS
            )
        except (api_exceptions.NotFound, api_exceptions.FailedPrecondition) as exc:
            raise SecretVersionGone(
                f"Secret version {version_name} does not exist or is disabled: "
                "add a version (see the README's deployment guide) or fix the configured name.",
                retired=isinstance(exc, api_exceptions.FailedPrecondition),
            ) from exc
        except api_exceptions.PermissionDenied as exc:
            raise Misconfigured(
                f"The function's service account may not access {version_name}: "
                "grant it roles/secretmanager.secretAccessor on that secret."
            ) from exc
        except (api_exceptions.GoogleAPICallError, api_exceptions.RetryError) as exc:
            raise Unavailable(
                "A service the server depends on is unavailable. Try again shortly.",
                dependency="secret_manager",
            ) from exc
        data = bytes(response.payload.data)
        expected = response.payload.data_crc32c
        if expected is not None and expected != crc32c(data):
            raise Unavailable(
                "A service the server depends on returned corrupted data. Try again shortly.",
                dependency="secret_manager",
            )
        return SecretValue(data=data, version_name=response.name or version_name)
