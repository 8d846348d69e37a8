"""A run of the scheduled job for signed-in users: tokens, tasks, the result on the document."""

from __future__ import annotations

import datetime as dt

from offline_access.store.job_claims import JobStore
from tests.integration.job.conftest import refreshes, requests_to, token_refresh_requests
from tests.stack_values import CLIENT_SECRET, DRIVE_APPDATA

DRIVE_LIST = "GET /drive/v3/files"
USERINFO = "GET /oauth2/v3/userinfo"


def close_to(value: dt.datetime, expected: dt.datetime, seconds: float = 30) -> bool:
    return abs((value - expected).total_seconds()) < seconds


def test_a_run_calls_the_apis_and_records_the_outcome(users, job, google):
    alice = users.sign_in("alice@example.com")
    bob = users.sign_in("bob@example.org")
    google.drive_files(alice, [{"name": "settings.json"}, {"name": "state.json"}])
    stored_refresh_token = users.open(alice, "refresh_token")

    summary = job.run("schedule@2026-06-01T12:00:00Z")

    assert summary.body() | {"duration_seconds": 0} == {
        "run_id": "schedule@2026-06-01T12:00:00Z", "users_processed": 2, "succeeded": 2,
        "partial": 0, "needs_reauth": 0, "deferred": 0, "disconnected": 0, "skipped": 0, "pages": 1,
        "stopped": None, "resume_from": None, "duration_seconds": 0, "disconnects_deferred": 0,
    }
    doc = users.doc(alice)
    now = dt.datetime.now(dt.timezone.utc)
    assert doc["job"]["result"] == {"outcome": "succeeded", "tasks": {
        "drive_appdata": {"status": "ok", "files": 2},
        "userinfo": {"status": "ok", "changed": []},
    }}
    assert doc["job"]["last_run_id"] == "schedule@2026-06-01T12:00:00Z"
    assert doc["job"]["failure_count"] == 0 and close_to(doc["job"]["last_run_at"], now)
    assert doc["job"]["claim_id"] is None and doc["job"]["claim_expires_at"] is None
    assert close_to(doc["next_run_at"], now + dt.timedelta(hours=1))
    assert users.doc(bob)["job"]["result"]["tasks"]["drive_appdata"] == {"status": "ok", "files": 0}
    # The access tokens from the sign-in were still fresh: no refresh was needed.
    assert refreshes(google) == {}
    assert requests_to(google, DRIVE_LIST) == 2 and requests_to(google, USERINFO) == 2
    assert users.open(alice, "refresh_token") == stored_refresh_token


def test_a_stale_access_token_is_refreshed_once_and_the_refresh_token_kept(users, job, google):
    alice = users.sign_in("alice@example.com")
    refresh_token = users.open(alice, "refresh_token")
    old_access_token = users.open(alice, "access_token")
    users.expire_cached_access_tokens(alice)

    assert job.run().succeeded == 1

    assert refreshes(google) == {alice: 1}
    doc = users.doc(alice)
    # A refresh response has no refresh token: the stored one is untouched, not erased.
    assert users.open(alice, "refresh_token") == refresh_token
    assert users.open(alice, "access_token") not in (old_access_token, refresh_token)
    now = dt.datetime.now(dt.timezone.utc)
    assert close_to(doc["access_token_expires_at"], now + dt.timedelta(seconds=3599))
    assert close_to(doc["job"]["refreshed_at"], now)
    line = job.user_lines()[0]
    assert line["refresh_calls"] == 1 and line["cached_token"] is False


def test_a_token_valid_for_less_than_five_minutes_is_not_reused(users, job, google):
    alice = users.sign_in("alice@example.com")
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=4)
    users.update(alice, {"access_token_expires_at": soon})

    job.run()

    assert refreshes(google) == {alice: 1}


def test_refresh_asks_for_the_granted_scopes_and_skips_tasks_not_granted(users, job, google):
    # The user unticked Drive on the consent screen: asking for it on refresh would fail.
    alice = users.sign_in("alice@example.com", granted=["openid", "email", "profile"])
    users.expire_cached_access_tokens(alice)

    summary = job.run()

    assert summary.succeeded == 1 and refreshes(google) == {alice: 1}
    tasks = users.doc(alice)["job"]["result"]["tasks"]
    assert tasks["drive_appdata"] == {"status": "skipped", "reason": "scope_not_granted",
                                      "missing_scopes": [DRIVE_APPDATA]}
    assert tasks["userinfo"]["status"] == "ok"
    assert requests_to(google, DRIVE_LIST) == 0


def test_userinfo_keeps_the_profile_fresh(users, job, google):
    alice = users.sign_in("alice@example.com")
    google.user("alice@example.com", sub=alice, name="Alice Renamed")

    job.run()

    doc = users.doc(alice)
    assert doc["name"] == "Alice Renamed"
    assert doc["job"]["result"]["tasks"]["userinfo"] == {"status": "ok", "changed": ["name"]}


def test_offline_tasks_selects_the_work(users, make_job, google):
    users.sign_in("alice@example.com")

    make_job({"OFFLINE_TASKS": "drive_appdata"}).run()

    assert requests_to(google, DRIVE_LIST) == 1 and requests_to(google, USERINFO) == 0


def test_users_are_read_in_pages_and_each_written_twice(users, make_job, google, monkeypatch):
    subs = [users.sign_in(f"user{i}@example.com") for i in range(5)]
    writes: dict[str, int] = {}
    update, add_update = JobStore._update, JobStore._add_update

    def counting_update(self, user, fields):
        writes[user.sub] = writes.get(user.sub, 0) + 1
        return update(self, user, fields)

    def counting_add_update(self, batch, user, fields):  # a write in a BatchWrite
        writes[user.sub] = writes.get(user.sub, 0) + 1
        return add_update(self, batch, user, fields)

    monkeypatch.setattr(JobStore, "_update", counting_update)
    monkeypatch.setattr(JobStore, "_add_update", counting_add_update)
    summary = make_job({"JOB_PAGE_SIZE": "2", "JOB_CONCURRENCY": "2"}).run()

    assert summary.pages == 3 and summary.succeeded == 5
    # The claim and the result: nothing else is written per user, and nothing shared.
    assert writes == {sub: 2 for sub in subs}


def test_users_not_due_or_not_active_are_left_alone(users, job, google):
    alice = users.sign_in("alice@example.com")
    bob = users.sign_in("bob@example.org")
    carol = users.sign_in("carol@example.net", offline=False)  # no refresh token
    users.update(bob, {"next_run_at": dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)})

    summary = job.run()

    assert summary.processed == 1
    assert users.doc(alice)["job"]["last_run_id"] == "test-run"
    assert "last_run_id" not in users.doc(bob).get("job", {})
    assert users.doc(carol)["status"] == "no_offline_access"


def test_log_lines_name_users_by_reference_only(users, job, google):
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)
    access_and_refresh = [users.open(alice, "refresh_token")]

    job.run()
    access_and_refresh.append(users.open(alice, "access_token"))

    text = job.log.getvalue()
    lines = job.log_lines()
    assert [line["event"] for line in lines] == ["offline_job_user", "offline_job"]
    assert lines[0]["user"] and lines[0]["user"] != alice
    for secret in ["alice@example.com", alice, CLIENT_SECRET, *access_and_refresh]:
        assert secret not in text
    assert token_refresh_requests(google) == 1
