"""At most one refresh per user at a time, across instances: 50 concurrent calls for one user,
spread over two real `token_api` processes (functions-framework and gunicorn, 25 threads
each), cost one call to the local Google's `/token`.

The refresh is slowed down (the local Google answers `/token` after 300 ms), so every call
arrives while it is in flight: within a process the calls share one refresh, and across
processes the refresh lease in the user document lets one refresh while the other waits for
its token.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from localdev.processes import FunctionServer
from tests.integration.tokenapi.conftest import refresh_calls

CALLS = 50


@pytest.fixture
def two_instances(token_env, tmp_path):
    logs = [tmp_path / f"token_api_{n}.log" for n in (1, 2)]
    servers = []
    try:
        for log in logs:
            servers.append(FunctionServer("token_api", {**token_env, "THREADS": "25"},
                                          output=open(log, "w")))
        yield servers, logs
    finally:
        for server in servers:
            server.stop()


def test_fifty_concurrent_calls_for_one_user_cost_one_refresh(two_instances, users, google,
                                                              app_token):
    servers, logs = two_instances
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    stored_refresh_token = users.open(alice, "refresh_token")
    google.fault("/token", latency_ms=300, times=-1, match={"grant_type": "refresh_token"})
    before = refresh_calls(google)
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=CALLS))

    def call(n: int) -> requests.Response:
        return session.post(servers[n % 2].url + "/token", json={"sub": alice}, timeout=30,
                            headers={"Authorization": f"Bearer {app_token}"})

    with ThreadPoolExecutor(CALLS) as pool:
        answers = list(pool.map(call, range(CALLS)))

    assert [a.status_code for a in answers] == [200] * CALLS, answers[0].text
    tokens = {a.json()["access_token"] for a in answers}
    assert len(tokens) == 1
    assert refresh_calls(google) - before == 1
    assert users.open(alice, "access_token") == tokens.pop()
    for server in servers:
        server.stop()
    lines = [json.loads(line) for log in logs for line in log.read_text().splitlines()
             if line.startswith("{") and '"route":"/token"' in line]
    assert len(lines) == CALLS
    sources = [line["token_source"] for line in lines]
    # One refreshed; the other instance waited for the lease holder's token; the rest shared
    # a refresh in their own instance.
    assert sources.count("refreshed") + sum(1 for x in lines if x.get("shared_refresh")) >= 2
    assert {line["user"] for line in lines} == {lines[0]["user"]}
    text = "".join(log.read_text() for log in logs)
    assert answers[0].json()["access_token"] not in text and stored_refresh_token not in text
    print(f"\n{CALLS} calls over 2 instances: {refresh_calls(google) - before} refresh; "
          f"sources {dict((s, sources.count(s)) for s in set(sources))}, "
          f"lease waits {sum(x.get('lease_waits', 0) for x in lines)}")
