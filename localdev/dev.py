"""`make dev`: the whole system on this machine, with no Google account and no cloud project.

Starts, on fixed ports (docs/design.md): the Firestore emulator, the local Secret Manager
(seeded with a client secret, a sealing key pair, the log key, the session key, the refresh-token
identifiers' key and one first-release AES key), the local Google, the Pub/Sub emulator with the
lifecycle events' topic (each event printed as it is published), the functions exactly as
deployed (functions-framework serving `functions/main.py`; only the job, its worker,
disconnect_user and token_api may read the private keys; token_api admits the app backend's
service account, whose key file is `.dev-data/app-backend-sa-key.json`), a scheduler that runs
the offline job every minute, and the sign-in page, which serves `/api/*` on its own origin by
forwarding to the functions with only the `__session` cookie, as Firebase Hosting does. Ctrl-C
stops everything and leaves no process behind.

Cross-Account Protection works locally too: at start the RISC receiver is registered with the
local Google's stream (`stream:update`, as `offline-access risc register` does, with a RISC
admin service account's key the local Google issues; plain http is allowed for loopback
receivers), so the local Google's security events reach it and `offline-access --env-file
.dev-data/cli.env risc verify` works.

Data survives a restart (`localdev/dev_data.py`, the git-ignored `.dev-data/`): Firestore is
exported when `make dev` stops and after each scheduled run, and imported at start; the local
Secret Manager's secrets (key pairs and rotations included) are kept; the users' grants are
restored at the fresh local Google. `make dev-reset` deletes `.dev-data/` to start clean.

`make rotate-sealing-key DEV=1`, `make sealing-key-status DEV=1` and
`make retire-sealing-key DEV=1 KEY=N` run the key operations against this stack: they read
`.dev-logs/key-operations.env`, which names its secrets and emulators.

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

from offline_access.googleapis.endpoints import GoogleEndpoints
from offline_access.risc import registration

from . import pubsub_topology
from .dev_data import DevData, restore_grants
from .dev_events import create_events_topic, print_events, start_pubsub
from .dev_report import user_lines
from .local_secret_manager import LocalSecretManager
from .processes import REPO, FirestoreEmulator, FunctionServer, PubSubEmulator
from .site_config import brand_from, write_config
from .stack_secrets import TOKEN_ID_KEY_VARIABLE, public_only, seed, with_token_id_key
from .static_server import SITE_DIR, StaticSite

PROJECT = "demo-offline-access"
PAGE_PORT = 8080
EXCHANGE_PORT = 8081
JOB_PORT = 8082
ACCOUNT_PORT = 8083
DISCONNECT_PORT = 8084
RISC_PORT = 8086
TOKEN_API_PORT = 8088
GOOGLE_PORT = 8090
SECRET_MANAGER_PORT = 8091
FIRESTORE_PORT = 8092
WORKER_PORT = 8085
PUBSUB_PORT = 8093
LOCAL_CLIENT_ID = "local-dev-client.apps.googleusercontent.com"
SCOPES = "openid email profile https://www.googleapis.com/auth/drive.appdata"
JOB_EVERY_SECONDS = 60
LOG_DIR = REPO / ".dev-logs"
ACCOUNT_SERVICE_ACCOUNT = f"offline-access-account@{PROJECT}.iam.gserviceaccount.com"
RISC_SERVICE_ACCOUNT = f"offline-access-risc@{PROJECT}.iam.gserviceaccount.com"
# The app's backend: the one service account the local token API admits.
APP_BACKEND_SERVICE_ACCOUNT = f"app-backend@{PROJECT}.iam.gserviceaccount.com"
KEY_OPERATIONS_ENV = LOG_DIR / "key-operations.env"
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


def run_scheduler(job_url: str, stop: threading.Event, report, after_run=None) -> None:
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
            if after_run is not None:
                after_run()
        except requests.RequestException as exc:
            print(f"[scheduler] offline job failed: {type(exc).__name__}", flush=True)


def write_key_operations_env(env: dict[str, str]) -> None:
    """Name this stack's secrets and emulators for the key operations (no secret values)."""
    names = ("GOOGLE_CLOUD_PROJECT", "FIRESTORE_EMULATOR_HOST", "SECRET_MANAGER_EMULATOR_HOST",
             "TOKEN_SEALING_PUBLIC_KEY_VERSION", "TOKEN_SEALING_PRIVATE_KEYS_SECRET",
             "TOKEN_SEALING_KEY_VERSION", "LOG_USER_REF_KEY_VERSION")
    KEY_OPERATIONS_ENV.write_text(" ".join(f"{name}={env[name]}" for name in names) + "\n")


def register_risc_receiver(google, data: DevData, url: str) -> dict[str, str]:
    """Register the receiver with the local Google's stream, as `offline-access risc register`
    does (the same code, with a RISC admin's key file); the CLI's settings for the stream."""
    project = next(c["project_id"] for c in google.control.clients() if c["client_id"] == google.client_id)
    admin = google.control.service_account(f"risc-admin@{project}.iam.gserviceaccount.com", project)
    key_file = data.write_json("risc-admin-key.json", admin["key_file"])
    endpoints = GoogleEndpoints.emulated(google.host_port)
    stream = registration.StreamManagement(
        endpoints.risc_api, registration.management_credentials(key_file=str(key_file)))
    stream.register(url)
    return {"RISC_RECEIVER_URL": url, "RISC_SERVICE_ACCOUNT_KEY_FILE": str(key_file)}


def _client_hint(key_file: Path | None, token_api_url: str, google) -> str:
    """How to call the local token API as the app's backend, with the Python client."""
    if key_file is None or google is None:
        return ""
    return f"""
Your app's backend, with the Python client (installed by make install), for a signed-in SUB:
  GOOGLE_APPLICATION_CREDENTIALS={key_file.relative_to(REPO)} OFFLINE_ACCESS_TOKEN_API_URL={token_api_url} \\
  GOOGLE_EMULATOR_HOST={google.host_port} .venv/bin/python client/examples/drive_for_user.py SUB
"""


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
    data = DevData()
    client_id = real_client_id if use_real_google else LOCAL_CLIENT_ID
    client_secret = real_secret if use_real_google else data.secret(
        "local-oauth-client-secret", lambda: "local-secret-" + secrets.token_urlsafe(16))
    ports = {"sign-in page": PAGE_PORT, "exchange_code": EXCHANGE_PORT, "run_offline_job": JOB_PORT,
             "account_api": ACCOUNT_PORT, "disconnect_user": DISCONNECT_PORT,
             "risc_receiver": RISC_PORT, "token_api": TOKEN_API_PORT, "Pub/Sub emulator": PUBSUB_PORT,
             "Secret Manager": SECRET_MANAGER_PORT, "Firestore emulator": FIRESTORE_PORT}
    job_mode = settings.get("DEV_JOB_MODE", "").strip().lower() or "pubsub"
    if job_mode not in ("inline", "pubsub"):
        print(f"make dev: DEV_JOB_MODE must be inline or pubsub, not {job_mode!r}.", file=sys.stderr)
        return 1
    if job_mode == "pubsub":
        ports["run_offline_worker"] = WORKER_PORT
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
    firestore = None
    secret_manager = None

    def shutdown(*_):
        stop.set()

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    try:
        previous = data.latest_export()
        firestore = FirestoreEmulator(port=FIRESTORE_PORT, import_data=previous,
                                      output=open(LOG_DIR / "firestore.log", "w"))
        started.append(firestore)

        secret_manager = LocalSecretManager().start(port=SECRET_MANAGER_PORT)
        started.append(secret_manager)
        secret_names = data.secret_manager(
            secret_manager, lambda: seed(secret_manager, PROJECT, client_secret=client_secret))
        if TOKEN_ID_KEY_VARIABLE not in secret_names:  # a first start, or .dev-data/ from before
            secret_names = with_token_id_key(secret_manager, PROJECT, secret_names)
            data.save_secret_manager(secret_manager, secret_names)

        # One Pub/Sub emulator for the lifecycle events and, in pubsub mode, the job's fan-out.
        pubsub = start_pubsub(PUBSUB_PORT, LOG_DIR)
        started.append(pubsub)
        events_topic, printer_subscription = create_events_topic(PROJECT)
        print_events(printer_subscription, stop)

        page_origin = f"http://localhost:{PAGE_PORT}"
        env = {
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "FIRESTORE_EMULATOR_HOST": firestore.host_port,
            "SECRET_MANAGER_EMULATOR_HOST": secret_manager.host_port,
            "PUBSUB_EMULATOR_HOST": pubsub.host_port,
            "OAUTH_CLIENT_ID": client_id,
            **secret_names,
            "ALLOWED_ORIGINS": page_origin,
            "OAUTH_SCOPES": SCOPES,
            "JOB_INTERVAL_SECONDS": "60",
            "JOB_SCHEDULE_PERIOD_SECONDS": str(JOB_EVERY_SECONDS),
            "DISCONNECT_FUNCTION_URL": f"http://127.0.0.1:{DISCONNECT_PORT}/",
        }
        # The functions that change users publish lifecycle events (not the account API).
        env["EVENTS_TOPIC"] = events_topic
        token_api_url = f"http://127.0.0.1:{TOKEN_API_PORT}"
        token_api_settings = {"TOKEN_API_AUDIENCES": token_api_url,
                              "TOKEN_API_ALLOWED_CALLERS": APP_BACKEND_SERVICE_ACCOUNT}
        app_backend_key = None
        account_env: dict[str, str] = {}
        risc_env: dict[str, str] = {}
        cli_extra: dict[str, str] = {}
        google = None
        if use_real_google:
            gis_script_url = "https://accounts.google.com/gsi/client"
            print("make dev: with the real Google there is no metadata server and no local key "
                  "issuer: Disconnect leaves the revoke to the next job run.", file=sys.stderr)
        else:
            from .local_google import LocalGoogle

            google = LocalGoogle(client_id=client_id, client_secret=client_secret,
                                 javascript_origins=[page_origin])
            google.start(host="127.0.0.1", port=GOOGLE_PORT)
            started.append(google)
            for user in google.control.users():  # something for the Drive task to find
                google.control.drive_files(user["sub"], DEMO_APPDATA_FILES)
            env["GOOGLE_EMULATOR_HOST"] = google.host_port
            # The same host spelling as GOOGLE_EMULATOR_HOST: the ID token's `picture` points
            # there, and the page's CSP (derived from this URL) must allow it.
            gis_script_url = f"{google.url}/gsi/client"
            # The account API calls disconnect_user with an ID token, as on Cloud Run: here
            # google-auth gets it from the local Google with a service-account key file.
            key = data.write_json("account-sa-key.json",
                                  google.service_account_key(ACCOUNT_SERVICE_ACCOUNT, PROJECT))
            account_env["GOOGLE_APPLICATION_CREDENTIALS"] = str(key)
            # The RISC receiver calls disconnect_user for a hijacked account the same way.
            risc_key = data.write_json("risc-sa-key.json",
                                       google.service_account_key(RISC_SERVICE_ACCOUNT, PROJECT))
            risc_env["GOOGLE_APPLICATION_CREDENTIALS"] = str(risc_key)
            # The app's backend calls the token API with its own ID token, the same way.
            app_backend_key = data.write_json("app-backend-sa-key.json", google.service_account_key(
                APP_BACKEND_SERVICE_ACCOUNT, PROJECT))

        write_key_operations_env(env)
        # As deployed: the public functions seal with the public key and cannot open tokens.
        functions: dict[str, FunctionServer] = {}

        def start(target: str, port: int, own_env: dict[str, str]) -> FunctionServer:
            functions[target] = FunctionServer(target, own_env, port=port,
                                               output=open(LOG_DIR / f"{target}.log", "w"))
            started.append(functions[target])
            return functions[target]

        if job_mode == "pubsub":
            worker = start("run_offline_worker", WORKER_PORT, env)
            topology = pubsub_topology.create(PROJECT, f"{worker.url}/")
            env.update({"JOB_MODE": "pubsub", "JOB_WORK_TOPIC": topology.topic})
        start("exchange_code", EXCHANGE_PORT, public_only(env))
        job = start("run_offline_job", JOB_PORT, env)
        start("account_api", ACCOUNT_PORT,
              {k: v for k, v in {**public_only(env), **account_env}.items() if k != "EVENTS_TOPIC"})
        start("disconnect_user", DISCONNECT_PORT, env)
        start("risc_receiver", RISC_PORT, {**public_only(env), **risc_env})
        start("token_api", TOKEN_API_PORT, {**env, **token_api_settings})
        fan_out = (f"Pub/Sub emulator localhost:{PUBSUB_PORT} pushes to run_offline_worker "
                   f"http://localhost:{WORKER_PORT}" if job_mode == "pubsub"
                   else "inline (DEV_JOB_MODE=inline)")

        write_config(SITE_DIR, client_id=client_id, exchange_url="/api/exchange",
                     account_api_url="/api", scopes=SCOPES, gis_script_url=gis_script_url,
                     brand=brand_from(settings))
        site = StaticSite(exchange_url="/api/exchange", gis_script_url=gis_script_url,
                          port=PAGE_PORT, rewrites={
                              "/api/exchange": functions["exchange_code"].url,
                              "/api/": functions["account_api"].url})
        started.append(site)
        site.start()
        if google is not None:
            cli_extra = register_risc_receiver(google, data, functions["risc_receiver"].url + "/")
        cli_env = data.write_env("cli.env", {**env, **cli_extra})
        os.environ["FIRESTORE_EMULATOR_HOST"] = firestore.host_port
        report_client = gcloud_firestore.Client(project=PROJECT)
        restored = 0
        if google is not None and previous is not None:
            stored = [{"sub": d.id, **d.to_dict()} for d in report_client.collection("users").stream()]
            restored = restore_grants(stored, google.control, client_id=client_id, origin=page_origin,
                                      exchange_url=functions["exchange_code"].url + "/")
        threading.Thread(target=run_scheduler, daemon=True,
                         args=(job.url, stop, lambda: user_lines(report_client),
                               lambda: data.save_firestore(firestore, PROJECT))).start()

        risc_note = ("registered with the local Google; `risc verify` checks it" if cli_extra
                     else "not registered: the real Google needs an https URL")
        kept = (f"kept from the last run ({restored} grant(s) restored at the local Google)"
                if previous else "new (.dev-data/ is empty)")
        print(f"""
  sign-in page         http://localhost:{PAGE_PORT}   (/api/* forwarded to the functions, as Hosting does)
  exchange_code        http://localhost:{EXCHANGE_PORT}   (/api/exchange)
  account_api          http://localhost:{ACCOUNT_PORT}   (/api/me, /api/sign-out, /api/disconnect, ...)
  disconnect_user      http://localhost:{DISCONNECT_PORT}   (internal: revoke and delete)
  risc_receiver        http://localhost:{RISC_PORT}   (Cross-Account Protection: {risc_note})
  run_offline_job      http://localhost:{JOB_PORT}   (runs every {JOB_EVERY_SECONDS} s; `make job` runs it now)
  token_api            {token_api_url}   (for your app's backend: POST /token, POST /session)
  fan-out              {fan_out}
  Pub/Sub emulator     {pubsub.host_port}   (lifecycle events on {events_topic}: printed below as [event] lines)
  Google               {'the real Google (DEV_OAUTH_CLIENT_ID)' if use_real_google else f'local, http://localhost:{GOOGLE_PORT}'}
  Secret Manager       local, {secret_manager.host_port} (gRPC)
  Firestore emulator   http://{firestore.host_port}, data {kept}
  logs                 {LOG_DIR.relative_to(REPO)}/
  operator CLI         .venv/bin/offline-access --env-file {cli_env.relative_to(REPO)} users list

Open http://localhost:{PAGE_PORT} and click "Sign in with Google". Ctrl-C stops everything and keeps
the data for next time (`make dev-reset` starts clean).
{_client_hint(app_backend_key, token_api_url, google)}""", flush=True)
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
        if firestore is not None and firestore.popen.poll() is None:
            try:
                data.save_firestore(firestore, PROJECT)
                print("kept the data in .dev-data/ (make dev-reset deletes it).", flush=True)
            except (requests.RequestException, OSError, StopIteration) as exc:
                print(f"make dev: could not export the Firestore data ({type(exc).__name__})",
                      file=sys.stderr)
        if secret_manager is not None:
            data.save_secret_manager(secret_manager)
        for component in reversed(started):
            component.stop()
        KEY_OPERATIONS_ENV.unlink(missing_ok=True)
        print("stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
