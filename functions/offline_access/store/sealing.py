"""Seals tokens for storage: HPKE (RFC 9180) to a public key; only holders of the private key open.

A sealed value (`v: 2`) is `{"v": 2, "key_id": "N", "ct": <HPKE enc || ciphertext>}`. Sealing
needs only the primary *public* key, so the internet-facing functions, which never open tokens,
hold no key that could. Opening needs the *private* key the value names, which only the
functions that use tokens (the scheduled job, later the token API) may read.

Keys live in Secret Manager as two secrets, one version per key pair:

- the private-keys secret: version N holds key pair N's private key. **The key id is that
  version number**, so opening a value reads exactly one version, by name (`secretAccessor` on
  one version; no list permission);
- the public-keys secret: each version holds one public key *and the key id it belongs to*.
  The primary is the configured public version (`latest` or a number). Rotation adds the
  private version first and then the public one naming it, so a public key can never point at
  a private key that does not exist, and the two secrets' version numbers need not agree.

The user's `sub` and the field name are bound through HPKE's `info`, so a sealed token copied
into another user's document, or into another field, fails to open instead of yielding a token
for the wrong account.

Values sealed by the first releases (`v: 1`, AES-256-GCM under `TOKEN_SEALING_KEY_VERSION`'s
secret, key id = its version number) still open where that secret is configured (the job), and
the job re-seals them under the primary. Nothing writes `v: 1` any more.

A key version that is gone (disabled, destroyed, not found) makes the values it sealed
unreadable (`SealingKeyGone`), remembered per instance so that Secret Manager is asked once;
the primary key missing is a misconfiguration.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import Misconfigured, OfflineAccessError, SealError, SealingKeyGone, SecretVersionGone
from .secrets import SecretSource, random_key

SEALED_V1 = 1  # AES-256-GCM: opened for migration, never written
SEALED_V2 = 2  # HPKE
PUBLIC_KEY_TYPE = "offline-access-sealing-public-key"
PRIVATE_KEY_TYPE = "offline-access-sealing-private-key"
# Post-quantum hybrid by default: refresh tokens live for months, long enough for a
# harvest-now-decrypt-later attacker to matter (README, "Token sealing" has the figures).
DEFAULT_SUITE = "MLKEM768_X25519"
# With `.../versions/latest`, an instance re-reads the primary public key this often, so that
# every instance seals with a rotated key within this time.
PUBLIC_KEY_REFRESH_SECONDS = 600.0
_INFO_PREFIX = b"offline-access/v2|"
_AAD_PREFIX_V1 = b"offline-access/v1|"

_HpkePublic = x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey
_HpkePrivate = x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey


@dataclass(frozen=True)
class _SuiteSpec:
    """One HPKE suite: its algorithms, and how its keys are written as raw bytes."""

    suite: hpke.Suite
    private_length: int
    public_length: int
    private_key: Callable[[bytes], _HpkePrivate]
    public_key: Callable[[bytes], _HpkePublic]
    public_of: Callable[[bytes], bytes]


def _hybrid_private(raw: bytes) -> hpke.MLKEM768X25519PrivateKey:
    return hpke.MLKEM768X25519PrivateKey(
        mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:64]),
        x25519.X25519PrivateKey.from_private_bytes(raw[64:]),
    )


def _hybrid_public(raw: bytes) -> hpke.MLKEM768X25519PublicKey:
    return hpke.MLKEM768X25519PublicKey(
        mlkem.MLKEM768PublicKey.from_public_bytes(raw[:1184]),
        x25519.X25519PublicKey.from_public_bytes(raw[1184:]),
    )


def _hybrid_public_of(raw: bytes) -> bytes:
    return (mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:64]).public_key().public_bytes_raw()
            + x25519.X25519PrivateKey.from_private_bytes(raw[64:]).public_key().public_bytes_raw())


def _x25519_public_of(raw: bytes) -> bytes:
    return x25519.X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()


SUITES: dict[str, _SuiteSpec] = {
    # ML-KEM-768 seed (64 bytes) + X25519 private key (32); public: 1,184 + 32 bytes.
    "MLKEM768_X25519": _SuiteSpec(
        hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
        96, 1216, _hybrid_private, _hybrid_public, _hybrid_public_of),
    "X25519": _SuiteSpec(
        hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
        32, 32, x25519.X25519PrivateKey.from_private_bytes,
        x25519.X25519PublicKey.from_public_bytes, _x25519_public_of),
}


def _info(sub: str, field: str) -> bytes:
    return _INFO_PREFIX + field.encode() + b"|" + sub.encode()


def _aad_v1(sub: str, field: str) -> bytes:
    return _AAD_PREFIX_V1 + field.encode() + b"|" + sub.encode()


# -- Key pairs and their Secret Manager payloads --


def generate_key_pair(suite: str = DEFAULT_SUITE) -> tuple[bytes, bytes]:
    """A new key pair of `suite`, as raw (private, public) bytes."""
    if suite == "MLKEM768_X25519":
        private = (mlkem.MLKEM768PrivateKey.generate().private_bytes_raw()
                   + x25519.X25519PrivateKey.generate().private_bytes_raw())
    elif suite == "X25519":
        private = x25519.X25519PrivateKey.generate().private_bytes_raw()
    else:
        raise ValueError(f"unknown suite {suite!r} (known: {', '.join(SUITES)})")
    return private, SUITES[suite].public_of(private)


def private_key_payload(suite: str, private: bytes) -> bytes:
    """The private-keys secret's version payload for one key pair."""
    return json.dumps({"type": PRIVATE_KEY_TYPE, "suite": suite,
                       "private_key": base64.b64encode(private).decode()}).encode()


def public_key_payload(key_id: str, suite: str, public: bytes) -> bytes:
    """The public-keys secret's version payload: the public key and the key id it belongs to."""
    return json.dumps({"type": PUBLIC_KEY_TYPE, "key_id": key_id, "suite": suite,
                       "public_key": base64.b64encode(public).decode()}).encode()


@dataclass(frozen=True)
class PublicKey:
    """The primary public key: what `seal` needs."""

    key_id: str
    suite: str
    key: _HpkePublic


@dataclass(frozen=True)
class PrivateKey:
    """One private key: what `open` needs for the values naming `key_id`."""

    key_id: str
    suite: str
    key: _HpkePrivate
    public: bytes


def _key_document(raw: bytes, version_name: str, kind: str, fields: tuple[str, ...]) -> dict[str, str]:
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        document = None
    if (not isinstance(document, dict) or document.get("type") != kind
            or not all(isinstance(document.get(name), str) for name in fields)):
        raise Misconfigured(
            f"Secret version {version_name} is not a token-sealing {kind.rsplit('-', 2)[-2]} key "
            "(run `make rotate-sealing-key`, which writes both halves of a key pair)."
        )
    return {name: document[name] for name in fields}


def _key_bytes(text: str, length: int, version_name: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != length:
        raise Misconfigured(
            f"Secret version {version_name} holds a key of the wrong length for its suite "
            "(run `make rotate-sealing-key`)."
        )
    return raw


def _suite(name: str, version_name: str) -> _SuiteSpec:
    spec = SUITES.get(name)
    if spec is None:
        raise Misconfigured(f"Secret version {version_name} names an unknown HPKE suite {name!r}.")
    return spec


def parse_public_key(raw: bytes, version_name: str) -> PublicKey:
    """The public key in a public-keys secret version.

    Raises:
        Misconfigured: the payload is not a public key as `make rotate-sealing-key` writes it.
    """
    doc = _key_document(raw, version_name, PUBLIC_KEY_TYPE, ("key_id", "suite", "public_key"))
    if not (doc["key_id"].isascii() and doc["key_id"].isdigit()):
        raise Misconfigured(f"Secret version {version_name} names an invalid key id.")
    spec = _suite(doc["suite"], version_name)
    public = _key_bytes(doc["public_key"], spec.public_length, version_name)
    try:
        key = spec.public_key(public)
    except ValueError:
        raise Misconfigured(f"Secret version {version_name} holds an invalid public key.") from None
    return PublicKey(doc["key_id"], doc["suite"], key)


def parse_private_key(raw: bytes, version_name: str, key_id: str) -> PrivateKey:
    """The private key in a private-keys secret version.

    Raises:
        Misconfigured: the payload is not a private key as `make rotate-sealing-key` writes it.
    """
    doc = _key_document(raw, version_name, PRIVATE_KEY_TYPE, ("suite", "private_key"))
    spec = _suite(doc["suite"], version_name)
    private = _key_bytes(doc["private_key"], spec.private_length, version_name)
    try:
        key = spec.private_key(private)
        public = spec.public_of(private)
    except ValueError:
        raise Misconfigured(f"Secret version {version_name} holds an invalid private key.") from None
    return PrivateKey(key_id, doc["suite"], key, public)


def parse_aes_key(raw: bytes, version_name: str) -> bytes:
    """A legacy 32-byte AES key, as the first releases wrote it (`secrets.random_key`)."""
    return random_key(raw, version_name, what="a token-sealing key")


def key_id_of(sealed: Any) -> tuple[int, str] | None:
    """`(format version, key id)` of a sealed value, or None when it is not one."""
    if isinstance(sealed, dict) and sealed.get("v") in (SEALED_V1, SEALED_V2):
        key_id = sealed.get("key_id")
        if isinstance(key_id, str):
            return sealed["v"], key_id
    return None


def _version_of(secret: str, key_id: str) -> str:
    if not (key_id.isascii() and key_id.isdigit() and key_id != "0"):
        raise SealError("sealed value names an invalid key id")
    return f"{secret}/versions/{key_id}"


class SealingKeys:
    """The primary public key, and the private (and legacy) keys this function may read.

    Args:
        secrets: where the keys are read, once per version per instance.
        public_key_version: the primary's public-keys secret version (`latest` or a number).
        private_keys_secret: `projects/P/secrets/S` of the private keys; None in a function
            that must not open tokens.
        legacy_key_version: a version of the first releases' AES secret (`v: 1` values), or None.
    """

    def __init__(
        self,
        secrets: SecretSource,
        public_key_version: str,
        *,
        private_keys_secret: str | None = None,
        legacy_key_version: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secrets = secrets
        self._public_version = public_key_version
        self._private_secret = private_keys_secret
        self._legacy_version = legacy_key_version
        self._legacy_secret = legacy_key_version.rsplit("/versions/", 1)[0] if legacy_key_version else None
        self._clock = clock
        self._follows_latest = public_key_version.endswith("/versions/latest")
        self._primary: PublicKey | None = None
        self._primary_read_at = 0.0
        self._refreshing = threading.Lock()
        self._private: dict[str, PrivateKey] = {}
        self._legacy: dict[str, bytes] = {}
        self._gone: set[tuple[int, str]] = set()
        # One reader of an uncached key at a time: users of one retired key, worked on side by
        # side, cost Secret Manager one call, not one each.
        self._loading = threading.Lock()

    @property
    def can_open(self) -> bool:
        return self._private_secret is not None

    def primary(self) -> PublicKey:
        """The primary public key; re-read now and then when the configuration follows `latest`.

        Raises:
            Unavailable, Misconfigured: the key cannot be read (first read only: a failed re-read
                keeps the key already known), or is not a public key.
        """
        primary = self._primary
        if primary is None:
            primary = self._primary = parse_public_key(*self._read(self._public_version))
            self._primary_read_at = self._clock()
        elif (self._follows_latest
              and self._clock() - self._primary_read_at >= PUBLIC_KEY_REFRESH_SECONDS
              and self._refreshing.acquire(blocking=False)):
            try:
                value = self._secrets.refresh(self._public_version)
                primary = self._primary = parse_public_key(value.data, value.version_name)
            except OfflineAccessError as exc:  # keep sealing with the key already known
                logging.getLogger(__name__).warning(
                    "re-reading the primary sealing key failed (%s); still sealing with key %s",
                    exc.reason, primary.key_id)
            finally:
                self._primary_read_at = self._clock()
                self._refreshing.release()
        return primary

    def _read(self, version_name: str) -> tuple[bytes, str]:
        value = self._secrets.get(version_name)
        return value.data, value.version_name

    def require_opening(self) -> None:
        """Raises `Misconfigured` in a function that holds no private keys."""
        if self._private_secret is None:
            raise Misconfigured(
                "This function seals tokens with public keys only and may not open them: "
                "call `open` from the job or the token API."
            )

    def private(self, key_id: str) -> PrivateKey:
        """The private key `key_id` (the private-keys secret's version of that number).

        Raises:
            Misconfigured: this function holds no private keys, or the primary's is missing.
            SealingKeyGone: that (older) key's version is gone; remembered for the instance.
            SealError: the key id is malformed.
            Unavailable: Secret Manager is down.
        """
        key = self._private.get(key_id)
        if key is not None:
            return key
        self.require_opening()
        assert self._private_secret is not None
        version = _version_of(self._private_secret, key_id)
        data, name = self._load(SEALED_V2, key_id, version, cached=lambda: key_id in self._private)
        if data is None:
            return self._private[key_id]
        key = self._private[key_id] = parse_private_key(data, name, key_id)
        return key

    def legacy(self, key_id: str) -> bytes:
        """The legacy AES key `key_id` (`v: 1` values).

        Raises:
            Misconfigured: no legacy key is configured here.
            SealingKeyGone: that key's version is gone; remembered for the instance.
        """
        key = self._legacy.get(key_id)
        if key is not None:
            return key
        if self._legacy_secret is None:
            raise Misconfigured(
                "A token is sealed with a first-release AES key (v1) but TOKEN_SEALING_KEY_VERSION "
                "is not set for this function: set it to that key's secret version."
            )
        version = _version_of(self._legacy_secret, key_id)
        data, name = self._load(SEALED_V1, key_id, version, cached=lambda: key_id in self._legacy)
        if data is None:
            return self._legacy[key_id]
        key = self._legacy[key_id] = parse_aes_key(data, name)
        return key

    def _load(self, fmt: int, key_id: str, version: str,
              cached: Callable[[], bool]) -> tuple[bytes | None, str]:
        """A key version's payload, once per instance; `(None, "")` if another thread loaded it.

        Raises:
            SealingKeyGone: the version is gone (remembered), unless it is the primary's.
            Misconfigured: the primary's private half is gone.
        """
        with self._loading:
            if cached():
                return None, ""
            if (fmt, key_id) in self._gone:
                raise SealingKeyGone()
            try:
                return self._read(version)
            except SecretVersionGone:
                if fmt == SEALED_V2 and key_id == self.primary().key_id:
                    raise Misconfigured(
                        f"The primary sealing key's private half ({version}) is missing or "
                        "disabled: restore it, or run `make rotate-sealing-key` for a new primary."
                    ) from None
                self._gone.add((fmt, key_id))
                raise SealingKeyGone() from None

    def check_legacy(self) -> None:
        """Read the configured legacy version, which proves the legacy secret's name right.

        A version that exists but was retired (disabled or destroyed) is fine: its tokens were
        re-sealed first. One that does not exist means a wrong name, which would otherwise make
        every first-release token unreadable.

        Raises:
            Misconfigured, Unavailable: it cannot be read.
        """
        if self._legacy_version is None:
            return
        try:
            parse_aes_key(*self._read(self._legacy_version))
        except SecretVersionGone as exc:
            if not exc.retired:
                raise


class TokenSealer:
    """Seals token strings to the primary public key; opens them where private keys are held."""

    def __init__(self, keys: SealingKeys) -> None:
        self._keys = keys
        self._checked_pair: str | None = None

    @property
    def can_open(self) -> bool:
        return self._keys.can_open

    def check_ready(self) -> None:
        """Load the keys now, so that a missing key fails before any token exists.

        A function that opens tokens also proves that the primary's two halves belong together
        (a value sealed to the public key opens with the private key of the id it names).

        Raises:
            Misconfigured, Unavailable: a key is missing, malformed, or the halves disagree.
        """
        primary = self._keys.primary()
        if not self._keys.can_open or self._checked_pair == primary.key_id:
            return
        probe = "offline-access key check"
        try:
            opened = self.open(self.seal(probe, sub="-", field="check"), sub="-", field="check")
        except SealError:
            opened = None
        if opened != probe:
            raise Misconfigured(
                f"The primary public key names key id {primary.key_id}, whose private key does not "
                "match it: run `make rotate-sealing-key` for a new, consistent key pair."
            )
        self._keys.check_legacy()
        self._checked_pair = primary.key_id

    def seal(self, plaintext: str, *, sub: str, field: str) -> dict[str, Any]:
        """`{"v": 2, "key_id", "ct"}`: `plaintext` sealed to the primary key for `sub` and `field`."""
        primary = self._keys.primary()
        ciphertext = SUITES[primary.suite].suite.encrypt(
            plaintext.encode(), primary.key, info=_info(sub, field))
        return {"v": SEALED_V2, "key_id": primary.key_id, "ct": ciphertext}

    def open(self, sealed: Any, *, sub: str, field: str) -> str:
        """The plaintext of a value sealed for `sub` and `field` (format 2, or the legacy 1).

        Raises:
            SealError: malformed, tampered with, or sealed for another user or field.
            SealingKeyGone: the key that sealed it is gone.
            Misconfigured: this function may not open tokens, or lacks a key it needs.
            Unavailable: Secret Manager is down.
        """
        if not isinstance(sealed, dict):
            raise SealError("not a sealed value")
        version = sealed.get("v")
        key_id = sealed.get("key_id")
        if not isinstance(key_id, str):
            raise SealError("sealed value is malformed")
        if version == SEALED_V2:
            ciphertext = sealed.get("ct")
            if not isinstance(ciphertext, bytes):
                raise SealError("sealed value is malformed")
            key = self._keys.private(key_id)
            try:
                return SUITES[key.suite].suite.decrypt(ciphertext, key.key, info=_info(sub, field)).decode()
            except (InvalidTag, ValueError):
                raise SealError("sealed value does not open for this user and field") from None
        if version == SEALED_V1:
            nonce, ciphertext = sealed.get("nonce"), sealed.get("ciphertext")
            if not isinstance(nonce, bytes) or len(nonce) != 12 or not isinstance(ciphertext, bytes):
                raise SealError("sealed value is malformed")
            self._keys.require_opening()
            aes = AESGCM(self._keys.legacy(key_id))
            try:
                return aes.decrypt(nonce, ciphertext, _aad_v1(sub, field)).decode()
            except InvalidTag:
                raise SealError("sealed value does not open for this user and field") from None
        raise SealError("not a sealed value of a known format")

    def is_current(self, sealed: Any) -> bool:
        """True when `sealed` is sealed to the primary key (nothing to re-seal)."""
        return key_id_of(sealed) == (SEALED_V2, self._keys.primary().key_id)
