"""`make dev`: the whole system on this machine, with no Google account and no cloud project.

Starts, on fixed ports (docs/design.md): the Firestore emulator, the local Secret Manager
(seeded with a client secret and a sealing key), the local Google, the functions exactly as
deployed (functions-framework serving `functions/main.py`), a scheduler that runs the offline
job every minute, and the sign-in page. Ctrl-C stops everything and leaves no process behind.

The job fans out through the official Pub/Sub emulator, as a `job_mode = "pubsub"` deployment
does: the scheduled call publishes the due users, and the emulator pushes each message over
HTTP to the local `run_offline_worker`. `DEV_JOB_MODE=inline` runs today's single function
instead (no emulator, no worker).

With a real web OAuth client (its JavaScript origin http://localhost:8080) given as
`DEV_OAUTH_CLIENT_ID` and `DEV_OAUTH_CLIENT_SECRET`, in the environment or a git-ignored
`.env`, the page and the functions use the real Google instead of the local one; everything else
stays local.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import signal
import socket
import sys
import threading
from pathlib import Path

import requests
from google.cloud import firestore as gcloud_firestore

from . import pubsub_topology
from .dev_report import user_lines
from .local_secret_manager import LocalSecretManager
from .processes import REPO, FirestoreEmulator, FunctionServer, PubSubEmulator
from .site_config import write_config
from .static_server import SITE_DIR, StaticSite

PROJECT = "demo-offline-access"
PAGE_PORT = 8080
EXCHANGE_PORT = 8081
JOB_PORT = 8082
GOOGLE_PORT = 8090
SECRET_MANAGER_PORT = 8091
FIRESTORE_PORT = 8092
WORKER_PORT = 8083
PUBSUB_PORT = 8093
LOCAL_CLIENT_ID = "local-dev-client.apps.googleusercontent.com"
SCOPES = "openid email profile https://www.googleapis.com/auth/drive.appdata"
JOB_EVERY_SECONDS = 60
LOG_DIR = REPO / ".dev-logs"
DEMO_APPDATA_FILES = [{"name": "settings.json", "mimeType": "application/json"},
                      {"name": "progress.json", "mimeType": "application/json"}]


def read_dotenv(path: Path) -> dict[str, str]:
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip().strip("'\"")
    return values


def run_scheduler(job_url: str, stop: threading.Event, report) -> None:
    """Cloud Scheduler's part: POST to the job every minute with the schedule time header,
    then print what the run did for each user."""
    while not stop.wait(JOB_EVERY_SECONDS):
        schedule_time = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
        try:
            response = requests.post(
                job_url,
                headers={"X-CloudScheduler-ScheduleTime": schedule_time.isoformat().replace("+00:00", "Z"),
                         "X-CloudScheduler-JobName": "local-offline-job"},
                timeout=600,
            )
            print(f"[scheduler] offline job: {response.status_code} {response.text.strip()[:300]}",
                  flush=True)
            print("\n".join(report()), flush=True)
        except requests.RequestException as exc:
            print(f"[scheduler] offline job failed: {type(exc).__name__}", flush=True)


def busy_ports(ports: dict[str, int]) -> list[str]:
    """The components whose fixed port is already taken (e.g. by another `make dev`).

    Checked up front: a readiness probe would otherwise take whatever answers on the port
    for the component just started.
    """
    busy = []
    for name, port in ports.items():
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                busy.append(f"{port} ({name})")
    return busy


def main() -> int:
    settings = {**read_dotenv(REPO / ".env"), **os.environ}
    real_client_id = settings.get("DEV_OAUTH_CLIENT_ID", "").strip()
    real_secret = settings.get("DEV_OAUTH_CLIENT_SECRET", "").strip()
    use_real_google = bool(real_client_id and real_secret)
    client_id = real_client_id if use_real_google else LOCAL_CLIENT_ID
    client_secret = real_secret if use_real_google else "local-secret-" + secrets.token_urlsafe(16)
    ports = {"sign-in page": PAGE_PORT, "exchange_code": EXCHANGE_PORT, "run_offline_job": JOB_PORT,
             "Secret Manager": SECRET_MANAGER_PORT, "Firestore emulator": FIRESTORE_PORT}
    job_mode = settings.get("DEV_JOB_MODE", "").strip().lower() or "pubsub"
    if job_mode not in ("inline", "pubsub"):
        print(f"make dev: DEV_JOB_MODE must be inline or pubsub, not {job_mode!r}.", file=sys.stderr)
        return 1
    if job_mode == "pubsub":
        ports.update({"run_offline_worker": WORKER_PORT, "Pub/Sub emulator": PUBSUB_PORT})
    if not use_real_google:
        ports["local Google"] = GOOGLE_PORT
    busy = busy_ports(ports)
    if busy:
        print(f"make dev: port {', '.join(busy)} already in use. Stop what listens there "
              "(another `make dev`?) and try again.", file=sys.stderr)
        return 1
    LOG_DIR.mkdir(exist_ok=True)
    stop = threading.Event()
    started: list = []

    def shutdown(*_):
        stop.set()

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    try:
        firestore = FirestoreEmulator(port=FIRESTORE_PORT, output=open(LOG_DIR / "firestore.log", "w"))
        started.append(firestore)

        secret_manager = LocalSecretManager().start(port=SECRET_MANAGER_PORT)
        started.append(secret_manager)
        secret_name = f"projects/{PROJECT}/secrets/oauth-client-secret"
        key_name = f"projects/{PROJECT}/secrets/token-sealing-key"
        secret_manager.add_version(secret_name, client_secret.encode())
        secret_manager.add_version(key_name, base64.b64encode(secrets.token_bytes(32)))

        env = {
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "FIRESTORE_EMULATOR_HOST": firestore.host_port,
            "SECRET_MANAGER_EMULATOR_HOST": secret_manager.host_port,
            "OAUTH_CLIENT_ID": client_id,
            "OAUTH_CLIENT_SECRET_VERSION": f"{secret_name}/versions/latest",
            "TOKEN_SEALING_KEY_VERSION": f"{key_name}/versions/latest",
            "ALLOWED_ORIGINS": f"http://localhost:{PAGE_PORT}",
            "OAUTH_SCOPES": SCOPES,
            "JOB_INTERVAL_SECONDS": "60",
        }
        if use_real_google:
            gis_script_url = "https://accounts.google.com/gsi/client"
        else:
            from .local_google import LocalGoogle

            google = LocalGoogle(client_id=client_id, client_secret=client_secret,
                                 javascript_origins=[f"http://localhost:{PAGE_PORT}"])
            google.start(host="127.0.0.1", port=GOOGLE_PORT)
            started.append(google)
            for user in google.control.users():  # something for the Drive task to find
                google.control.drive_files(user["sub"], DEMO_APPDATA_FILES)
            env["GOOGLE_EMULATOR_HOST"] = google.host_port
            # The same host spelling as GOOGLE_EMULATOR_HOST: the ID token's `picture` points
            # there, and the page's CSP (derived from this URL) must allow it.
            gis_script_url = f"{google.url}/gsi/client"

        exchange = FunctionServer("exchange_code", env, port=EXCHANGE_PORT,
                                  output=open(LOG_DIR / "exchange_code.log", "w"))
        started.append(exchange)
        if job_mode == "pubsub":
            pubsub = PubSubEmulator(port=PUBSUB_PORT, output=open(LOG_DIR / "pubsub.log", "w"))
            started.append(pubsub)
            env["PUBSUB_EMULATOR_HOST"] = os.environ["PUBSUB_EMULATOR_HOST"] = pubsub.host_port
            worker = FunctionServer("run_offline_worker", env, port=WORKER_PORT,
                                    output=open(LOG_DIR / "run_offline_worker.log", "w"))
            started.append(worker)
            topology = pubsub_topology.create(PROJECT, f"{worker.url}/")
            env.update({"JOB_MODE": "pubsub", "JOB_WORK_TOPIC": topology.topic})
        job = FunctionServer("run_offline_job", env, port=JOB_PORT,
                             output=open(LOG_DIR / "run_offline_job.log", "w"))
        started.append(job)

        fan_out = (f"Pub/Sub emulator localhost:{PUBSUB_PORT} pushes to run_offline_worker "
                   f"http://localhost:{WORKER_PORT}" if job_mode == "pubsub"
                   else "inline (DEV_JOB_MODE=inline)")
        exchange_url = f"http://localhost:{EXCHANGE_PORT}/"
        write_config(SITE_DIR, client_id=client_id, exchange_url=exchange_url, scopes=SCOPES,
                     gis_script_url=gis_script_url)
        site = StaticSite(exchange_url=exchange_url, gis_script_url=gis_script_url,
                          port=PAGE_PORT).start()
        started.append(site)
        os.environ["FIRESTORE_EMULATOR_HOST"] = firestore.host_port
        report_client = gcloud_firestore.Client(project=PROJECT)
        threading.Thread(target=run_scheduler, daemon=True,
                         args=(job.url, stop, lambda: user_lines(report_client))).start()

        print(f"""
  sign-in page         http://localhost:{PAGE_PORT}
  exchange_code        http://localhost:{EXCHANGE_PORT}
  run_offline_job      http://localhost:{JOB_PORT}   (runs every {JOB_EVERY_SECONDS} s; `make job` runs it now)
  fan-out              {fan_out}
  Google               {'the real Google (DEV_OAUTH_CLIENT_ID)' if use_real_google else f'local, http://localhost:{GOOGLE_PORT}'}
  Secret Manager       local, {secret_manager.host_port} (gRPC)
  Firestore emulator   http://{firestore.host_port}
  logs                 {LOG_DIR.relative_to(REPO)}/

Open http://localhost:{PAGE_PORT} and click "Sign in with Google". Ctrl-C stops everything.
""", flush=True)
        while not stop.wait(1):
            for component in [c for c in started
                              if isinstance(c, FunctionServer | FirestoreEmulator | PubSubEmulator)]:
                if component.popen.poll() is not None:
                    print(f"{component.name} exited (code {component.popen.returncode}); "
                          f"see {LOG_DIR.relative_to(REPO)}/", file=sys.stderr)
                    return 1
        return 0
    except (RuntimeError, OSError, TimeoutError) as exc:
        print(f"make dev: {exc}", file=sys.stderr)
        return 1
    finally:
        stop.set()
        for component in reversed(started):
            component.stop()
        print("stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
