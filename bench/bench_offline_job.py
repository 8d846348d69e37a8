"""Benchmark of `run_offline_job`: users per second, CPU per user and peak memory, vs a naive loop.

Setup: N users with real refresh tokens (minted through the local Google's control API and
redeemed at its `/token`, sealed with the real sealing key) are written to the Firestore
emulator in batches of 500, each document exactly as the exchange writes it for a new user, with
the cached access token already stale (as it is an hour later, at the next run). The local
Google runs in its own process and answers every call after a fixed latency (default 50 ms).

Measured, each in a fresh worker process (so CPU and peak memory are its own):

- `job`: `run_offline_job` called in-process with the production dependencies
  (`wiring.build_job_dependencies`), tasks `drive_appdata` only (the same work as the baseline:
  refresh, then Drive), for each N in `--users`.
- `baseline`: the seed's pattern on the same kind of data, one user at a time: read the due users,
  and for each a new `google.oauth2.credentials.Credentials`, a new `AuthorizedSession` (new
  connections), refresh, the Drive call, one result write. It runs on `--baseline-users` users
  and is extrapolated per user (its cost per user does not depend on N).

CPU is `time.process_time()` of the worker (our code and the client libraries, every thread);
peak memory is the worker's RSS high-water mark (VmHWM). The CPU used meanwhile by the local
Google and the Firestore emulator is read from /proc, to show which process sets the pace.

    python -m bench.bench_offline_job [--users 1000,10000] [--latency-ms 50]
        [--baseline-users 200] [--concurrency 64]
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


def worker_job(env: dict, users: int) -> dict:
    import threading

    from offline_access import wiring
    from offline_access.offline import api_session, one_user
    from offline_access.offline import run as offline_run
    from offline_access.store.job_claims import JobStore

    # Where each user's time goes: Firestore writes, Google calls, the rest (ours, and waiting
    # for the GIL or a core).
    spent = {"firestore": 0.0, "google": 0.0, "user": 0.0}
    lock = threading.Lock()
    _time_calls(spent, lock, JobStore, "claim", "firestore")
    _time_calls(spent, lock, JobStore, "finish", "firestore")
    _time_calls(spent, lock, one_user, "refresh_access_token", "google")
    _time_calls(spent, lock, api_session.ApiSession, "_send", "google")
    _time_calls(spent, lock, offline_run, "process_user", "user")
    deps = wiring.build_job_dependencies(env)
    deps.log_stream = open(os.devnull, "w")  # noqa: SIM115 - the lines are still built
    deps.secrets.get(deps.config.client_secret_version)
    deps.sealer.check_ready()
    rss_before = _rss_mb()
    cpu, wall = time.process_time(), time.perf_counter()
    summary = offline_run.run_offline_job(deps, "bench-run")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    per_user = {k: v / max(summary.processed, 1) * 1000 for k, v in spent.items()}
    return {"users": summary.processed, "succeeded": summary.succeeded, "wall_s": wall,
            "cpu_s": cpu, "rss_before_mb": rss_before, "peak_rss_mb": _peak_rss_mb(),
            "stopped": summary.stopped,
            "user_ms": {"total": per_user["user"], "firestore_writes": per_user["firestore"],
                        "google_calls": per_user["google"],
                        "other": per_user["user"] - per_user["firestore"] - per_user["google"]}}


def worker_baseline(env: dict, users: int) -> dict:
    """The seed's pattern: one user at a time, new credentials and connections for each."""
    import google.oauth2.credentials
    from google.auth.transport.requests import AuthorizedSession
    from google.cloud.firestore_v1.base_query import FieldFilter

    from offline_access import wiring

    deps = wiring.build_job_dependencies(env)
    client_secret = deps.secrets.get(deps.config.client_secret_version).data.decode()
    deps.sealer.check_ready()
    rss_before = _rss_mb()
    cpu, wall = time.process_time(), time.perf_counter()
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
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"users": done, "succeeded": done, "wall_s": wall, "cpu_s": cpu,
            "rss_before_mb": rss_before, "peak_rss_mb": _peak_rss_mb(), "stopped": None}


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
        **({"user_wall_ms": {k: round(v, 1) for k, v in result["user_ms"].items()}}
           if "user_ms" in result else {}),
        "rss_before_run_mb": round(result["rss_before_mb"], 1),
        "peak_rss_mb": round(result["peak_rss_mb"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--users", default="1000,10000",
                        help="comma-separated user counts for the job (default 1000,10000)")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--baseline-users", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=64,
                        help="JOB_CONCURRENCY (default 64; production's default is 32)")
    parser.add_argument("--worker", choices=["job", "baseline"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker = worker_job if args.worker == "job" else worker_baseline
        print(json.dumps(worker(dict(os.environ), int(args.users))))
        return
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    counts = [int(n) for n in args.users.split(",") if n.strip()]
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
        seed_s = {}
        collections = {"baseline": ("bench_baseline", args.baseline_users)}
        collections.update({str(n): (f"bench_{n}", n) for n in counts})
        for name, (collection, n) in collections.items():
            seed_s[name] = seed_collection({**env, "USERS_COLLECTION": collection}, collection,
                                           users[:n])
            print(f"seeded {n} users into {collection} in {seed_s[name]:.1f} s", flush=True)
        control.latency(args.latency_ms)
        watch = stack.pids

        runs = {}
        print(f"baseline on {args.baseline_users} users ...", flush=True)
        runs["baseline"] = run_worker("baseline", {**env, "USERS_COLLECTION": "bench_baseline"},
                                      args.baseline_users, watch)
        for n in counts:
            print(f"job on {n} users ...", flush=True)
            refreshed_before = control.counters()["token_grants"].get("refresh_token", 0)
            runs[str(n)] = run_worker("job", {**env, "USERS_COLLECTION": f"bench_{n}"}, n, watch)
            runs[str(n)]["token_refreshes"] = (
                control.counters()["token_grants"].get("refresh_token", 0) - refreshed_before)

    for run in runs.values():
        run.setdefault("firestore_cores", float("nan"))
    baseline = summarise(runs["baseline"])
    jobs = {n: summarise(runs[str(n)]) for n in counts}
    for n in counts:
        jobs[n]["speedup_vs_baseline"] = round(jobs[n]["users_per_s"] / baseline["users_per_s"], 1)
        jobs[n]["token_refreshes"] = runs[str(n)]["token_refreshes"]
        jobs[n]["stopped"] = runs[str(n)]["stopped"]
    peak_growth = (round(jobs[max(counts)]["peak_rss_mb"] - jobs[min(counts)]["peak_rss_mb"], 1)
                   if len(counts) > 1 else None)
    results = {
        "google_latency_ms": args.latency_ms,
        "job_concurrency": args.concurrency,
        "tasks": "drive_appdata (refresh + Drive files.list per user, as the baseline)",
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
        # Other work on the machine skews every figure: recorded so that runs can be compared.
        "load_average_at_start": load_at_start,
        "seeding": {"mint_refresh_tokens_s": round(mint_s, 1),
                    "write_users_s": {k: round(v, 1) for k, v in seed_s.items()}},
        "baseline": {**baseline, "note": (
            f"run on {runs['baseline']['users']} users; its cost per user does not depend on N, "
            "so its users/s and CPU/user are used as-is for every N")},
        "job": {str(n): v for n, v in jobs.items()},
        "peak_rss_growth_mb_largest_vs_smallest": peak_growth,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    header = (f"{'run':>16} {'users':>6} {'users/s':>8} {'speed-up':>8} | {'CPU ms/user:':>12} "
              f"{'ours':>5} {'Google':>6} {'Firestore':>9} | {'cores: ours':>11} {'Google':>6} "
              f"{'Firestore':>9} | {'peak MB':>7}")

    def row(name: str, r: dict, speedup: str) -> str:
        return (f"{name:>16} {r['users']:>6} {r['users_per_s']:>8} {speedup:>8} | {'':>12} "
                f"{r['cpu_ms_per_user']:>5} {r['local_google_cpu_ms_per_user']:>6} "
                f"{r['firestore_cpu_ms_per_user']:>9} | {r['our_cores']:>11} "
                f"{r['local_google_cores']:>6} {r['firestore_cores']:>9} | {r['peak_rss_mb']:>7}")

    rows = [row("baseline (seed)", baseline, "1.0x")]
    rows += [row("run_offline_job", jobs[n], f"{jobs[n]['speedup_vs_baseline']}x") for n in counts]
    largest = jobs[max(counts)]
    wall = largest["user_wall_ms"]
    emulators_ms = largest["local_google_cpu_ms_per_user"] + largest["firestore_cpu_ms_per_user"]
    total_cores = largest["our_cores"] + largest["local_google_cores"] + largest["firestore_cores"]
    saturated = total_cores >= 0.8 * (os.cpu_count() or 1)
    if saturated:
        pace = (f"the machine's {os.cpu_count()} cores, shared by the three processes "
                f"({total_cores:.2f} cores busy); ours uses {largest['cpu_ms_per_user']} ms per "
                f"user, the emulators {emulators_ms:.2f} ms together")
    elif largest["our_cores"] >= 0.85:
        pace = "our process (close to one core, the most a Python process gets with the GIL)"
    else:
        pace = "latency: the injected Google latency and the Firestore emulator's write latency"
    print(f"""
run_offline_job benchmark (local Google latency {args.latency_ms} ms, JOB_CONCURRENCY \
{args.concurrency}, {results['machine']}, load average at start {load_at_start[0]})
each user: claim, refresh, Drive files.list, result write (the baseline: refresh, Drive, write)
{header}
""" + "\n".join(rows) + f"""

baseline: {results['baseline']['note']}
speed-up vs baseline: {', '.join(f"{jobs[n]['speedup_vs_baseline']}x at {n}" for n in counts)} \
(goal >= 20x)
peak RSS growth from {min(counts)} to {max(counts)} users: {peak_growth} MB (goal <= 50 MB)
where a user's {wall['total']} ms go at {max(counts)} users: Google calls {wall['google_calls']} ms \
(2 x {args.latency_ms} ms injected), Firestore claim + result writes {wall['firestore_writes']} ms, \
other {wall['other']} ms (wall times, including waits for a core or the GIL)
pace set by: {pace}
seeding: {biggest} refresh tokens minted in {mint_s:.1f} s; user documents written in batches \
of {BATCH}: {', '.join(f'{k}: {v:.1f} s' for k, v in seed_s.items())}
written to {RESULTS.relative_to(REPO)}
""")
    results["pace"] = {"user_wall_ms": wall, "cores_busy": round(total_cores, 2),
                       "emulators_cpu_ms_per_user": round(emulators_ms, 2), "set_by": pace}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
