"""`make dev`: the whole system on this machine, with no Google account and no cloud project.

Starts, on fixed ports (docs/design.md): the Firestore emulator, the local Secret Manager
(seeded with a client secret, a sealing key pair, the log key, the session key and one
first-release AES key), the local Google, the Pub/Sub emulator with the lifecycle events' topic
(each event printed as it is published), the five functions exactly as deployed
(functions-framework serving `functions/main.py`; only the job, disconnect_user and token_api
may read the private keys; token_api admits the app backend's service account, whose key file
is `.dev-data/app-backend-sa-key.json`), a scheduler that runs the offline job every minute, and the sign-in page, which
serves `/api/*` on its own origin by forwarding to the functions with only the `__session`
cookie, as Firebase Hosting does. Ctrl-C stops everything and leaves no process behind.

Data survives a restart (`localdev/dev_data.py`, the git-ignored `.dev-data/`): Firestore is
exported when `make dev` stops and after each scheduled run, and imported at start; the local
Secret Manager's secrets (key pairs and rotations included) are kept; the users' grants are
restored at the fresh local Google. `make dev-reset` deletes `.dev-data/` to start clean.

`make rotate-sealing-key DEV=1`, `make sealing-key-status DEV=1` and
`make retire-sealing-key DEV=1 KEY=N` run the key operations against this stack: they read
`.dev-logs/key-operations.env`, which names its secrets and emulators.

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

from .dev_data import DevData, restore_grants
from .dev_events import create_events_topic, print_events, start_pubsub
from .dev_report import user_lines
from .local_secret_manager import LocalSecretManager
from .processes import REPO, FirestoreEmulator, FunctionServer
from .site_config import brand_from, write_config
from .stack_secrets import public_only, seed
from .static_server import SITE_DIR, StaticSite

PROJECT = "demo-offline-access"
PAGE_PORT = 8080
EXCHANGE_PORT = 8081
JOB_PORT = 8082
ACCOUNT_PORT = 8083
DISCONNECT_PORT = 8084
TOKEN_API_PORT = 8088
PUBSUB_PORT = 8089
GOOGLE_PORT = 8090
SECRET_MANAGER_PORT = 8091
FIRESTORE_PORT = 8092
LOCAL_CLIENT_ID = "local-dev-client.apps.googleusercontent.com"
SCOPES = "openid email profile https://www.googleapis.com/auth/drive.appdata"
JOB_EVERY_SECONDS = 60
LOG_DIR = REPO / ".dev-logs"
ACCOUNT_SERVICE_ACCOUNT = f"offline-access-account@{PROJECT}.iam.gserviceaccount.com"
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
             "token_api": TOKEN_API_PORT, "Pub/Sub emulator": PUBSUB_PORT,
             "Secret Manager": SECRET_MANAGER_PORT, "Firestore emulator": FIRESTORE_PORT}
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
    pubsub = None

    def shutdown(*_):
        stop.set()

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    try:
        previous = data.latest_export()
        firestore = FirestoreEmulator(port=FIRESTORE_PORT, import_data=previous,
                                      output=open(LOG_DIR / "firestore.log", "w"))
        started.append(firestore)

        pubsub = start_pubsub(PUBSUB_PORT, LOG_DIR)
        started.append(pubsub)
        events_topic, printer_subscription = create_events_topic(PROJECT)
        print_events(printer_subscription, stop)

        secret_manager = LocalSecretManager().start(port=SECRET_MANAGER_PORT)
        started.append(secret_manager)
        secret_names = data.secret_manager(
            secret_manager, lambda: seed(secret_manager, PROJECT, client_secret=client_secret))

        page_origin = f"http://localhost:{PAGE_PORT}"
        env = {
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "FIRESTORE_EMULATOR_HOST": firestore.host_port,
            "SECRET_MANAGER_EMULATOR_HOST": secret_manager.host_port,
            "OAUTH_CLIENT_ID": client_id,
            **secret_names,
            "ALLOWED_ORIGINS": page_origin,
            "OAUTH_SCOPES": SCOPES,
            "JOB_INTERVAL_SECONDS": "60",
            "JOB_SCHEDULE_PERIOD_SECONDS": str(JOB_EVERY_SECONDS),
            "DISCONNECT_FUNCTION_URL": f"http://127.0.0.1:{DISCONNECT_PORT}/",
            "PUBSUB_EMULATOR_HOST": pubsub.host_port,
        }
        # The functions that change users publish lifecycle events (not the account API).
        events_env = {"EVENTS_TOPIC": events_topic}
        token_api_url = f"http://127.0.0.1:{TOKEN_API_PORT}"
        token_api_settings = {"TOKEN_API_AUDIENCES": token_api_url,
                              "TOKEN_API_ALLOWED_CALLERS": APP_BACKEND_SERVICE_ACCOUNT}
        app_backend_key = None
        account_env = {}
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
            # The app's backend calls the token API with its own ID token, the same way.
            app_backend_key = data.write_json("app-backend-sa-key.json", google.service_account_key(
                APP_BACKEND_SERVICE_ACCOUNT, PROJECT))

        write_key_operations_env(env)
        # As deployed: the public functions seal with the public key and cannot open tokens.
        functions = {}
        for target, port, own_env in (("exchange_code", EXCHANGE_PORT, {**public_only(env), **events_env}),
                                      ("run_offline_job", JOB_PORT, {**env, **events_env}),
                                      ("account_api", ACCOUNT_PORT, {**public_only(env), **account_env}),
                                      ("disconnect_user", DISCONNECT_PORT, {**env, **events_env}),
                                      ("token_api", TOKEN_API_PORT,
                                       {**env, **events_env, **token_api_settings})):
            functions[target] = FunctionServer(target, own_env, port=port,
                                               output=open(LOG_DIR / f"{target}.log", "w"))
            started.append(functions[target])
        job = functions["run_offline_job"]

        write_config(SITE_DIR, client_id=client_id, exchange_url="/api/exchange",
                     account_api_url="/api", scopes=SCOPES, gis_script_url=gis_script_url,
                     brand=brand_from(settings))
        site = StaticSite(exchange_url="/api/exchange", gis_script_url=gis_script_url,
                          port=PAGE_PORT, rewrites={
                              "/api/exchange": functions["exchange_code"].url,
                              "/api/": functions["account_api"].url})
        started.append(site)
        site.start()
        cli_env = data.write_env("cli.env", {**env, **events_env})
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

        kept = (f"kept from the last run ({restored} grant(s) restored at the local Google)"
                if previous else "new (.dev-data/ is empty)")
        print(f"""
  sign-in page         http://localhost:{PAGE_PORT}   (/api/* forwarded to the functions, as Hosting does)
  exchange_code        http://localhost:{EXCHANGE_PORT}   (/api/exchange)
  account_api          http://localhost:{ACCOUNT_PORT}   (/api/me, /api/sign-out, /api/disconnect, ...)
  disconnect_user      http://localhost:{DISCONNECT_PORT}   (internal: revoke and delete)
  run_offline_job      http://localhost:{JOB_PORT}   (runs every {JOB_EVERY_SECONDS} s; `make job` runs it now)
  token_api            {token_api_url}   (for your app's backend: POST /token, POST /session)
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
            for component in (firestore, pubsub, *functions.values()):
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
