"""Sealing of tokens at rest: AES-256-GCM, bound to user and field, with rotatable keys."""

import base64
import os
from types import SimpleNamespace

import pytest

from offline_access.errors import Misconfigured, SealError
from offline_access.store.sealing import SealingKeys, TokenSealer
from offline_access.store.secrets import SecretSource, crc32c

SECRET = "projects/p/secrets/token-sealing-key"


class FakeSecretManagerClient:
    """Stands in for the gRPC client: versions of one secret, `latest` = the newest."""

    def __init__(self):
        self.versions: list[bytes] = []

    def add(self, data: bytes) -> None:
        self.versions.append(data)

    def access_secret_version(self, request, retry=None, timeout=None):
        version = request["name"].rsplit("/", 1)[-1]
        number = len(self.versions) if version == "latest" else int(version)
        data = self.versions[number - 1]
        return SimpleNamespace(name=f"{SECRET}/versions/{number}",
                               payload=SimpleNamespace(data=data, data_crc32c=crc32c(data)))


def sealer_for(client, version="latest"):
    return TokenSealer(SealingKeys(SecretSource(client), f"{SECRET}/versions/{version}"))


@pytest.fixture
def client():
    client = FakeSecretManagerClient()
    client.add(base64.b64encode(os.urandom(32)))
    return client


def test_round_trip_and_no_plaintext(client):
    sealer = sealer_for(client)
    sealed = sealer.seal("1//refresh-token-canary", sub="111", field="refresh_token")
    assert b"refresh-token-canary" not in sealed["ciphertext"]
    assert sealed["key_id"] == "1" and len(sealed["nonce"]) == 12
    assert sealer.open(sealed, sub="111", field="refresh_token") == "1//refresh-token-canary"


def test_copy_to_another_user_or_field_does_not_open(client):
    sealer = sealer_for(client)
    sealed = sealer.seal("1//token", sub="111", field="refresh_token")
    with pytest.raises(SealError):
        sealer.open(sealed, sub="222", field="refresh_token")
    with pytest.raises(SealError):
        sealer.open(sealed, sub="111", field="access_token")


@pytest.mark.parametrize("mutate", [
    lambda s: s.update(ciphertext=bytes([s["ciphertext"][0] ^ 1]) + s["ciphertext"][1:]),
    lambda s: s.update(ciphertext=s["ciphertext"][:-1]),
    lambda s: s.update(nonce=b"\x00" * 12),
    lambda s: s.update(nonce=b"short"),
    lambda s: s.update(v=2),
    lambda s: s.update(key_id="../1"),
    lambda s: s.pop("ciphertext"),
])
def test_tampered_values_never_open(client, mutate):
    sealer = sealer_for(client)
    sealed = sealer.seal("1//token", sub="111", field="refresh_token")
    mutate(sealed)
    with pytest.raises(SealError):
        sealer.open(sealed, sub="111", field="refresh_token")


def test_rotation_keeps_old_values_readable(client):
    old = sealer_for(client).seal("1//old", sub="1", field="refresh_token")
    client.add(base64.b64encode(os.urandom(32)))
    rotated = sealer_for(client)
    new = rotated.seal("1//new", sub="1", field="refresh_token")
    assert (old["key_id"], new["key_id"]) == ("1", "2")
    assert rotated.open(old, sub="1", field="refresh_token") == "1//old"
    assert rotated.open(new, sub="1", field="refresh_token") == "1//new"


def test_a_key_that_is_not_32_bytes_is_a_configuration_error():
    client = FakeSecretManagerClient()
    client.add(b"not-a-key")
    with pytest.raises(Misconfigured) as info:
        sealer_for(client).seal("1//x", sub="1", field="refresh_token")
    assert "rotate-sealing-key" in info.value.fix


def test_raw_32_byte_keys_are_accepted():
    client = FakeSecretManagerClient()
    client.add(os.urandom(32))
    sealer = sealer_for(client)
    assert sealer.open(sealer.seal("x", sub="1", field="f"), sub="1", field="f") == "x"
