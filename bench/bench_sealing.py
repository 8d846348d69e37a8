"""Benchmark of token sealing: seal and open per HPKE suite, against the first releases' AES-GCM.

`TokenSealer` itself is timed (the keys already read, as on a warm instance), on a refresh
token and an access token of Google's usual lengths, each operation timed alone with the
calling thread's CPU clock; p50 and p99 over many rounds, and the sealed value's size (what a
user document stores twice). AES-256-GCM, the first releases' scheme, is measured in the same
run as the baseline. The exchange seals twice per sign-in, and the job opens once or twice and
seals once per user: the goal is that sealing keeps the exchange's own CPU within its budget
(`bench.bench_exchange`, p50 <= 5 ms), whichever suite is chosen.

    python -m bench.bench_sealing [--rounds 2000]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace

from bench.bench_exchange import percentile
from localdev.processes import REPO
from offline_access.store import sealing
from offline_access.store.secrets import SecretSource, crc32c
from tests.legacy_v1_sealing import seal_v1

RESULTS = REPO / "bench" / "results" / "sealing.json"
PUBLIC = "projects/bench/secrets/public-keys"
PRIVATE = "projects/bench/secrets/private-keys"
SUB = "100000000000000000001"
# Google's refresh tokens are about 100 characters, its access tokens about 200.
TOKENS = {"refresh_token": "1//0g" + secrets.token_urlsafe(75),
          "access_token": "ya29." + secrets.token_urlsafe(150)}


class InMemorySecrets:
    """The Secret Manager client's one call, served from memory (the keys are read once anyway)."""

    def __init__(self) -> None:
        self.versions: dict[str, list[bytes]] = {}

    def add(self, secret: str, data: bytes) -> str:
        self.versions.setdefault(secret, []).append(data)
        return str(len(self.versions[secret]))

    def access_secret_version(self, request, retry=None, timeout=None):
        secret, _, version = request["name"].rpartition("/versions/")
        number = len(self.versions[secret]) if version == "latest" else int(version)
        data = self.versions[secret][number - 1]
        return SimpleNamespace(name=f"{secret}/versions/{number}",
                               payload=SimpleNamespace(data=data, data_crc32c=crc32c(data)))


def sealer_for(suite: str) -> sealing.TokenSealer:
    client = InMemorySecrets()
    private, public = sealing.generate_key_pair(suite)
    key_id = client.add(PRIVATE, sealing.private_key_payload(suite, private))
    client.add(PUBLIC, sealing.public_key_payload(key_id, suite, public))
    sealer = sealing.TokenSealer(sealing.SealingKeys(
        SecretSource(client), f"{PUBLIC}/versions/latest", private_keys_secret=PRIVATE))
    sealer.check_ready()
    return sealer


def timed(operation: Callable[[], object], rounds: int) -> list[float]:
    for _ in range(50):
        operation()
    samples = []
    for _ in range(rounds):
        started = time.thread_time()
        operation()
        samples.append(time.thread_time() - started)
    return samples


def figures(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(samples, 50) * 1000, 4),
            "p99_ms": round(percentile(samples, 99) * 1000, 4)}


def measure_hpke(suite: str, rounds: int) -> dict:
    sealer = sealer_for(suite)
    result: dict = {}
    for field, token in TOKENS.items():
        sealed = sealer.seal(token, sub=SUB, field=field)
        result[field] = {
            "seal": figures(timed(lambda t=token, f=field: sealer.seal(t, sub=SUB, field=f), rounds)),
            "open": figures(timed(lambda s=sealed, f=field: sealer.open(s, sub=SUB, field=f), rounds)),
            "sealed_bytes": len(sealed["ct"]),
        }
    return result


def measure_aes(rounds: int) -> dict:
    """The first releases' AES-256-GCM: their verbatim seal, and today's v1 open path."""
    key = os.urandom(32)
    client = InMemorySecrets()
    legacy = "projects/bench/secrets/aes"
    client.add(legacy, base64.b64encode(key))
    keys = sealing.SealingKeys(SecretSource(client), f"{PUBLIC}/versions/latest",
                               private_keys_secret=PRIVATE, legacy_key_version=f"{legacy}/versions/1")
    opener = sealing.TokenSealer(keys)
    result: dict = {}
    for field, token in TOKENS.items():
        sealed = seal_v1(token, sub=SUB, field=field, key=key, key_id="1")
        result[field] = {
            "seal": figures(timed(lambda t=token, f=field: seal_v1(t, sub=SUB, field=f, key=key, key_id="1"),
                                  rounds)),
            "open": figures(timed(lambda s=sealed, f=field: opener.open(s, sub=SUB, field=f), rounds)),
            "sealed_bytes": len(sealed["nonce"]) + len(sealed["ciphertext"]),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    results = {
        "rounds": args.rounds,
        "token_chars": {field: len(token) for field, token in TOKENS.items()},
        "suites": {suite: measure_hpke(suite, args.rounds) for suite in sorted(sealing.SUITES)},
        "baseline_aes_256_gcm_v1": measure_aes(args.rounds),
        "default_suite": sealing.DEFAULT_SUITE,
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    rows = [*((s, r) for s, r in results["suites"].items()),
            ("AES-256-GCM (v1, baseline)", results["baseline_aes_256_gcm_v1"])]
    print(f"\ntoken sealing benchmark ({args.rounds} rounds, thread CPU, {results['machine']})")
    print(f"  {'suite':<28} {'field':<14} {'seal p50/p99 ms':>18} {'open p50/p99 ms':>18} {'bytes':>6}")
    for name, by_field in rows:
        for field, r in by_field.items():
            print(f"  {name:<28} {field:<14} {r['seal']['p50_ms']:>8.3f} / {r['seal']['p99_ms']:<7.3f}"
                  f" {r['open']['p50_ms']:>8.3f} / {r['open']['p99_ms']:<7.3f} {r['sealed_bytes']:>6}")
    hybrid = results["suites"][sealing.DEFAULT_SUITE]
    per_sign_in = sum(hybrid[f]["seal"]["p50_ms"] for f in TOKENS)
    print(f"  the exchange seals twice per sign-in: {per_sign_in:.3f} ms with {sealing.DEFAULT_SUITE} "
          "(its own CPU goal: p50 <= 5 ms)")
    print(f"  written to {RESULTS.relative_to(REPO)}\n")


if __name__ == "__main__":
    main()
