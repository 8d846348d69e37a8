"""200 security events at once against a real `risc_receiver` process: no 5xx, each acted on once.

The receiver runs exactly as deployed (functions-framework serving `functions/main.py`, gunicorn
threads as Terraform sets them), public and without any key that opens tokens. 100 users sign in
through the real exchange; the local Google signs, for each, a `sessions-revoked` event and a
`token-revoked` event naming their refresh token (by prefix for half of them, by hash for the
rest); the 200 tokens are then POSTed all at once, as many pushes arriving together. Two events
about one user race for the same document: the loser reads again and acts. The figures (time,
statuses, latencies) are written to tests/artifacts/risc_load.json; nothing here is timed.
"""

from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from localdev.processes import REPO, FunctionServer
from localdev.stack_secrets import public_only
from offline_access import wiring
from offline_access.signin import exchange as code_exchange
from offline_access.signin.request_guard import SignInRequest
from offline_access.store.security_events import COLLECTION
from tests.integration.job.conftest import ALL_SCOPES
from tests.stack_values import CLIENT_ID

USERS = 100
THREADS = "40"  # Terraform: THREADS = var.exchange_concurrency on the receiver
ARTIFACT = REPO / "tests" / "artifacts" / "risc_load.json"


def test_200_concurrent_events_no_5xx_and_each_acted_on_once(risc_env, google, tmp_path):
    exchange = wiring.build_exchange_dependencies(risc_env)
    google.users([{"email": f"load-{i}@example.com"} for i in range(USERS)])
    subs = []
    for i in range(USERS):
        minted = google.mint_code(client_id=CLIENT_ID, email=f"load-{i}@example.com", scopes=ALL_SCOPES)
        result = code_exchange.complete_sign_in(SignInRequest(code=minted["code"]), exchange)
        subs.append(result.body["user"]["sub"])
    before = {sub: exchange.store.get(sub) for sub in subs}
    tokens = []
    for i, sub in enumerate(subs):
        tokens.append(google.risc_event("sessions-revoked", sub=sub)["token"])
        alg = "prefix" if i % 2 else "hash_base64_sha512_sha512"
        tokens.append(google.risc_event("token-revoked", sub=sub, token_identifier_alg=alg,
                                        revoke=False)["token"])
    log = tmp_path / "risc_receiver.log"
    server = FunctionServer("risc_receiver", {**public_only(risc_env), "THREADS": THREADS},
                            output=log.open("w"))
    try:
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=len(tokens))
        session.mount("http://", adapter)

        def post(token: str) -> tuple[int, float]:
            started = time.perf_counter()
            answer = session.post(server.url + "/", data=token, timeout=120,
                                  headers={"Content-Type": "application/secevent+jwt"})
            return answer.status_code, time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(tokens)) as pool:
            answers = list(pool.map(post, tokens))
        wall = time.perf_counter() - started
    finally:
        server.stop()

    statuses = [status for status, _ in answers]
    latencies = sorted(seconds for _, seconds in answers)
    figures = {"events": len(tokens), "users": USERS, "threads": int(THREADS),
               "wall_seconds": round(wall, 2),
               "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
               "latency_p50_ms": round(statistics.median(latencies) * 1000),
               "latency_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000),
               "latency_max_ms": round(latencies[-1] * 1000)}
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(figures, indent=2))
    print(f"\nRISC receiver under load: {figures}")

    assert statuses == [202] * len(tokens), figures
    for sub in subs:
        after = exchange.store.get(sub)
        assert after["session_generation"] == before[sub]["session_generation"] + 1, sub
        assert after["status"] == "needs_reauth" and "refresh_token" not in after, sub
        assert sorted(e["type"] for e in after["security_events"]) == ["sessions-revoked",
                                                                       "token-revoked"], sub
    records = list(exchange.store.client.collection(COLLECTION).stream())
    assert len(records) == len(tokens)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    outcomes = [line["outcome"] for line in lines if line.get("event") == "risc_event"]
    assert sorted(set(outcomes)) == ["sessions_ended", "token_deleted"]
    assert len(outcomes) == len(tokens)
    assert not [line for line in lines if line.get("severity") == "ERROR"]
