"""`offline-access risc ...`: register the Cross-Account Protection receiver, read and verify it.

    risc register [--url URL]        stream:update: deliver every event type the receiver acts on
    risc status [--json]             the stream's receiver URL, event types and status
    risc verify [--state S]          send a verification event, wait until the receiver has it

The calls go to Google's RISC management API (`risc.registration`; with `GOOGLE_EMULATOR_HOST`,
the local Google's, which is how they work against `make dev`) as the project's RISC admin
service account: its key file (`--key-file` or `RISC_SERVICE_ACCOUNT_KEY_FILE`: a self-signed
JWT, as Google's guide shows), or impersonated from Application Default Credentials
(`--impersonate` or `RISC_SERVICE_ACCOUNT`, as Terraform's `cli_env` sets it: no key file),
else Application Default Credentials themselves. The receiver's URL is `--url` or
`RISC_RECEIVER_URL`.

`verify` then waits until the receiver has logged the verification event's state: the receiver
records it in Firestore (`store.security_events`) as it logs it, and this command reads that
record, so it works against a deployment as against `make dev` (Cloud Datastore Viewer on the
project is enough).
"""

from __future__ import annotations

import argparse
import secrets
import time
from collections.abc import Sequence

from ..googleapis.endpoints import GoogleEndpoints
from ..risc import registration
from ..risc.events import EVENT_TYPES
from .context import CliContext


def register(groups: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    risc = groups.add_parser("risc", help="Cross-Account Protection: register, show and verify the receiver")
    commands = risc.add_subparsers(dest="command", required=True, metavar="COMMAND")

    update = commands.add_parser("register", help="point Google's stream at the receiver, for every event type")
    update.add_argument("--url", help="the receiver's URL (default: $RISC_RECEIVER_URL)")
    update.add_argument("--json", action="store_true")
    update.set_defaults(run=register_receiver)

    status = commands.add_parser("status", help="the stream's receiver, event types and status")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=show_status)

    verify = commands.add_parser("verify", help="send a verification event and wait until the receiver has it")
    verify.add_argument("--state", help="the state to send (default: a random one)")
    verify.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    verify.set_defaults(run=verify_stream)
    for command in (update, status, verify):
        command.add_argument("--key-file", metavar="FILE",
                             help="the RISC admin service account's key file "
                                  "(default: $RISC_SERVICE_ACCOUNT_KEY_FILE)")
        command.add_argument("--impersonate", metavar="EMAIL",
                             help="impersonate this service account from your Application Default "
                                  "Credentials (default: $RISC_SERVICE_ACCOUNT)")


def _stream(args: argparse.Namespace, context: CliContext, scopes: Sequence[str]) -> registration.StreamManagement:
    key_file = args.key_file or context.environ.get("RISC_SERVICE_ACCOUNT_KEY_FILE", "").strip() or None
    impersonate = args.impersonate or context.environ.get("RISC_SERVICE_ACCOUNT", "").strip() or None
    credentials = registration.management_credentials(key_file=key_file, impersonate=impersonate,
                                                      scopes=scopes)
    return registration.StreamManagement(GoogleEndpoints.from_env(context.environ).risc_api, credentials)


def _short(uri: str) -> str:
    return next((name for name, full in EVENT_TYPES.items() if full == uri), uri)


def register_receiver(args: argparse.Namespace, context: CliContext) -> int:
    url = args.url or context.environ.get("RISC_RECEIVER_URL", "").strip()
    if not url:
        context.err.write("Name the receiver: --url URL, or RISC_RECEIVER_URL (Terraform's "
                          "risc_receiver_url output).\n")
        return 2
    configuration = _stream(args, context, registration.CONFIGURE_SCOPES).register(url)
    if args.json:
        context.print_json(configuration)
        return 0
    events = configuration.get("events_requested") or []
    context.print(f"Registered {url} for {len(events)} event type(s): "
                  f"{', '.join(_short(e) for e in events)}.")
    context.print("Check it with `offline-access risc verify`.")
    return 0


def show_status(args: argparse.Namespace, context: CliContext) -> int:
    stream = _stream(args, context, registration.READ_SCOPES)
    configuration = stream.configuration()
    status = stream.status() if configuration is not None else None
    if args.json:
        context.print_json({"configuration": configuration, "status": status})
        return 0
    if configuration is None:
        context.print("No receiver is registered for this project: run `offline-access risc register`.")
        return 1
    delivery = configuration.get("delivery") or {}
    context.print(f"receiver   {delivery.get('url', '-')}")
    context.print(f"status     {status}")
    context.print("events     " + ", ".join(_short(e) for e in configuration.get("events_requested") or []))
    return 0


def verify_stream(args: argparse.Namespace, context: CliContext) -> int:
    state = args.state or f"offline-access-verify-{secrets.token_hex(8)}"
    _stream(args, context, registration.VERIFY_SCOPES).verify(state)
    context.print(f"Asked Google for a verification event with state {state!r}; waiting for the receiver...")
    records = context.security_events()
    deadline = time.monotonic() + args.timeout
    while True:
        found = records.verification(state)
        if found is not None:
            received = found.get("received_at")
            context.print(f"The receiver logged state {state!r} at {received}: Cross-Account "
                          "Protection reaches it.")
            return 0
        if time.monotonic() >= deadline:
            context.err.write(f"The receiver did not log state {state!r} within {args.timeout:g} s. "
                              "Check `offline-access risc status` (the URL, `enabled`, verification "
                              "among the events) and the receiver's logs.\n")
            return 1
        time.sleep(0.5)
