"""What the offline job did for each user of `make dev`, read from the Firestore emulator.

`make dev` prints it after every scheduled run and `make job` after its run, so that a newcomer
sees the signed-in user's Drive result without opening the emulator.

    python -m localdev.dev_report
"""

from __future__ import annotations

import os

from google.cloud import firestore

DEFAULT_PROJECT = "demo-offline-access"
DEFAULT_FIRESTORE = "127.0.0.1:8092"


def _task_text(name: str, summary: dict) -> str:
    if name == "drive_appdata" and summary.get("status") == "ok":
        return f"Drive appDataFolder holds {summary.get('files')} file(s)"
    details = ", ".join(f"{k}={v}" for k, v in summary.items() if k != "status")
    return f"{name} {summary.get('status', '?')}" + (f" ({details})" if details else "")


def user_lines(client: firestore.Client, collection: str = "users") -> list[str]:
    """One line per user: who, status, and each task's result of the last run."""
    lines = []
    for snapshot in client.collection(collection).stream():
        user = snapshot.to_dict()
        job = user.get("job") or {}
        who = user.get("email") or snapshot.id
        status = user.get("status")
        if user.get("reauth_reason"):
            status = f"{status} ({user['reauth_reason']})"
        tasks = ((job.get("result") or {}).get("tasks")) or {}
        if not job.get("last_run_at"):
            lines.append(f"  {who}: {status}, not processed yet")
            continue
        results = "; ".join(_task_text(name, summary) for name, summary in sorted(tasks.items()))
        lines.append(f"  {who}: {status}, last run {job['last_run_at']:%H:%M:%S}: {results or '-'}")
    return lines or ["  no user has signed in yet"]


def main() -> None:
    os.environ.setdefault("FIRESTORE_EMULATOR_HOST", DEFAULT_FIRESTORE)
    client = firestore.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", DEFAULT_PROJECT))
    print("\n".join(user_lines(client)))


if __name__ == "__main__":
    main()
