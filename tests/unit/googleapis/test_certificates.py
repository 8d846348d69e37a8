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
