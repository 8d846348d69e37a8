"""Benchmark of the fan-out: message size, and worker processes fed by the Pub/Sub emulator.

The same local stack as bench_offline_job (Firestore emulator, local Google in its own process,
local Secret Manager) plus the official Pub/Sub emulator. For each measurement: N users are
seeded, the dispatcher (`offline.dispatch.dispatch_run`, in this process, with the real client
library) publishes them to a fresh topic, and the emulator pushes every message over HTTP to
`run_offline_worker`, served by functions-framework exactly as `make dev` serves it, in
`--workers` gunicorn processes on one port (as Cloud Run spreads requests over instances). The
run ends when every user's document says this run processed it.

Two tables, in one run:

- message size (`--sizes`, default 1,10,50 users per message) at `--latency-ms` (50), one
  worker process: users/s, the worker's CPU per user, its Firestore RPCs per user, push
  requests per user. Every size is offered the same number of users in flight (the pool is
  `JOB_CONCURRENCY`; one-user messages get that many HTTP threads instead).
- scale-out (`--scale`, default 1,2,4 worker processes) at `--scale-latency-ms` (200, so that a
  run waits on Google rather than on a core), messages of `--message-users` (50) users: users/s,
  and the cores each process used, to show where the scaling stops on this machine and why.
  The emulator pushes at most two requests at a time per subscription, too few to feed four
  processes, so here each process pulls (`bench/pull_worker.py`: the real subscriber client,
  four messages outstanding, each handed to the same `Worker.handle` the push adapter calls).

CPU is read from /proc for each process tree (the workers, the emulators, the local Google);
the workers' Firestore RPCs by a gRPC interceptor (`bench/rpc_counter.py`, installed in each
worker process by `bench/instrumented/sitecustomize.py`).

    python -m bench.bench_fanout [--users 600] [--scale-users 3000] [--sizes 1,10,50]
        [--scale 1,2,4] [--latency-ms 50] [--scale-latency-ms 200] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from google.cloud import firestore as gcloud_firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from bench import rpc_counter
from bench.bench_offline_job import CLIENT_ID, PROJECT, mint_refresh_tokens, seed_collection
from bench.stack import local_stack, process_tree_cpu_seconds, wait_until_idle
from localdev import pubsub_topology
from localdev.processes import FUNCTIONS_DIR, REPO, Process, PubSubEmulator, free_port, wait_until_ready

RESULTS = REPO / "bench" / "results" / "fanout.json"
INSTRUMENTED = REPO / "bench" / "instrumented"


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


class WorkerServer(Process):
    """`run_offline_worker` under functions-framework, in `workers` gunicorn processes, counted."""

    def __init__(self, env: dict[str, str], workers: int, threads: int, counts_file: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {**os.environ, **env, "WORKERS": str(workers), "THREADS": str(threads),
                "FUNCTION_TARGET": "run_offline_worker", "BENCH_RPC_COUNTS": counts_file,
                "PYTHONPATH": f"{INSTRUMENTED}:{FUNCTIONS_DIR}:{REPO}", "PYTHONUNBUFFERED": "1"}
        self.log = tempfile.TemporaryFile()
        super().__init__("worker", [sys.executable, "-m", "functions_framework", "--target",
                                    "run_offline_worker", "--source", str(FUNCTIONS_DIR / "main.py"),
                                    "--host", "127.0.0.1", "--port", str(self.port)],
                         env=full, cwd=FUNCTIONS_DIR, output=self.log)
        wait_until_ready(self.url + "/", timeout=60, process=self.popen)

    def message_lines(self) -> list[dict]:
        self.log.seek(0)
        lines = [json.loads(line) for line in self.log.read().decode().splitlines()
                 if line.startswith("{")]
        return [line for line in lines if line.get("event") == "offline_job_message" and "users" in line]


class PullWorkers:
    """`count` processes, each one worker instance pulling from `subscription`."""

    def __init__(self, env: dict[str, str], count: int, subscription: str, counts_file: str) -> None:
        full = {**os.environ, **env, "BENCH_RPC_COUNTS": counts_file,
                "PYTHONPATH": f"{FUNCTIONS_DIR}:{REPO}", "PYTHONUNBUFFERED": "1"}
        self.logs = [tempfile.TemporaryFile() for _ in range(count)]
        self.processes = [Process(f"pull-worker-{i}", [sys.executable, "-m", "bench.pull_worker",
                                                       subscription, "--messages", "4"],
                                  env=full, cwd=REPO, output=log)
                          for i, log in enumerate(self.logs)]
        deadline = time.monotonic() + 60
        for process, log in zip(self.processes, self.logs, strict=True):
            while True:
                log.seek(0)
                if b"ready" in log.read():
                    break
                if process.popen.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"a pull worker did not start:\n{log.read().decode()[-2000:]}")
                time.sleep(0.1)

    @property
    def pids(self) -> list[int]:
        return [p.popen.pid for p in self.processes]

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def processed(client: gcloud_firestore.Client, collection: str, run_id: str) -> int:
    query = client.collection(collection).where(filter=FieldFilter("job.last_run_id", "==", run_id))
    return int(query.count().get()[0][0].value)


def measure(stack, env: dict[str, str], users: list[dict], *, message_users: int, workers: int,
            threads: int, pull: bool = False, timeout: float = 600.0) -> dict:
    """Seed, dispatch and wait: one fan-out run, its speed and costs.

    `pull`: `workers` pulling processes (the scale-out) instead of one push endpoint served by
    `workers` gunicorn processes.
    """
    from google.cloud import pubsub_v1

    collection = f"fanout_{uuid.uuid4().hex[:8]}"
    run_env = {**env, "USERS_COLLECTION": collection, "JOB_MESSAGE_USERS": str(message_users)}
    seed_collection(run_env, collection, users)
    counts_dir = tempfile.mkdtemp(prefix="bench-rpcs-")
    counts_file = os.path.join(counts_dir, "rpcs")
    prefix = f"b{uuid.uuid4().hex[:8]}"
    if pull:
        names = pubsub_topology.names(PROJECT, prefix)
        pubsub_v1.PublisherClient().create_topic(name=names.topic)
        pubsub_v1.SubscriberClient().create_subscription(request={
            "name": names.subscription, "topic": names.topic, "ack_deadline_seconds": 300})
        server = PullWorkers(run_env, workers, names.subscription, counts_file)
        worker_pids = server.pids
    else:
        server = WorkerServer(run_env, workers, threads, counts_file)
        names = pubsub_topology.create(PROJECT, server.url + "/", prefix=prefix)
        worker_pids = children(server.popen.pid)
    try:
        from offline_access import wiring
        from offline_access.offline.dispatch import dispatch_run

        deps = wiring.build_job_dependencies({**run_env, "JOB_WORK_TOPIC": names.topic})
        deps.log_stream = io.StringIO()
        client = gcloud_firestore.Client(project=PROJECT)
        wait_until_idle(stack.pids)
        before = {name: process_tree_cpu_seconds(pid) for name, pid in stack.pids.items()}
        per_worker_before = {pid: process_tree_cpu_seconds(pid) for pid in worker_pids}
        if not pull:
            before["server"] = process_tree_cpu_seconds(server.popen.pid)
        run_id = f"bench@{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        dispatched = dispatch_run(deps, run_id)
        dispatch_s = time.perf_counter() - started
        deadline = started + timeout
        done = 0
        while time.perf_counter() < deadline:
            done = processed(client, collection, run_id)
            if done >= len(users):
                break
            time.sleep(0.25)
        wall = time.perf_counter() - started
        used = {name: process_tree_cpu_seconds(pid) - before[name] for name, pid in stack.pids.items()}
        per_worker = sorted((process_tree_cpu_seconds(pid) - cpu
                             for pid, cpu in per_worker_before.items()), reverse=True)
        used["worker"] = (process_tree_cpu_seconds(server.popen.pid) - before["server"]
                          if not pull else sum(per_worker))
        time.sleep(0.5)  # the counters are rewritten every 0.2 s
        rpcs = sum(rpc_counter.read_reports(counts_file).values())
        deliveries = len(server.message_lines()) if not pull else dispatched.messages
    finally:
        server.stop()
        pubsub_topology.delete(names)
        shutil.rmtree(counts_dir, ignore_errors=True)
    n = max(done, 1)
    return {
        "users": len(users), "processed": done, "messages": dispatched.messages,
        "deliveries": deliveries, "wall_s": round(wall, 2), "dispatch_s": round(dispatch_s, 2),
        "users_per_s": round(done / wall, 1),
        "worker_cpu_ms_per_user": round(used["worker"] / n * 1000, 2),
        "worker_cores": round(used["worker"] / wall, 2),
        "cores_per_worker_process": [round(c / wall, 2) for c in per_worker],
        "firestore_cores": round(used.get("firestore", float("nan")) / wall, 2),
        "local_google_cores": round(used["local_google"] / wall, 2),
        "pubsub_cores": round(used["pubsub"] / wall, 2),
        "firestore_rpcs_per_user": round(rpcs / n, 3),
        "push_requests_per_user": round(deliveries / n, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--users", type=int, default=600, help="users per message-size run")
    parser.add_argument("--scale-users", type=int, default=3000, help="users per scale-out run")
    parser.add_argument("--sizes", default="1,10,50", help="users per message to compare")
    parser.add_argument("--scale", default="1,2,4", help="worker process counts to compare")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--scale-latency-ms", type=int, default=200)
    parser.add_argument("--message-users", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=32,
                        help="JOB_CONCURRENCY of each worker process (production's default)")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    scale = [int(x) for x in args.scale.split(",") if x.strip()]
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    pubsub = PubSubEmulator()
    os.environ["PUBSUB_EMULATOR_HOST"] = pubsub.host_port
    try:
        with local_stack(project=PROJECT, client_id=CLIENT_ID, latency_ms=0) as stack:
            stack.pids["pubsub"] = pubsub.popen.pid
            env = {**stack.env, "PUBSUB_EMULATOR_HOST": pubsub.host_port, "JOB_MODE": "pubsub",
                   "JOB_WORK_TOPIC": "unused", "OFFLINE_TASKS": "drive_appdata",
                   "JOB_CONCURRENCY": str(args.concurrency), "JOB_TIME_BUDGET_SECONDS": "120"}
            needed = max(args.users, args.scale_users)
            print(f"minting {needed} refresh tokens through the local Google ...", flush=True)
            users = mint_refresh_tokens(stack.google_url, stack.client_secret, needed)
            by_size, by_workers = {}, {}
            stack.control.latency(args.latency_ms)
            for size in sizes:
                threads = max(4, math.ceil(args.concurrency / size))
                print(f"message size {size}: {args.users} users, 1 worker process, "
                      f"{threads} HTTP threads ...", flush=True)
                by_size[size] = measure(stack, env, users[:args.users], message_users=size,
                                        workers=1, threads=threads)
            stack.control.latency(args.scale_latency_ms)
            for workers in scale:
                print(f"scale-out: {workers} pulling worker process(es), {args.scale_users} users ...",
                      flush=True)
                by_workers[workers] = measure(stack, env, users[:args.scale_users],
                                              message_users=args.message_users, workers=workers,
                                              threads=4, pull=True)
    finally:
        pubsub.stop()
        os.environ.pop("PUBSUB_EMULATOR_HOST", None)
    load_at_end = [round(x, 2) for x in os.getloadavg()]
    results = {"machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
               "load_average_at_start": load_at_start, "load_average_at_end": load_at_end,
               "concurrency_per_worker": args.concurrency,
               "message_size": {"google_latency_ms": args.latency_ms, "runs": by_size},
               "scale_out": {"google_latency_ms": args.scale_latency_ms,
                             "message_users": args.message_users, "runs": by_workers}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    print(f"""
fan-out benchmark ({results['machine']}, load average {load_at_start[0]} at start, \
{load_at_end[0]} at end; JOB_CONCURRENCY {args.concurrency} per worker process)

message size (local Google latency {args.latency_ms} ms, 1 worker process, {args.users} users):
{'users/msg':>9} {'users/s':>8} | {'worker CPU ms/user':>18} {'Firestore RPCs/user':>19} \
{'push requests/user':>18} | {'cores: worker':>13} {'Firestore':>9} {'Google':>6} {'Pub/Sub':>7}""")
    for size, r in by_size.items():
        print(f"{size:>9} {r['users_per_s']:>8} | {r['worker_cpu_ms_per_user']:>18} "
              f"{r['firestore_rpcs_per_user']:>19} {r['push_requests_per_user']:>18} | "
              f"{r['worker_cores']:>13} {r['firestore_cores']:>9} {r['local_google_cores']:>6} "
              f"{r['pubsub_cores']:>7}")
    base = by_workers[min(by_workers)]["users_per_s"] if by_workers else 1
    print(f"""
scale-out (local Google latency {args.scale_latency_ms} ms, messages of {args.message_users} \
users, {args.scale_users} users):
{'workers':>7} {'users/s':>8} {'speed-up':>8} | {'cores: workers (each)':>30} {'Firestore':>9} \
{'Google':>6} {'Pub/Sub':>7} {'total':>6}""")
    for workers, r in by_workers.items():
        total = r["worker_cores"] + r["firestore_cores"] + r["local_google_cores"] + r["pubsub_cores"]
        each = "/".join(str(c) for c in r["cores_per_worker_process"])
        print(f"{workers:>7} {r['users_per_s']:>8} {round(r['users_per_s'] / base, 2):>7}x | "
              f"{str(r['worker_cores']) + ' (' + each + ')':>30} {r['firestore_cores']:>9} "
              f"{r['local_google_cores']:>6} {r['pubsub_cores']:>7} {round(total, 2):>6}")
    print(f"\nwritten to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
