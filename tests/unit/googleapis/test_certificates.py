"""Caching of Google's certificates as their Cache-Control allows (pure logic, fake transport)."""

from types import SimpleNamespace

import pytest

from offline_access.errors import Unavailable
from offline_access.googleapis.certificates import CertificateCache


class FakeSession:
    def __init__(self, max_age=100):
        self.certs = {"k1": "PEM1"}
        self.max_age = max_age
        self.gets = 0
        self.status = 200

    def get(self, url, timeout):
        self.gets += 1
        return SimpleNamespace(status_code=self.status, json=lambda: dict(self.certs),
                               headers={"Cache-Control": f"public, max-age={self.max_age}"})


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def setup():
    session, clock = FakeSession(), Clock()
    return session, clock, CertificateCache(session, "https://certs", clock=clock)


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


def test_unknown_kid_refetches_once_then_is_rate_limited(setup):
    session, clock, cache = setup
    cache.certs_for("k1")
    session.certs = {"k1": "PEM1", "k2": "PEM2"}
    clock.now += 5
    assert "k2" in cache.certs_for("k2")
    for _ in range(5):
        cache.certs_for("unknown")
    assert session.gets == 2  # a refetch happened this very second: no more
    clock.now += 1
    for _ in range(5):
        cache.certs_for("unknown")
    assert session.gets == 3  # one more a second at most


def test_unavailable_certificates_are_503(setup):
    session, _, cache = setup
    session.status = 503
    with pytest.raises(Unavailable):
        cache.certs_for("k1")
