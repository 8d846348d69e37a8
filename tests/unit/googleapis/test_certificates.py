"""Caching of Google's certificates, JWKS and RISC configuration as their Cache-Control allows
(pure logic, fake transport)."""

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from offline_access.errors import Unavailable
from offline_access.googleapis.certificates import (
    CertificateCache,
    JwksCache,
    parse_jwks,
    parse_risc_configuration,
    risc_configuration,
)
from offline_access.googleapis.http_session import HttpResponse


class FakeSession:
    def __init__(self, max_age=100):
        self.certs = {"k1": "PEM1"}
        self.max_age = max_age
        self.gets = 0
        self.status = 200

    def get(self, url, timeout):
        self.gets += 1
        return HttpResponse(self.status, {"cache-control": f"public, max-age={self.max_age}"},
                            json.dumps(self.certs).encode())


class Clock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self):
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def setup():
    session, clock = FakeSession(), Clock()
    return session, clock, CertificateCache(session, "https://certs", clock=clock, sleep=clock.sleep)


def test_fetched_once_per_max_age(setup):
    session, clock, cache = setup
    for _ in range(10):
        assert cache.certs_for("k1") == {"k1": "PEM1"}
    clock.now += 99
    cache.certs_for("k1")
    assert session.gets == 1
    clock.now += 2
    cache.certs_for("k1")
    assert session.gets == 2


def test_unknown_kid_refetches_at_most_once_a_second(setup):
    session, clock, cache = setup
    cache.certs_for("k1")
    session.certs = {"k1": "PEM1", "k2": "PEM2"}
    clock.now += 5
    assert "k2" in cache.certs_for("k2")
    assert session.gets == 2 and clock.sleeps == []
    started = clock.now
    for _ in range(5):
        assert "unknown" not in cache.certs_for("unknown")
    # Each unknown kid gets its refetch, but never two within a second.
    assert session.gets == 2 + 5
    assert clock.now - started >= 5 * 1.0 - 1e-9


def test_a_failed_fetch_does_not_hold_back_the_next_one(setup):
    # Review fault 2: a failed attempt used to count as the last fetch, so a valid token signed
    # with a just-published key got "unknown key" (502) for the next second.
    session, clock, cache = setup
    cache.certs_for("k1")
    clock.now += 5
    session.status = 503
    with pytest.raises(Unavailable):
        cache.certs_for("k2")
    session.status = 200
    session.certs = {"k1": "PEM1", "k2": "PEM2"}
    assert "k2" in cache.certs_for("k2")
    assert clock.sleeps == [] and session.gets == 3


def test_a_key_published_right_after_a_fetch_is_still_found(setup):
    # A rotation within a second of the last fetch: the refetch waits for the window, not refused.
    session, clock, cache = setup
    cache.certs_for("k1")
    session.certs = {"k1": "PEM1", "k2": "PEM2"}
    assert "k2" in cache.certs_for("k2")
    assert session.gets == 2 and clock.sleeps == [pytest.approx(1.0)]


def test_a_refetch_that_fails_is_unavailable_not_a_missing_key(setup):
    session, clock, cache = setup
    cache.certs_for("k1")
    clock.now += 2
    session.status = 500
    with pytest.raises(Unavailable):
        cache.certs_for("k2")


def test_unavailable_certificates_are_503(setup):
    session, _, cache = setup
    session.status = 503
    with pytest.raises(Unavailable):
        cache.certs_for("k1")


# The JWKS and the RISC configuration, parsed (pure logic).


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def jwk(kid: str, key: rsa.RSAPrivateKey, **extra) -> dict:
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": _b64(numbers.n),
            "e": _b64(numbers.e), **extra}


def test_a_jwks_gives_the_rsa_signing_keys_by_kid():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = parse_jwks({"keys": [jwk("k1", key), jwk("enc", key, use="enc"),
                                {"kty": "EC", "kid": "ec"}, jwk("hs", key, alg="HS256"),
                                {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"}, "junk"]})
    assert set(keys) == {"k1"}
    assert keys["k1"].public_numbers() == key.public_key().public_numbers()


@pytest.mark.parametrize("document", [[], {"keys": "x"}, {"no": "keys"}, "text"])
def test_a_document_that_is_not_a_jwks_is_unavailable(document):
    with pytest.raises(ValueError):
        parse_jwks(document)


def test_the_jwks_cache_follows_cache_control_and_refetches_an_unknown_kid():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    session, clock = FakeSession(max_age=60), Clock()
    session.certs = {"keys": [jwk("k1", key)]}
    cache = JwksCache(session, "https://jwks", clock=clock, sleep=clock.sleep)
    assert "k1" in cache.current("k1") and "k1" in cache.current("k1") and session.gets == 1
    clock.now += 5
    assert "k2" not in cache.current("k2") and session.gets == 2


def test_the_risc_configuration_keeps_the_issuer_and_jwks_uri():
    assert parse_risc_configuration({"issuer": "https://accounts.google.com/",
                                     "jwks_uri": "https://www.googleapis.com/oauth2/v3/certs",
                                     "delivery_methods_supported": []}) == {
        "issuer": "https://accounts.google.com/", "jwks_uri": "https://www.googleapis.com/oauth2/v3/certs"}
    for broken in ({"issuer": "x"}, {"jwks_uri": "ftp://x", "issuer": "i"}, []):
        with pytest.raises(ValueError):
            parse_risc_configuration(broken)


def test_an_unreadable_risc_configuration_is_unavailable_not_trusted():
    session, clock = FakeSession(), Clock()
    session.certs = {"issuer": "https://accounts.google.com/"}  # no jwks_uri
    with pytest.raises(Unavailable) as raised:
        risc_configuration(session, "https://config", clock=clock).current()
    assert raised.value.dependency == "risc_configuration"
