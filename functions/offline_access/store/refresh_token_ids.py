"""Refresh tokens named without keeping any part of them: keyed hashes that Google's events match.

Google's `token-revoked` security event (Cross-Account Protection) names a refresh token by its
first 16 characters (`token_identifier_alg: prefix`) or by `hash_base64_sha512_sha512` (base64
of SHA-512 of the token's SHA-512 digest). To find the user without storing any part of a token
in plaintext, every stored refresh token gets, next to its sealed value, two HMAC-SHA256 values
under a key of their own from Secret Manager (`REFRESH_TOKEN_ID_KEY_VERSION`):

    refresh_token_ids = {"key": "<key version>",
                         "prefix": hex HMAC(key, "prefix|" + token[:16]),
                         "sha512_sha512": hex HMAC(key, "sha512_sha512|" + SHA-512(SHA-512(token)))}

The receiver hashes the event's identifier the same way and finds the user with one equality
query. The hash is compared as the 64 bytes the base64 decodes to, so either base64 alphabet,
padded or not, matches.

Keyed, because a plain value would not do: the prefix *is* part of the token, and Google's own
identifier stored verbatim would let anyone holding a copy of the database recognise the token
wherever else that identifier appears. Under the key, a database copy alone reveals neither.

A key of its own rather than the log key (`LOG_USER_REF_KEY_VERSION`): these values are stored
and matched months later, while the log key may be rotated at any time (`make rotate-log-key`)
with nothing to carry over, since log references only need to agree within the logs; and only
the functions that store tokens or match events (the exchange, the job, the RISC receiver) may
read this one, where every function that logs reads the log key. `key` records the version a
document's values were made with: a document made under another version is not matched (its
user gets new values with the next token stored), and every other event type names the user by
`sub`, which needs no key at all.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
from collections.abc import Callable

from ..errors import Misconfigured, Unavailable
from ..structured_log import parse_random_key
from .secrets import SecretValue

FIELD = "refresh_token_ids"
PREFIX = "prefix"
HASH = "hash_base64_sha512_sha512"
# The field of `refresh_token_ids` that each `token_identifier_alg` is matched against.
ALG_FIELDS = {PREFIX: "prefix", HASH: "sha512_sha512"}
PREFIX_LENGTH = 16


def parse_key(raw: bytes) -> bytes:
    """The key from its secret payload: at least 32 random bytes, base64-encoded.

    Raises:
        Misconfigured: anything else.
    """
    return parse_random_key(
        raw, "The refresh-token identifier key (REFRESH_TOKEN_ID_KEY_VERSION) must hold at least "
             "32 random bytes, base64-encoded (make create-token-id-key adds one).")


def _double_sha512(token: str) -> bytes:
    return hashlib.sha512(hashlib.sha512(token.encode("utf-8")).digest()).digest()


def _decode_hash(identifier: str) -> bytes | None:
    """The 64 bytes of a `hash_base64_sha512_sha512` identifier, in either alphabet; None if not."""
    text = identifier.strip().rstrip("=")
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            continue
        if len(raw) == hashlib.sha512().digest_size:
            return raw
    return None


class RefreshTokenIds:
    """Computes the stored identifiers of a refresh token, and an event's identifier to match.

    The key is read on first use (or by `check_ready`) and kept for the life of the instance.

    Args:
        load_key: the configured version of the key's secret.
    """

    def __init__(self, load_key: Callable[[], SecretValue]) -> None:
        self._load_key = load_key
        self._key: tuple[str, bytes] | None = None
        self._lock = threading.Lock()

    def check_ready(self) -> None:
        """Read the key now.

        Raises:
            Misconfigured, Unavailable: the key cannot be read, or is not a key.
        """
        self._keyed()

    def _keyed(self) -> tuple[str, bytes]:
        key = self._key
        if key is None:
            with self._lock:
                key = self._key
                if key is None:
                    value = self._load_key()
                    key = self._key = (value.version_id, parse_key(value.data))
        return key

    def _mac(self, label: bytes, data: bytes) -> str:
        return hmac.new(self._keyed()[1], label + b"|" + data, hashlib.sha256).hexdigest()

    def of_token(self, refresh_token: str) -> dict[str, str]:
        """The `refresh_token_ids` map stored with a refresh token.

        Raises:
            Misconfigured, Unavailable: the key cannot be read.
        """
        key_id = self._keyed()[0]
        return {
            "key": key_id,
            "prefix": self._mac(b"prefix", refresh_token[:PREFIX_LENGTH].encode("utf-8")),
            "sha512_sha512": self._mac(b"sha512_sha512", _double_sha512(refresh_token)),
        }

    def of_token_if_available(self, refresh_token: str) -> dict[str, str] | None:
        """`of_token`, or None when the key cannot be read: storing a grant never fails for
        want of its identifiers (the token is then matched by its user's events only)."""
        try:
            return self.of_token(refresh_token)
        except (Misconfigured, Unavailable):
            return None

    def of_event(self, alg: str, identifier: str) -> tuple[str, str, str] | None:
        """`(field path, value, key id)` to find the token an event names; None when the
        identifier cannot name one (an unknown algorithm, a malformed hash, a short prefix).

        Raises:
            Misconfigured, Unavailable: the key cannot be read.
        """
        if alg == PREFIX:
            if len(identifier) != PREFIX_LENGTH:
                return None
            value = self._mac(b"prefix", identifier.encode("utf-8"))
        elif alg == HASH:
            digest = _decode_hash(identifier)
            if digest is None:
                return None
            value = self._mac(b"sha512_sha512", digest)
        else:
            return None
        return f"{FIELD}.{ALG_FIELDS[alg]}", value, self._keyed()[0]
