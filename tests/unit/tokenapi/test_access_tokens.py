"""The token API's pure parts: the answer's shape and the in-process single flight."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from offline_access.tokenapi.access_tokens import AccessToken, SingleFlight

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


def test_the_answer_has_the_token_its_expiry_and_scopes_and_repr_hides_the_token():
    token = AccessToken("ya29.secret", NOW + dt.timedelta(seconds=3599), ("openid",), "cache")
    assert token.body(NOW) == {"access_token": "ya29.secret", "expires_at": "2026-06-01T12:59:59Z",
                               "expires_in": 3599, "scopes": ["openid"], "token_type": "Bearer"}
    assert "ya29" not in repr(token)


def test_concurrent_calls_for_one_key_share_one_run():
    flight = SingleFlight()
    runs = []
    gate = threading.Event()

    def slow():
        runs.append(1)
        gate.wait(5)
        return "token"

    results = []
    threads = [threading.Thread(target=lambda: results.append(flight.do("sub", slow)))
               for _ in range(10)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    gate.set()
    for thread in threads:
        thread.join(5)
    assert runs == [1]
    assert sorted(results, key=lambda r: not r[1]) == [("token", True)] + [("token", False)] * 9
    # Done: the next call runs again.
    assert flight.do("sub", lambda: "fresh") == ("fresh", True)


def test_a_failure_is_shared_too_and_other_keys_are_independent():
    flight = SingleFlight()
    with pytest.raises(KeyError):
        flight.do("sub", lambda: (_ for _ in ()).throw(KeyError("x")))
    assert flight.do("other", lambda: 1) == (1, True)
