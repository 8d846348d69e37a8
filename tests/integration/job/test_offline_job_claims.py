"""At most once per user per run id, across duplicate deliveries, crashed runs and the budget.

Includes the end-to-end check through a real functions-framework process: Cloud Scheduler's
at-least-once delivery of one schedule time, twice and concurrently.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import tempfile

import requests

from localdev.processes import FunctionServer
from tests.integration.job.conftest import refreshes, requests_to

SCHEDULE_TIME = "2026-06-01T12:00:00Z"


def test_the_same_run_delivered_twice_in_a_row_does_nothing_the_second_time(users, job, google):
    subs = [users.sign_in(f"user{i}@example.com") for i in range(3)]
    users.expire_cached_access_tokens(*subs)

    first = job.run("schedule@" + SCHEDULE_TIME)
    second = job.run("schedule@" + SCHEDULE_TIME)

    assert first.succeeded == 3 and second.processed == 0
    assert refreshes(google) == {sub: 1 for sub in subs}


def test_concurrent_deliveries_in_one_instance_process_each_user_once(users, make_job, google):
    subs = [users.sign_in(f"user{i}@example.com") for i in range(6)]
    users.expire_cached_access_tokens(*subs)
    google.latency(30)  # keep both deliveries in flight together
    jobs = [make_job({"JOB_CONCURRENCY": "3"}) for _ in range(2)]

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        summaries = list(pool.map(lambda j: j.run("schedule@" + SCHEDULE_TIME), jobs))

    assert sum(s.processed for s in summaries) == 6
    assert refreshes(google) == {sub: 1 for sub in subs}
    assert all(users.doc(s)["job"]["last_run_id"] == "schedule@" + SCHEDULE_TIME for s in subs)


def test_a_crashed_runs_claim_expires_and_the_next_run_takes_over(users, job, google):
    alice = users.sign_in("alice@example.com")
    bob = users.sign_in("bob@example.org")
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=9)
    # A run crashed while holding Alice (claim lapsed) and another still holds Bob.
    users.update(alice, {"job.claim_id": "dead-run", "job.claim_run_id": "run-0",
                         "job.claim_expires_at": past, "next_run_at": past})
    users.update(bob, {"job.claim_id": "live-run", "job.claim_run_id": "run-0",
                       "job.claim_expires_at": future, "next_run_at": future})

    summary = job.run("run-1")

    assert summary.succeeded == 1
    assert users.doc(alice)["job"]["last_run_id"] == "run-1"
    assert users.doc(bob)["job"]["claim_id"] == "live-run"
    line = job.user_lines()[0]
    # Logged as an expired claim, never as a credential problem.
    assert line["previous_claim_expired"] is True and line["outcome"] == "succeeded"


def test_a_claim_lost_to_another_delivery_is_skipped(users, job, google):
    alice = users.sign_in("alice@example.com")
    snapshot = job.deps.jobs.due_page(dt.datetime.now(dt.timezone.utc), 10)[0]
    # Another delivery claims her between our page read and our claim.
    from offline_access.store.job_claims import DueUser

    other = job.deps.jobs.claim(DueUser.from_snapshot(snapshot), run_id="run-1",
                                claim_id="other-delivery", now=dt.datetime.now(dt.timezone.utc),
                                ttl=dt.timedelta(minutes=10))
    assert other.user is not None

    mine = job.deps.jobs.claim(DueUser.from_snapshot(snapshot), run_id="run-1",
                               claim_id="this-delivery", now=dt.datetime.now(dt.timezone.utc),
                               ttl=dt.timedelta(minutes=10))

    assert mine.user is None and mine.skipped == "claimed_by_another_run"
    assert users.doc(alice)["job"]["claim_id"] == "other-delivery"


def test_the_time_budget_stops_the_run_and_the_next_run_resumes(users, make_job, google):
    subs = [users.sign_in(f"user{i}@example.com") for i in range(8)]
    users.expire_cached_access_tokens(*subs)
    google.latency(150)  # three calls per user: about 0.45 s each

    first = make_job({"JOB_TIME_BUDGET_SECONDS": "1", "JOB_CONCURRENCY": "2"}).run("run-1")

    assert first.stopped == "time_budget" and 0 < first.processed < 8
    assert first.resume_from["user"] and first.resume_from["next_run_at"]
    assert first.duration_seconds < 4  # the users in flight finish; nobody new starts
    done_first = {s for s in subs if users.doc(s).get("job", {}).get("last_run_id") == "run-1"}
    assert len(done_first) == first.processed

    google.latency(0)
    second = make_job().run("run-2")

    assert second.processed == 8 - first.processed and second.stopped is None
    assert refreshes(google) == {sub: 1 for sub in subs}  # nobody twice, nobody left out
    assert all(users.doc(s)["job"]["last_run_id"] == "run-2" for s in set(subs) - done_first)


def test_two_concurrent_deliveries_to_a_function_process(users, function_env, google):
    subs = [users.sign_in(f"user{i}@example.com") for i in range(6)]
    users.expire_cached_access_tokens(*subs)
    google.latency(30)
    output = tempfile.TemporaryFile()
    env = {**function_env, "JOB_CONCURRENCY": "3", "THREADS": "4"}
    server = FunctionServer("run_offline_job", env, output=output)
    try:
        headers = {"X-CloudScheduler-ScheduleTime": SCHEDULE_TIME,
                   "X-CloudScheduler-JobName": "offline-access-job",
                   "Content-Type": "application/json"}

        def deliver(_):
            return requests.post(server.url, data="{}", headers=headers, timeout=60)

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(deliver, range(2)))
        assert requests.get(server.url, timeout=10).status_code == 405
    finally:
        server.stop()

    assert [a.status_code for a in answers] == [200, 200]
    bodies = [a.json() for a in answers]
    assert {b["run_id"] for b in bodies} == {"offline-access-job@" + SCHEDULE_TIME}
    assert sum(b["users_processed"] for b in bodies) == 6
    assert sum(b["succeeded"] for b in bodies) == 6
    assert refreshes(google) == {sub: 1 for sub in subs}
    assert requests_to(google, "GET /drive/v3/files") == 6
    output.seek(0)
    lines = [json.loads(line) for line in output.read().decode().splitlines()
             if line.startswith("{")]
    worked = [line for line in lines
              if line.get("event") == "offline_job_user" and line["outcome"] == "succeeded"]
    assert sorted(line["user"] for line in worked) == sorted(users.exchange.user_refs.ref(sub) for sub in subs)
    runs = [line for line in lines if line.get("event") == "offline_job" and "run_id" in line]
    assert len(runs) == 2
    assert "@example.com" not in json.dumps(lines)


def test_a_sign_in_during_the_users_work_is_not_overwritten(users, make_job, google, monkeypatch):
    from offline_access.offline import tasks as user_tasks

    monkeypatch.setattr(user_tasks, "_REGISTRY", dict(user_tasks._REGISTRY))
    alice = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(alice)

    @user_tasks.offline_task("signs_in_meanwhile", scopes=())
    def signs_in_meanwhile(api, user):
        users.sign_in("alice@example.com", prompt="consent")  # a new refresh token arrives
        return user_tasks.TaskResult(summary={})

    stored_before = users.open(alice, "refresh_token")
    job = make_job({"OFFLINE_TASKS": "signs_in_meanwhile"})
    assert job.run("run-1").succeeded == 1

    doc = users.doc(alice)
    assert users.open(alice, "refresh_token") != stored_before  # the sign-in's token stays
    assert doc["job"]["last_run_id"] == "run-1" and doc["job"]["claim_id"] is None
    # The sign-in made her due now; the run's result did not push that back.
    assert doc["next_run_at"] <= dt.datetime.now(dt.timezone.utc)
    assert job.user_lines()[0]["saved"] == "saved_job_only"


def test_a_claim_whose_answer_was_lost_is_recognised_as_ours(users, job, google, monkeypatch):
    from google.api_core import exceptions

    from offline_access.store.job_claims import DueUser, JobStore

    alice = users.sign_in("alice@example.com")
    update = JobStore._update
    calls = []

    def applied_then_failed(self, user, fields):
        calls.append(fields)
        update(self, user, fields)
        if len(calls) == 1:
            # The commit was applied, its answer lost, and the retry found the document changed.
            raise exceptions.FailedPrecondition("update time mismatch")
        return None

    monkeypatch.setattr(JobStore, "_update", applied_then_failed)
    snapshot = job.deps.jobs.due_page(dt.datetime.now(dt.timezone.utc), 10)[0]
    outcome = job.deps.jobs.claim(DueUser.from_snapshot(snapshot), run_id="run-1",
                                  claim_id="mine", now=dt.datetime.now(dt.timezone.utc),
                                  ttl=dt.timedelta(minutes=10))

    assert outcome.user is not None and outcome.user.job["claim_id"] == "mine"
    assert users.doc(alice)["job"]["claim_id"] == "mine" and len(calls) == 1
