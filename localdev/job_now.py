"""`make job`: run `make dev`'s offline job now, as Cloud Scheduler would, and say what it did.

    python -m localdev.job_now [--all]

It POSTs to the running `run_offline_job` function as an on-demand run (no Cloud Scheduler
headers, so its run id is `manual-...`; `--all`, from `make job ALL=1`, asks for every active
user, due or not), prints the run's summary in sentences
(when nobody was due: when the next user is, and how to run now anyway), then each user's
result. Without `make dev` running it says to start it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time

import requests

from .dev_report import DEFAULT_FIRESTORE, DEFAULT_PROJECT, user_lines

JOB_URL = "http://localhost:8082/"
# With the fan-out the workers finish a moment after the dispatch answers.
WORKERS_SETTLE_SECONDS = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--all", action="store_true", help="every active user, due or not")
    parser.add_argument("--url", default=JOB_URL, help=argparse.SUPPRESS)
    parser.add_argument("--firestore", default=os.environ.get("FIRESTORE_EMULATOR_HOST", DEFAULT_FIRESTORE),
                        help=argparse.SUPPRESS)
    parser.add_argument("--project", default=DEFAULT_PROJECT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    now = dt.datetime.now(dt.timezone.utc)
    try:
        answer = requests.post(args.url, json={"all": True} if args.all else {}, timeout=600)
    except requests.ConnectionError:
        print("make job: make dev is not running (nothing answers on "
              f"{args.url}). Start it with `make dev` in another terminal, then run `make job` again.",
              file=sys.stderr)
        return 1
    body = answer.json() if answer.headers.get("Content-Type", "").startswith("application/json") else {}
    if answer.status_code != 200:
        print(f"make job: the job answered {answer.status_code}: {body.get('message', answer.text[:200])}",
              file=sys.stderr)
        return 1

    # The emulator is make dev's: these imports and clients only read it.
    os.environ["FIRESTORE_EMULATOR_HOST"] = args.firestore
    from google.cloud import firestore

    from offline_access.cli.job import describe
    from offline_access.store.accounts import AccountStore
    from offline_access.store.users import UserStore

    client = firestore.Client(project=args.project)
    if "users_dispatched" in body:  # make dev fans out (JOB_MODE=pubsub): workers do the users
        print(f"Dispatched {body['users_dispatched']} due user(s) in {body['messages']} "
              "message(s) to run_offline_worker through the Pub/Sub emulator.")
        if body["users_dispatched"]:
            time.sleep(WORKERS_SETTLE_SECONDS)
            print("\n".join(user_lines(client)))
            return 0
        body = {**body, "users_processed": 0}
    next_due = None if body["users_processed"] else AccountStore(UserStore(client)).next_due_at()
    for line in describe(body, next_due, now, "make dev"):
        print(line)
    print("\n".join(user_lines(client)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
