"""Seals tokens for storage: AES-256-GCM with keys kept in Secret Manager.

A sealed value records the id of the key that sealed it (the key's Secret Manager version
number), so keys can be rotated: new values use the configured primary version, old values open
with the version they name, read on demand. The user's `sub` and the field name are bound as
associated data, so a sealed token copied into another user's document, or into another field,
fails to open instead of yielding a token for the wrong account.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import Misconfigured, SealError
from .secrets import SecretSource

SEALED_FORMAT_VERSION = 1
_AAD_PREFIX = b"offline-access/v1|"


def _aad(sub: str, field: str) -> bytes:
    return _AAD_PREFIX + field.encode() + b"|" + sub.encode()


def parse_key(raw: bytes, version_name: str) -> bytes:
    """A 32-byte AES key from a secret's payload (base64 text, or the raw 32 bytes)."""
    if len(raw) == 32:
        return raw
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise Misconfigured(
            f"Secret version {version_name} is not a token-sealing key: it must hold 32 random "
            "bytes, base64-encoded (run `make rotate-sealing-key`)."
        )
    return key


class SealingKeys:
    """The primary sealing key and, on demand, older ones, by key id."""

    def __init__(self, secrets: SecretSource, primary_version_name: str) -> None:
        self._secrets = secrets
        self._primary = primary_version_name
        self._secret_name = primary_version_name.rsplit("/versions/", 1)[0]

    def primary(self) -> tuple[str, bytes]:
        value = self._secrets.get(self._primary)
        return value.version_id, parse_key(value.data, value.version_name)

    def by_id(self, key_id: str) -> bytes:
        if not (key_id.isascii() and key_id.isdigit()):
            raise SealError("sealed value names an invalid key id")
        value = self._secrets.get(f"{self._secret_name}/versions/{key_id}")
        return parse_key(value.data, value.version_name)


class TokenSealer:
    """Seals and opens token strings bound to a user and a field."""

    def __init__(self, keys: SealingKeys) -> None:
        self._keys = keys
        self._ciphers: dict[bytes, AESGCM] = {}

    def _cipher(self, key: bytes) -> AESGCM:
        cipher = self._ciphers.get(key)
        if cipher is None:
            cipher = self._ciphers[key] = AESGCM(key)
        return cipher

    def check_ready(self) -> None:
        """Load the primary key now, so that a missing key fails before any token exists."""
        self._keys.primary()

    def seal(self, plaintext: str, *, sub: str, field: str) -> dict[str, Any]:
        key_id, key = self._keys.primary()
        nonce = os.urandom(12)
        ciphertext = self._cipher(key).encrypt(nonce, plaintext.encode(), _aad(sub, field))
        return {
            "v": SEALED_FORMAT_VERSION,
            "key_id": key_id,
            "nonce": nonce,
            "ciphertext": ciphertext,
        }

    def open(self, sealed: Any, *, sub: str, field: str) -> str:
        if not isinstance(sealed, dict) or sealed.get("v") != SEALED_FORMAT_VERSION:
            raise SealError("not a sealed value of a known format")
        nonce, ciphertext, key_id = sealed.get("nonce"), sealed.get("ciphertext"), sealed.get("key_id")
        if not isinstance(nonce, bytes) or len(nonce) != 12 or not isinstance(ciphertext, bytes):
            raise SealError("sealed value is malformed")
        key = self._keys.by_id(str(key_id))
        try:
            return self._cipher(key).decrypt(nonce, ciphertext, _aad(sub, field)).decode()
        except InvalidTag:
            raise SealError("sealed value does not open for this user and field") from None
