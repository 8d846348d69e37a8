"""`make dev`'s per-user report reads what the offline job stored (against the Firestore emulator)."""

import datetime as dt

from google.cloud import firestore

from localdev.dev_report import user_lines


def test_report_shows_the_drive_result_and_unprocessed_users(project, firestore_emulator):
    from localdev.processes import FirestoreEmulator

    FirestoreEmulator.reset_host(firestore_emulator, project)
    client = firestore.Client(project=project)
    users = client.collection("report_users")
    users.document("1").set({"email": "a@example.com", "status": "active", "job": {
        "last_run_at": dt.datetime(2026, 1, 1, 12, 30, tzinfo=dt.timezone.utc),
        "result": {"tasks": {"drive_appdata": {"status": "ok", "files": 2},
                             "userinfo": {"status": "skipped", "reason": "scope_not_granted"}}}}})
    users.document("2").set({"email": "b@example.com", "status": "needs_reauth",
                             "reauth_reason": "revoked"})
    lines = user_lines(client, "report_users")
    assert lines == [
        "  a@example.com: active, last run 12:30:00: Drive appDataFolder holds 2 file(s); "
        "userinfo skipped (reason=scope_not_granted)",
        "  b@example.com: needs_reauth (revoked), not processed yet",
    ]
    assert user_lines(client, "nobody") == ["  no user has signed in yet"]
