"""Sealing of tokens at rest: HPKE to a public key, bound to user and field, with real rotation.

A fake Secret Manager client stands in for the gRPC one (pure logic); the integration tests run
the same code against the local Secret Manager.
"""

import base64
import json
import os
from types import SimpleNamespace

import pytest
from google.api_core import exceptions as api_exceptions

from offline_access.errors import Misconfigured, SealError, SealingKeyGone
from offline_access.store import sealing
from offline_access.store.sealing import (
    SealingKeys,
    TokenSealer,
    generate_key_pair,
    parse_aes_key,
    parse_private_key,
    parse_public_key,
    private_key_payload,
    public_key_payload,
)
from offline_access.store.secrets import SecretSource, crc32c
from tests.legacy_v1_sealing import seal_v1

PUBLIC = "projects/p/secrets/public-keys"
PRIVATE = "projects/p/secrets/private-keys"
LEGACY = "projects/p/secrets/token-sealing-key"


class FakeSecretManagerClient:
    """Versions of several secrets; `latest` = the newest enabled; counts accesses."""

    def __init__(self):
        self.secrets: dict[str, list[list]] = {}  # name -> [[data, enabled], ...]
        self.accesses: list[str] = []

    def add(self, secret: str, data: bytes) -> str:
        versions = self.secrets.setdefault(secret, [])
        versions.append([data, True])
        return str(len(versions))

    def disable(self, secret: str, number: str) -> None:
        self.secrets[secret][int(number) - 1][1] = False

    def access_secret_version(self, request, retry=None, timeout=None):
        name = request["name"]
        self.accesses.append(name)
        secret, _, version = name.rpartition("/versions/")
        versions = self.secrets.get(secret, [])
        if version == "latest":
            enabled = [i for i, (_, on) in enumerate(versions) if on]
            number = enabled[-1] + 1
        else:
            number = int(version)
            if not 1 <= number <= len(versions):
                raise api_exceptions.NotFound("no such version")
        data, enabled = versions[number - 1]
        if not enabled:
            raise api_exceptions.FailedPrecondition("disabled")
        return SimpleNamespace(name=f"{secret}/versions/{number}",
                               payload=SimpleNamespace(data=data, data_crc32c=crc32c(data)))


def rotate(client: FakeSecretManagerClient, suite: str = sealing.DEFAULT_SUITE) -> str:
    """What `make rotate-sealing-key` does: private half first, then the public half naming it."""
    private, public = generate_key_pair(suite)
    key_id = client.add(PRIVATE, private_key_payload(suite, private))
    client.add(PUBLIC, public_key_payload(key_id, suite, public))
    return key_id


def opener(client, version="latest", legacy=None, clock=None) -> TokenSealer:
    keys = SealingKeys(SecretSource(client), f"{PUBLIC}/versions/{version}",
                       private_keys_secret=PRIVATE, legacy_key_version=legacy,
                       **({"clock": clock} if clock else {}))
    return TokenSealer(keys)


def public_only(client, version="latest") -> TokenSealer:
    return TokenSealer(SealingKeys(SecretSource(client), f"{PUBLIC}/versions/{version}"))


@pytest.fixture
def client():
    client = FakeSecretManagerClient()
    rotate(client)
    return client


@pytest.mark.parametrize("suite", sorted(sealing.SUITES))
def test_round_trip_and_no_plaintext(suite):
    client = FakeSecretManagerClient()
    rotate(client, suite)
    sealer = opener(client)
    sealed = sealer.seal("1//refresh-token-canary", sub="111", field="refresh_token")
    assert set(sealed) == {"v", "key_id", "ct"} and (sealed["v"], sealed["key_id"]) == (2, "1")
    assert b"refresh-token-canary" not in sealed["ct"]
    assert sealer.open(sealed, sub="111", field="refresh_token") == "1//refresh-token-canary"
    assert sealer.is_current(sealed)


def test_copy_to_another_user_or_field_does_not_open(client):
    sealer = opener(client)
    sealed = sealer.seal("1//token", sub="111", field="refresh_token")
    with pytest.raises(SealError):
        sealer.open(sealed, sub="222", field="refresh_token")
    with pytest.raises(SealError):
        sealer.open(sealed, sub="111", field="access_token")


@pytest.mark.parametrize("mutate", [
    lambda s: s.update(ct=bytes([s["ct"][0] ^ 1]) + s["ct"][1:]),
    lambda s: s.update(ct=s["ct"][:-1] + bytes([s["ct"][-1] ^ 1])),
    lambda s: s.update(ct=s["ct"][:-1]),
    lambda s: s.update(ct=b""),
    lambda s: s.update(ct="not bytes"),
    lambda s: s.update(v=3),
    lambda s: s.update(v=1),
    lambda s: s.update(key_id="../1"),
    lambda s: s.update(key_id="0"),
    lambda s: s.update(key_id=1),
    lambda s: s.pop("ct"),
], ids=["enc", "tag", "short", "empty", "type", "version", "as-v1", "path", "zero", "int", "missing"])
def test_tampered_values_never_open(client, mutate):
    sealer = opener(client, legacy=f"{LEGACY}/versions/1")
    client.add(LEGACY, base64.b64encode(os.urandom(32)))
    sealed = sealer.seal("1//token", sub="111", field="refresh_token")
    mutate(sealed)
    with pytest.raises(SealError):
        sealer.open(sealed, sub="111", field="refresh_token")


def test_a_public_only_sealer_seals_but_cannot_open(client):
    # Review fault 4: the internet-facing function holds no key that opens stored tokens.
    sealer = public_only(client)
    sealed = sealer.seal("1//token", sub="1", field="refresh_token")
    assert not sealer.can_open
    with pytest.raises(Misconfigured) as info:
        sealer.open(sealed, sub="1", field="refresh_token")
    assert "may not open" in info.value.fix
    legacy = seal_v1("1//old", sub="1", field="refresh_token", key=os.urandom(32), key_id="1")
    with pytest.raises(Misconfigured):
        sealer.open(legacy, sub="1", field="refresh_token")
    sealer.check_ready()
    assert not any(PRIVATE in name for name in client.accesses)


def test_rotation_keeps_old_values_readable_and_says_they_are_not_current(client):
    old = opener(client).seal("1//old", sub="1", field="refresh_token")
    rotate(client)
    rotated = opener(client)
    new = rotated.seal("1//new", sub="1", field="refresh_token")
    assert (old["key_id"], new["key_id"]) == ("1", "2")
    assert rotated.open(old, sub="1", field="refresh_token") == "1//old"
    assert rotated.open(new, sub="1", field="refresh_token") == "1//new"
    assert not rotated.is_current(old) and rotated.is_current(new)


def test_the_key_id_is_the_private_version_whatever_the_public_version_is():
    client = FakeSecretManagerClient()
    # A rotation that failed after its private half: private 1 is unused, public 1 names key 2.
    client.add(PRIVATE, private_key_payload("X25519", generate_key_pair("X25519")[0]))
    assert rotate(client) == "2"
    sealer = opener(client)
    sealed = sealer.seal("1//t", sub="1", field="refresh_token")
    assert sealed["key_id"] == "2"
    sealer.check_ready()
    assert sealer.open(sealed, sub="1", field="refresh_token") == "1//t"
    assert f"{PRIVATE}/versions/2" in client.accesses and f"{PRIVATE}/versions/1" not in client.accesses


def test_a_gone_key_makes_its_tokens_unreadable_and_is_asked_for_once(client):
    # Review fault 3: a retired key used to cost a Secret Manager call per user, as misconfigured.
    old = opener(client).seal("1//old", sub="1", field="refresh_token")
    rotate(client)
    client.disable(PRIVATE, "1")
    sealer = opener(client)
    for _ in range(3):
        with pytest.raises(SealingKeyGone):
            sealer.open(old, sub="1", field="refresh_token")
    assert client.accesses.count(f"{PRIVATE}/versions/1") == 1


def test_the_primary_key_missing_is_a_misconfiguration(client):
    sealed = opener(client).seal("1//t", sub="1", field="refresh_token")
    client.disable(PRIVATE, "1")
    sealer = opener(client)
    with pytest.raises(Misconfigured) as info:
        sealer.open(sealed, sub="1", field="refresh_token")
    assert not isinstance(info.value, SealingKeyGone) and "primary" in info.value.fix
    with pytest.raises(Misconfigured):
        sealer.check_ready()


def test_check_ready_finds_halves_out_of_step():
    client = FakeSecretManagerClient()
    private, _ = generate_key_pair()
    key_id = client.add(PRIVATE, private_key_payload(sealing.DEFAULT_SUITE, private))
    client.add(PUBLIC, public_key_payload(key_id, sealing.DEFAULT_SUITE, generate_key_pair()[1]))
    public_only(client).check_ready()  # a sealing function cannot tell
    with pytest.raises(Misconfigured) as info:
        opener(client).check_ready()
    assert "does not match" in info.value.fix


def test_the_first_releases_values_open_with_the_legacy_key(client):
    key = os.urandom(32)
    client.add(LEGACY, base64.b64encode(key))
    legacy = seal_v1("1//old", sub="1", field="refresh_token", key=key, key_id="1")
    sealer = opener(client, legacy=f"{LEGACY}/versions/1")
    sealer.check_ready()
    assert sealer.open(legacy, sub="1", field="refresh_token") == "1//old"
    assert not sealer.is_current(legacy)
    with pytest.raises(SealError):
        sealer.open(legacy, sub="2", field="refresh_token")
    with pytest.raises(Misconfigured):  # v1 values need the legacy key configured
        opener(client).open(legacy, sub="1", field="refresh_token")


def test_a_gone_legacy_key_is_unreadable_once(client):
    client.add(LEGACY, base64.b64encode(os.urandom(32)))
    client.add(LEGACY, base64.b64encode(os.urandom(32)))
    client.disable(LEGACY, "1")
    legacy = seal_v1("1//old", sub="1", field="refresh_token", key=os.urandom(32), key_id="1")
    sealer = opener(client, legacy=f"{LEGACY}/versions/2")
    for _ in range(2):
        with pytest.raises(SealingKeyGone):
            sealer.open(legacy, sub="1", field="refresh_token")
    assert client.accesses.count(f"{LEGACY}/versions/1") == 1


def test_a_retired_legacy_key_is_fine_but_a_wrong_name_is_not(client):
    client.add(LEGACY, base64.b64encode(os.urandom(32)))
    client.disable(LEGACY, "1")  # what `make retire-sealing-key KEY=aes-1` does
    opener(client, legacy=f"{LEGACY}/versions/1").check_ready()
    with pytest.raises(Misconfigured):  # no such version: the name is wrong
        opener(client, legacy=f"{LEGACY}/versions/7").check_ready()
    with pytest.raises(Misconfigured):
        opener(client, legacy="projects/p/secrets/typo/versions/1").check_ready()


def test_a_primary_that_follows_latest_is_reread_every_ten_minutes(client):
    now = [0.0]
    sealer = opener(client, clock=lambda: now[0])
    assert sealer.seal("x", sub="1", field="f")["key_id"] == "1"
    rotate(client)
    now[0] += sealing.PUBLIC_KEY_REFRESH_SECONDS - 1
    assert sealer.seal("x", sub="1", field="f")["key_id"] == "1"
    now[0] += 2
    assert sealer.seal("x", sub="1", field="f")["key_id"] == "2"
    pinned = opener(client, version="1", clock=lambda: now[0])
    pinned.seal("x", sub="1", field="f")
    now[0] += 10 * sealing.PUBLIC_KEY_REFRESH_SECONDS
    assert pinned.seal("x", sub="1", field="f")["key_id"] == "1"


def test_a_failed_reread_keeps_sealing_with_the_known_key(client):
    now = [0.0]
    sealer = opener(client, clock=lambda: now[0])
    sealer.seal("x", sub="1", field="f")
    client.access_secret_version = lambda **_: (_ for _ in ()).throw(api_exceptions.ServiceUnavailable("x"))
    now[0] += sealing.PUBLIC_KEY_REFRESH_SECONDS + 1
    assert sealer.seal("x", sub="1", field="f")["key_id"] == "1"


class TestKeyFormats:
    @pytest.mark.parametrize("payload", [
        b"not json", b"[]", json.dumps({"type": "other"}).encode(),
        json.dumps({"type": sealing.PUBLIC_KEY_TYPE, "key_id": "1", "suite": "X25519",
                    "public_key": base64.b64encode(b"short").decode()}).encode(),
        json.dumps({"type": sealing.PUBLIC_KEY_TYPE, "key_id": "one", "suite": "X25519",
                    "public_key": base64.b64encode(os.urandom(32)).decode()}).encode(),
        json.dumps({"type": sealing.PUBLIC_KEY_TYPE, "key_id": "1", "suite": "RSA",
                    "public_key": base64.b64encode(os.urandom(32)).decode()}).encode(),
        base64.b64encode(b"k" * 32),  # an AES key where the public key belongs
    ], ids=["text", "list", "type", "short", "key-id", "suite", "aes"])
    def test_a_malformed_public_key_is_a_misconfiguration(self, payload):
        with pytest.raises(Misconfigured) as info:
            parse_public_key(payload, f"{PUBLIC}/versions/1")
        assert f"{PUBLIC}/versions/1" in info.value.fix

    def test_a_public_key_is_not_a_private_key(self):
        private, public = generate_key_pair()
        with pytest.raises(Misconfigured):
            parse_private_key(public_key_payload("1", sealing.DEFAULT_SUITE, public), "v", "1")
        with pytest.raises(Misconfigured):
            parse_private_key(private_key_payload("X25519", private), "v", "1")  # wrong length

    @pytest.mark.parametrize("raw", [
        b"a 32-character passphrase, no!!!",  # 32 bytes, but not a key (review fault 8)
        os.urandom(32),  # raw bytes: the first releases always wrote base64
        b"not-a-key", base64.b64encode(os.urandom(16)),
    ], ids=["passphrase", "raw", "short", "16-bytes"])
    def test_a_legacy_aes_key_must_be_32_bytes_in_base64(self, raw):
        assert len(b"a 32-character passphrase, no!!!") == 32
        with pytest.raises(Misconfigured):
            parse_aes_key(raw, f"{LEGACY}/versions/1")

    def test_a_legacy_aes_key_in_base64_is_accepted(self):
        key = os.urandom(32)
        assert parse_aes_key(base64.b64encode(key) + b"\n", "v") == key
