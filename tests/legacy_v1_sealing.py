"""The first releases' sealing, kept verbatim to write `v: 1` documents as they did.

Copied from `functions/offline_access/store/sealing.py` as of the commit before HPKE sealing
(AES-256-GCM, key id = the key's Secret Manager version number, `sub` and field as associated
data), reduced to `seal`. The migration tests write documents with it exactly as the old
exchange and job did, then check that today's job opens and re-seals them.
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEALED_FORMAT_VERSION = 1
_AAD_PREFIX = b"offline-access/v1|"


def _aad(sub: str, field: str) -> bytes:
    return _AAD_PREFIX + field.encode() + b"|" + sub.encode()


def seal_v1(plaintext: str, *, sub: str, field: str, key: bytes, key_id: str) -> dict[str, Any]:
    """`TokenSealer.seal` of the first releases, with its key passed in."""
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext.encode(), _aad(sub, field))
    return {
        "v": SEALED_FORMAT_VERSION,
        "key_id": key_id,
        "nonce": nonce,
        "ciphertext": ciphertext,
    }
