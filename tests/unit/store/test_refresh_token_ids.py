"""The keyed identifiers of refresh tokens (pure logic: the key comes from a function)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from offline_access.errors import Misconfigured
from offline_access.store.refresh_token_ids import RefreshTokenIds
from offline_access.store.secrets import SecretValue

KEY = base64.b64encode(b"k" * 32)
TOKEN = "1//0gCanaryRefreshToken-abcdefghijklmnopqrstuvwxyz0123456789"


def ids(key: bytes = KEY, version: str = "projects/p/secrets/ids/versions/3") -> RefreshTokenIds:
    return RefreshTokenIds(lambda: SecretValue(key, version))


def google_hash(token: str) -> bytes:
    return hashlib.sha512(hashlib.sha512(token.encode()).digest()).digest()


def test_the_stored_identifiers_name_the_key_and_hold_no_part_of_the_token():
    stored = ids().of_token(TOKEN)
    assert stored["key"] == "3"
    assert TOKEN[:16] not in str(stored) and base64.b64encode(google_hash(TOKEN)).decode() not in str(stored)


@pytest.mark.parametrize("spelling", [
    lambda d: base64.b64encode(d).decode(),  # Google's example: standard, padded
    lambda d: base64.b64encode(d).decode().rstrip("="),
    lambda d: base64.urlsafe_b64encode(d).decode(),
    lambda d: base64.urlsafe_b64encode(d).decode().rstrip("="),
])
def test_an_events_hash_matches_in_either_base64_spelling(spelling):
    stored = ids().of_token(TOKEN)
    field, value, key = ids().of_event("hash_base64_sha512_sha512", spelling(google_hash(TOKEN)))
    assert (field, value, key) == ("refresh_token_ids.sha512_sha512", stored["sha512_sha512"], "3")


def test_an_events_prefix_matches():
    field, value, _ = ids().of_event("prefix", TOKEN[:16])
    assert (field, value) == ("refresh_token_ids.prefix", ids().of_token(TOKEN)["prefix"])


@pytest.mark.parametrize(("alg", "identifier"), [
    ("prefix", TOKEN[:15]), ("prefix", TOKEN[:17]), ("hash_base64_sha512_sha512", "not base64!"),
    ("hash_base64_sha512_sha512", base64.b64encode(b"short").decode()), ("md5", "x" * 16),
])
def test_an_identifier_that_cannot_name_a_token_matches_nothing(alg, identifier):
    assert ids().of_event(alg, identifier) is None


def test_another_key_gives_other_identifiers():
    assert ids().of_token(TOKEN)["prefix"] != ids(base64.b64encode(b"j" * 32)).of_token(TOKEN)["prefix"]


def test_a_short_key_is_a_misconfiguration_and_storing_goes_on_without_identifiers():
    weak = ids(base64.b64encode(b"short"))
    with pytest.raises(Misconfigured) as raised:
        weak.of_token(TOKEN)
    assert "REFRESH_TOKEN_ID_KEY_VERSION" in raised.value.fix
    assert weak.of_token_if_available(TOKEN) is None
