"""Benchmark of `run_offline_job`: users per second, CPU per user and peak memory, vs a naive loop.

Setup: N users with real refresh tokens (minted through the local Google's control API and
redeemed at its `/token`, sealed with the real sealing key) are written to the Firestore
emulator in batches of 500, each document exactly as the exchange writes it for a new user, with
the cached access token already stale (as it is an hour later, at the next run). The local
Google runs in its own process and answers every call after a fixed latency (default 50 ms).

Measured, each in a fresh worker process (so CPU and peak memory are its own), in one run:

- `job`: `run_offline_job` called in-process with the production dependencies
  (`wiring.build_job_dependencies`), tasks `drive_appdata` only (the same work as the others:
  refresh, then Drive): a page's claims in one BatchWrite, results a hundred per BatchWrite; for
  each N in `--users`.
- `today`: the job as issue 12 measured it, the baseline of its goals: the same code with
  `batch_writes=False` (one claim and one result write per user, as before batching) and each
  call to Google through the `requests` session the job then used (`bench/requests_http.py`),
  on the smallest N.
- `per_user`: the same code with `batch_writes=False` only (today's HTTP client): what the
  batching alone buys, on the smallest N.
- `peer`: what a competent engineer writes with the official libraries, at the same
  concurrency, on the smallest N: a thread pool, `google.oauth2.credentials.Credentials.refresh`,
  `google.auth.transport.requests.AuthorizedSession` for the Drive call (sharing one connection
  pool), one Firestore `update` per user. No claims, no backoff, no reauth handling.
- `baseline`: the seed's pattern on the same kind of data, one user at a time: read the due users,
  and for each a new `google.oauth2.credentials.Credentials`, a new `AuthorizedSession` (new
  connections), refresh, the Drive call, one result write. It runs on `--baseline-users` users
  and is extrapolated per user (its cost per user does not depend on N).

Firestore RPCs are counted in each worker by a gRPC interceptor on the emulator channel
(`bench/rpc_counter.py`): page queries, BatchWrites, single updates and reads alike.

CPU is `time.process_time()` of the worker (our code and the client libraries, every thread);
peak memory is the worker's RSS high-water mark (VmHWM). The CPU used meanwhile by the local
Google and the Firestore emulator is read from /proc, to show which process sets the pace.

    python -m bench.bench_offline_job [--users 1000,10000] [--latency-ms 50]
        [--baseline-users 200] [--concurrency 64]
    (a quick run: --users 500 --baseline-users 50)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.stack import local_stack, process_tree_cpu_seconds
from localdev.local_google.control import GoogleControl
from localdev.processes import (
    FUNCTIONS_DIR,
    REPO,
)

RESULTS = REPO / "bench" / "results" / "offline_job.json"
PROJECT = "demo-bench-job"
CLIENT_ID = "bench-job-client.apps.googleusercontent.com"
SCOPES = ["openid", "email", "profile", "https://www.googleapis.com/auth/drive.appdata"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BATCH = 500


def mint_refresh_tokens(google_url: str, client_secret: str, n: int) -> list[dict]:
    """N users with real refresh tokens: mint a code (control API), redeem it at /token."""
    control = GoogleControl(google_url)
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=8))

    def one(i: int) -> dict:
        minted = control.mint_code(client_id=CLIENT_ID, email=f"bench{i:05d}@example.com",
                                   scopes=SCOPES)
        answer = session.post(f"{google_url}/token", data={
            "grant_type": "authorization_code", "code": minted["code"], "client_id": CLIENT_ID,
            "client_secret": client_secret, "redirect_uri": "postmessage"}, timeout=30)
        answer.raise_for_status()
        body = answer.json()
        return {"sub": minted["sub"], "email": minted["email"], "scope": body["scope"],
                "refresh_token": body["refresh_token"], "access_token": body["access_token"]}

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def seed_collection(env: dict, collection: str, users: list[dict]) -> float:
    """Write the users as the exchange would (sealed tokens), in batches of 500. Seconds taken."""
    sys.path.insert(0, str(FUNCTIONS_DIR))
    from offline_access import wiring
    from offline_access.store import users as user_store

    deps = wiring.build_exchange_dependencies(env)
    store = user_store.UserStore(deps.store.client, collection)
    started = time.perf_counter()
    now = dt.datetime.now(dt.timezone.utc)
    stale = now - dt.timedelta(minutes=1)  # an hour after sign-in: the cached token has expired
    for start in range(0, len(users), BATCH):
        batch = store.client.batch()
        for user in users[start:start + BATCH]:
            sub = user["sub"]
            record = user_store.SignInRecord(
                sub=sub,
                profile={"email": user["email"], "email_verified": True, "name": "Bench User",
                         "picture": None, "hd": None},
                granted_scopes=tuple(user["scope"].split()),
                sealed_refresh_token=deps.sealer.seal(user["refresh_token"], sub=sub,
                                                      field="refresh_token"),
                sealed_access_token=deps.sealer.seal(user["access_token"], sub=sub,
                                                     field="access_token"),
                access_token_expires_at=stale,
            )
            fields, _ = user_store.sign_in_fields(record, None, now - dt.timedelta(hours=1))
            fields["created_at"] = fields["signed_in_at"]
            batch.set(store.ref(sub), fields)
        batch.commit()
    return time.perf_counter() - started


# Workers (run in their own process)


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _time_calls(spent: dict[str, float], lock, owner, name: str, kind: str) -> None:
    """Add the wall time of every call of `owner.name` to `spent[kind]` (instrumentation only)."""
    original = getattr(owner, name)

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            with lock:
                spent[kind] += elapsed

    setattr(owner, name, timed)


def _prepared(env: dict):
    """The production job dependencies, with their secrets read and their channel counted."""
    from bench import rpc_counter
    from offline_access import wiring

    rpc_counter.install()
    deps = wiring.build_job_dependencies(env)
    deps.log_stream = open(os.devnull, "w")  # noqa: SIM115 - the lines are still built
    client_secret = deps.secrets.get(deps.config.client_secret_version).data.decode()
    deps.sealer.check_ready()
    return deps, client_secret


def _measured(run) -> dict:
    """CPU, wall time, memory and Firestore RPCs of `run()` (which returns users, succeeded, stopped)."""
    from bench import rpc_counter

    rss_before = _rss_mb()
    rpcs_before = rpc_counter.total()
    cpu, wall = time.process_time(), time.perf_counter()
    users, succeeded, stopped = run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"users": users, "succeeded": succeeded, "wall_s": wall, "cpu_s": cpu,
            "rss_before_mb": rss_before, "peak_rss_mb": _peak_rss_mb(), "stopped": stopped,
            "firestore_rpcs": rpc_counter.total() - rpcs_before}


def worker_job(env: dict, users: int, batch_writes: bool = True, old_http: bool = False) -> dict:
    from offline_access.offline import run as offline_run

    deps, _ = _prepared(env)
    if old_http:
        from bench.requests_http import RequestsHttp

        deps.http = RequestsHttp(deps.config.job_concurrency)

    def run():
        summary = offline_run.run_offline_job(deps, "bench-run", batch_writes=batch_writes)
        return summary.processed, summary.succeeded, summary.stopped

    return _measured(run)


def worker_today(env: dict, users: int) -> dict:
    return worker_job(env, users, batch_writes=False, old_http=True)


def worker_per_user(env: dict, users: int) -> dict:
    return worker_job(env, users, batch_writes=False)


def worker_peer(env: dict, users: int) -> dict:
    """A thread pool, Credentials.refresh, AuthorizedSession, one update per user."""
    import google.oauth2.credentials
    import requests as requests_lib
    from google.auth.transport.requests import AuthorizedSession, Request
    from google.cloud.firestore_v1.base_query import FieldFilter

    deps, client_secret = _prepared(env)
    concurrency = deps.config.job_concurrency
    http = requests_lib.Session()
    adapter = requests_lib.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=concurrency)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    auth_request = Request(http)
    drive_files = f"{deps.endpoints.drive}/files"

    def one(snapshot) -> bool:
        data = snapshot.to_dict()
        credentials = google.oauth2.credentials.Credentials(
            None, refresh_token=deps.sealer.open(data["refresh_token"], sub=snapshot.id,
                                                  field="refresh_token"),
            token_uri=deps.endpoints.token, client_id=deps.config.client_id,
            client_secret=client_secret, scopes=data["granted_scopes"])
        credentials.refresh(auth_request)
        session = AuthorizedSession(credentials, auth_request=auth_request)
        session.mount("http://", adapter)  # the shared connection pool, not one per user
        listing = session.get(drive_files, params={"spaces": "appDataFolder", "fields": "files(id)"},
                              timeout=10)
        listing.raise_for_status()
        now = dt.datetime.now(dt.timezone.utc)
        snapshot.reference.update({
            "job.last_run_at": now,
            "job.result": {"outcome": "succeeded", "files": len(listing.json()["files"])},
            "next_run_at": now + dt.timedelta(hours=1),
        })
        return True

    def run():
        now = dt.datetime.now(dt.timezone.utc)
        query = (deps.store.collection.where(filter=FieldFilter("status", "==", "active"))
                 .where(filter=FieldFilter("next_run_at", "<=", now)).order_by("next_run_at"))
        with ThreadPoolExecutor(concurrency) as pool:
            done = sum(pool.map(one, query.stream()))
        return done, done, None

    return _measured(run)


def worker_baseline(env: dict, users: int) -> dict:
    """The seed's pattern: one user at a time, new credentials and connections for each."""
    import google.oauth2.credentials
    from google.auth.transport.requests import AuthorizedSession
    from google.cloud.firestore_v1.base_query import FieldFilter

    deps, client_secret = _prepared(env)

    def run():
        now = dt.datetime.now(dt.timezone.utc)
        query = (deps.store.collection.where(filter=FieldFilter("status", "==", "active"))
                 .where(filter=FieldFilter("next_run_at", "<=", now)).order_by("next_run_at")
                 .limit(users))
        done = 0
        for snapshot in query.stream():
            data = snapshot.to_dict()
            refresh_token = deps.sealer.open(data["refresh_token"], sub=snapshot.id,
                                             field="refresh_token")
            credentials = google.oauth2.credentials.Credentials(
                None, refresh_token=refresh_token, token_uri=deps.endpoints.token,
                client_id=deps.config.client_id, client_secret=client_secret,
                scopes=data["granted_scopes"])
            session = AuthorizedSession(credentials)  # refreshes on the first call
            listing = session.get(f"{deps.endpoints.drive}/files",
                                  params={"spaces": "appDataFolder", "fields": "files(id)"},
                                  timeout=10)
            listing.raise_for_status()
            session.close()
            snapshot.reference.update({
                "job.last_run_at": dt.datetime.now(dt.timezone.utc),
                "job.result": {"files": len(listing.json()["files"])},
                "next_run_at": now + dt.timedelta(hours=1),
            })
            done += 1
        return done, done, None

    return _measured(run)


WORKERS = {"job": worker_job, "today": worker_today, "per_user": worker_per_user,
           "peer": worker_peer, "baseline": worker_baseline}


def run_worker(kind: str, env: dict, users: int, watch: dict[str, int]) -> dict:
    """Run a worker process; also measure the CPU the stack's processes used meanwhile."""
    before = {name: process_tree_cpu_seconds(pid) for name, pid in watch.items()}
    process = subprocess.run(
        [sys.executable, "-m", "bench.bench_offline_job", "--worker", kind,
         "--users", str(users)],
        env={**os.environ, **env, "PYTHONPATH": f"{FUNCTIONS_DIR}:{REPO}"}, cwd=REPO,
        capture_output=True, text=True, check=False)
    if process.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{process.stderr[-3000:]}")
    result = json.loads(process.stdout.strip().splitlines()[-1])
    for name, pid in watch.items():
        used = process_tree_cpu_seconds(pid) - before[name]
        result[f"{name}_cores"] = used / result["wall_s"]
    return result


def summarise(result: dict) -> dict:
    users = max(result["users"], 1)
    per_second = result["users"] / result["wall_s"]
    return {
        "users": result["users"],
        "succeeded": result["succeeded"],
        "users_per_s": round(result["users"] / result["wall_s"], 1),
        "wall_s": round(result["wall_s"], 2),
        "cpu_ms_per_user": round(result["cpu_s"] / users * 1000, 2),
        "our_cores": round(result["cpu_s"] / result["wall_s"], 2),
        "local_google_cores": round(result["local_google_cores"], 2),
        "firestore_cores": round(result["firestore_cores"], 2),
        "local_google_cpu_ms_per_user": round(result["local_google_cores"] / per_second * 1000, 2),
        "firestore_cpu_ms_per_user": round(result["firestore_cores"] / per_second * 1000, 2),
        "firestore_rpcs": result["firestore_rpcs"],
        "firestore_rpcs_per_user": round(result["firestore_rpcs"] / users, 3),
        "rss_before_run_mb": round(result["rss_before_mb"], 1),
        "peak_rss_mb": round(result["peak_rss_mb"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--users", default="1000,10000",
                        help="comma-separated user counts for the batched job (default 1000,10000); "
                             "today's job and the peer run on the smallest")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--baseline-users", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=64,
                        help="JOB_CONCURRENCY and the peer's pool (default 64; production's default is 32)")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](dict(os.environ), int(args.users))))
        return
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    counts = [int(n) for n in args.users.split(",") if n.strip()]
    smallest = min(counts)
    biggest = max(counts + [args.baseline_users])

    with local_stack(project=PROJECT, client_id=CLIENT_ID, latency_ms=0) as stack:
        control, google_url, client_secret = stack.control, stack.google_url, stack.client_secret
        env = {
            **stack.env,
            "OFFLINE_TASKS": "drive_appdata",
            "JOB_CONCURRENCY": str(args.concurrency),
            "JOB_TIME_BUDGET_SECONDS": "3000",
        }
        print(f"minting {biggest} refresh tokens through the local Google ...", flush=True)
        started = time.perf_counter()
        users = mint_refresh_tokens(google_url, client_secret, biggest)
        mint_s = time.perf_counter() - started
        # (label, worker kind, users): today's job and the batched one run back to back.
        plan = [("baseline", "baseline", args.baseline_users), ("peer", "peer", smallest),
                ("today", "today", smallest), ("per_user", "per_user", smallest)]
        plan += [(f"job_{n}", "job", n) for n in counts]
        seed_s = {}
        for label, _, n in plan:
            seed_s[label] = seed_collection({**env, "USERS_COLLECTION": f"bench_{label}"},
                                            f"bench_{label}", users[:n])
            print(f"seeded {n} users into bench_{label} in {seed_s[label]:.1f} s", flush=True)
        control.latency(args.latency_ms)
        watch = stack.pids

        runs = {}
        for label, kind, n in plan:
            print(f"{label} on {n} users ...", flush=True)
            refreshed_before = control.counters()["token_grants"].get("refresh_token", 0)
            runs[label] = run_worker(kind, {**env, "USERS_COLLECTION": f"bench_{label}"}, n, watch)
            runs[label]["token_refreshes"] = (
                control.counters()["token_grants"].get("refresh_token", 0) - refreshed_before)
    load_at_end = [round(x, 2) for x in os.getloadavg()]

    for run in runs.values():
        run.setdefault("firestore_cores", float("nan"))
    table = {label: summarise(run) for label, run in runs.items()}
    baseline = table["baseline"]
    for label, row in table.items():
        row["speedup_vs_baseline"] = round(row["users_per_s"] / baseline["users_per_s"], 1)
        row["token_refreshes"] = runs[label]["token_refreshes"]
        row["stopped"] = runs[label]["stopped"]
    job, today, peer = table[f"job_{smallest}"], table["today"], table["peer"]
    per_user = table["per_user"]
    goals = {
        "cpu_ms_per_user": job["cpu_ms_per_user"],
        "cpu_vs_today": round(job["cpu_ms_per_user"] / today["cpu_ms_per_user"], 2),
        "cpu_vs_per_user_writes": round(job["cpu_ms_per_user"] / per_user["cpu_ms_per_user"], 2),
        "users_per_s_vs_per_user_writes": round(job["users_per_s"] / per_user["users_per_s"], 2),
        "cpu_vs_peer": round(job["cpu_ms_per_user"] / peer["cpu_ms_per_user"], 2),
        "firestore_rpcs_per_user": job["firestore_rpcs_per_user"],
        "users_per_s_vs_today": round(job["users_per_s"] / today["users_per_s"], 2),
        "users_per_s_vs_peer": round(job["users_per_s"] / peer["users_per_s"], 2),
    }
    peak_growth = (round(table[f"job_{max(counts)}"]["peak_rss_mb"] - job["peak_rss_mb"], 1)
                   if len(counts) > 1 else None)
    results = {
        "google_latency_ms": args.latency_ms,
        "job_concurrency": args.concurrency,
        "tasks": "drive_appdata (refresh + Drive files.list per user, for every variant)",
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
        # Other work on the machine skews every figure: recorded so that runs can be compared.
        "load_average_at_start": load_at_start,
        "load_average_at_end": load_at_end,
        "seeding": {"mint_refresh_tokens_s": round(mint_s, 1),
                    "write_users_s": {k: round(v, 1) for k, v in seed_s.items()}},
        "runs": table,
        "goals": goals,
        "peak_rss_growth_mb_largest_vs_smallest": peak_growth,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    names = {"baseline": "seed pattern", "peer": "fair peer", "today": "today's job",
             "per_user": "per-user writes"}
    header = (f"{'run':>18} {'users':>6} {'users/s':>8} {'vs seed':>8} | {'CPU ms/user: ours':>17} "
              f"{'Google':>6} {'Firestore':>9} | {'Firestore RPCs/user':>19} | {'cores: ours':>11} "
              f"{'Google':>6} {'Firestore':>9} | {'peak MB':>7}")

    def row(label: str, r: dict) -> str:
        name = names.get(label, f"batched job {label.removeprefix('job_')}")
        return (f"{name:>18} {r['users']:>6} {r['users_per_s']:>8} {str(r['speedup_vs_baseline']) + 'x':>8} | "
                f"{r['cpu_ms_per_user']:>17} {r['local_google_cpu_ms_per_user']:>6} "
                f"{r['firestore_cpu_ms_per_user']:>9} | {r['firestore_rpcs_per_user']:>19} | "
                f"{r['our_cores']:>11} {r['local_google_cores']:>6} {r['firestore_cores']:>9} | "
                f"{r['peak_rss_mb']:>7}")

    largest = table[f"job_{max(counts)}"]
    total_cores = largest["our_cores"] + largest["local_google_cores"] + largest["firestore_cores"]
    emulators_ms = largest["local_google_cpu_ms_per_user"] + largest["firestore_cpu_ms_per_user"]
    if total_cores >= 0.8 * (os.cpu_count() or 1):
        pace = (f"the machine's {os.cpu_count()} cores, shared by the three processes "
                f"({total_cores:.2f} cores busy); ours uses {largest['cpu_ms_per_user']} ms per "
                f"user, the emulators {emulators_ms:.2f} ms together")
    elif largest["our_cores"] >= 0.85:
        pace = "our process (close to one core, the most a Python process gets with the GIL)"
    else:
        pace = "latency: the injected Google latency and the Firestore emulator's write latency"
    results["pace"] = {"cores_busy": round(total_cores, 2),
                       "emulators_cpu_ms_per_user": round(emulators_ms, 2), "set_by": pace}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"""
run_offline_job benchmark (local Google latency {args.latency_ms} ms, concurrency {args.concurrency} \
for all but the seed pattern, {results['machine']}, load average {load_at_start[0]} at start, \
{load_at_end[0]} at end)
each user: refresh, Drive files.list, result (the job also claims; the batched job claims a page \
and writes 100 results per BatchWrite)
{header}
""" + "\n".join(row(label, r) for label, r in table.items()) + f"""

goals, batched job vs today's job (per-user writes, requests) in this run ({smallest} users each):
  our CPU per user {job['cpu_ms_per_user']} ms = {goals['cpu_vs_today']}x today's \
{today['cpu_ms_per_user']} ms (goal <= 2 ms, half of today's)
  Firestore RPCs per user {job['firestore_rpcs_per_user']} (today's {today['firestore_rpcs_per_user']}; goal <= 0.2)
  users/s {job['users_per_s']} = {goals['users_per_s_vs_today']}x today's {today['users_per_s']} \
(goal >= 1.5x)
  vs the fair peer: {goals['users_per_s_vs_peer']}x its users/s, {goals['cpu_vs_peer']}x its CPU per user \
(goal: ahead on both)
  what the batching alone buys (vs the per-user writes on today's HTTP client): \
{goals['cpu_vs_per_user_writes']}x the CPU per user, {goals['users_per_s_vs_per_user_writes']}x the users/s
speed-up vs the seed pattern: {job['speedup_vs_baseline']}x (goal >= 20x); the seed ran on \
{baseline['users']} users, its cost per user does not depend on N
peak RSS growth from {smallest} to {max(counts)} users: {peak_growth} MB (goal <= 50 MB)
pace set by: {pace}
seeding: {biggest} refresh tokens minted in {mint_s:.1f} s
written to {RESULTS.relative_to(REPO)}
""")


if __name__ == "__main__":
    main()
