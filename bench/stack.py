"""The local stack for benchmarks: the same components as the tests, started once per run.

The local Google runs in its own process, so that its CPU time can be told apart from ours
(`process_tree_cpu_seconds`), as the Firestore emulator's is.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from localdev.local_google.control import GoogleControl
from localdev.local_secret_manager import LocalSecretManager
from localdev.processes import REPO, FirestoreEmulator, Process, free_port, wait_until_ready
from localdev.stack_secrets import seed

ORIGIN = "http://localhost:8080"
SCOPES = ["openid", "email", "profile", "https://www.googleapis.com/auth/drive.appdata"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class BenchStack:
    """What a benchmark needs of the running stack."""

    env: dict[str, str]  # the environment of a function instance pointed at the stack
    control: GoogleControl
    google_url: str
    client_secret: str
    secret_manager: LocalSecretManager
    pids: dict[str, int]  # processes whose CPU time is accounted separately


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its live descendants (gunicorn's worker, the emulator's Java)."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        total += times.get(current, 0.0)
        stack.extend(children.get(current, ()))
    return total


def wait_until_idle(pids: dict[str, int], *, interval: float = 0.25, busy_share: float = 0.05,
                    timeout: float = 20.0) -> float:
    """Wait until the stack's processes (the emulator's JVM collecting garbage after a load, say)
    use under `busy_share` of one core, so that they do not skew a timing; returns the wait."""
    started = time.monotonic()
    before = sum(process_tree_cpu_seconds(pid) for pid in pids.values())
    while time.monotonic() - started < timeout:
        time.sleep(interval)
        after = sum(process_tree_cpu_seconds(pid) for pid in pids.values())
        if after - before < busy_share * interval:
            break
        before = after
    return time.monotonic() - started


@contextmanager
def local_stack(*, project: str, client_id: str, latency_ms: int = 50):
    """Start Firestore (unless `FIRESTORE_EMULATOR_HOST` is set), Secret Manager and Google."""
    client_secret = "bench-secret-" + secrets.token_hex(8)
    firestore = None
    firestore_host = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if not firestore_host:
        firestore = FirestoreEmulator()
        firestore_host = firestore.host_port
        os.environ["FIRESTORE_EMULATOR_HOST"] = firestore_host
    secret_manager = LocalSecretManager().start()
    secret_names = seed(secret_manager, project, client_secret=client_secret)
    secret_manager.reset_counters()  # the seeding's own reads are not the functions'
    google_port = free_port()
    google = Process("local-google", [
        sys.executable, "-m", "localdev.local_google", "--host", "127.0.0.1",
        "--port", str(google_port), "--client-id", client_id, "--client-secret", client_secret,
        "--origin", ORIGIN], cwd=REPO)
    google_url = f"http://127.0.0.1:{google_port}"
    try:
        wait_until_ready(google_url + "/_control/health", process=google.popen)
        control = GoogleControl(google_url)
        control.latency(latency_ms)
        pids = {"local_google": google.popen.pid}
        if firestore is not None:
            pids["firestore"] = firestore.popen.pid
        yield BenchStack(
            env={
                "GOOGLE_CLOUD_PROJECT": project,
                "FIRESTORE_EMULATOR_HOST": firestore_host,
                "SECRET_MANAGER_EMULATOR_HOST": secret_manager.host_port,
                "GOOGLE_EMULATOR_HOST": f"127.0.0.1:{google_port}",
                "OAUTH_CLIENT_ID": client_id,
                **secret_names,
                "ALLOWED_ORIGINS": ORIGIN,
                "OAUTH_SCOPES": " ".join(SCOPES),
            },
            control=control, google_url=google_url, client_secret=client_secret,
            secret_manager=secret_manager, pids=pids)
    finally:
        google.stop()
        secret_manager.stop()
        if firestore is not None:
            firestore.stop()
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
