"""Claims and results written in batches (BatchWrite), with every guarantee of the per-user writes.

Against the Firestore emulator: each write of a batch has its own precondition and result, so a
sign-in, a deletion or another delivery between the read and the write changes that one user's
outcome only, and no user deleted meanwhile is ever written again.
"""

from __future__ import annotations

import datetime as dt

import pytest
from google.cloud.firestore_v1.bulk_batch import BulkWriteBatch

from offline_access.offline.run import start_run
from offline_access.store.job_claims import (
    SKIP_CLAIMED,
    SKIP_GONE,
    DueUser,
    FinishedUser,
    JobStore,
)
from offline_access.store.job_results import Outcome, UserResult
from tests.integration.job.conftest import refreshes

TTL = dt.timedelta(minutes=10)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def due(job) -> list[DueUser]:
    return [DueUser.from_snapshot(s) for s in job.deps.jobs.due_page(now(), 50)]


@pytest.fixture
def commits(monkeypatch) -> list[int]:
    """The size of every BatchWrite sent, and (as -1) every single-document update."""
    sizes: list[int] = []
    commit, update = BulkWriteBatch.commit, JobStore._update

    def counting_commit(self, *args, **kwargs):
        sizes.append(len(self._write_pbs))
        return commit(self, *args, **kwargs)

    def counting_update(self, user, fields):
        sizes.append(-1)
        return update(self, user, fields)

    monkeypatch.setattr(BulkWriteBatch, "commit", counting_commit)
    monkeypatch.setattr(JobStore, "_update", counting_update)
    return sizes


def test_a_page_is_claimed_in_one_write_and_its_results_in_another(users, job, google, commits):
    subs = [users.sign_in(f"user{i}@example.com") for i in range(5)]
    users.expire_cached_access_tokens(*subs)

    summary = job.run("run-1")

    assert summary.succeeded == 5
    assert commits == [5, 5]  # one BatchWrite of 5 claims, one of 5 results; no other write
    assert refreshes(google) == {sub: 1 for sub in subs}
    for sub in subs:
        record = users.doc(sub)["job"]
        assert record["last_run_id"] == "run-1" and record["claim_id"] is None
    assert {line["saved"] for line in job.user_lines()} == {"saved"}


def test_claims_in_a_batch_are_decided_user_by_user(users, job, firestore_client):
    alice, bob, carol, dave = (users.sign_in(f"{n}@example.com") for n in ("alice", "bob", "carol", "dave"))
    page = {u.sub: u for u in due(job)}
    # Between the page read and the claim: Bob signs in again, Carol is deleted, and another
    # delivery of the same run claims Dave.
    users.sign_in("bob@example.com")
    users.store.ref(carol).delete()
    other = job.deps.jobs.claim(page[dave], run_id="run-1", claim_id="other-delivery", now=now(),
                                ttl=TTL)
    assert other.user is not None

    claims = job.deps.jobs.claim_many([page[s] for s in (alice, bob, carol, dave)], run_id="run-1",
                                      claim_id="this-delivery", now=now(), ttl=TTL)

    by_sub = dict(zip((alice, bob, carol, dave), claims, strict=True))
    assert by_sub[alice].user is not None and by_sub[alice].due_before is not None
    # Bob's document changed: re-read, still due (a sign-in makes him due now), claimed.
    assert by_sub[bob].user is not None
    assert users.doc(bob)["job"]["claim_id"] == "this-delivery"
    assert by_sub[carol].user is None and by_sub[carol].skipped == SKIP_GONE
    assert not users.store.ref(carol).get().exists  # the claim did not bring Carol back
    assert by_sub[dave].user is None and by_sub[dave].skipped == SKIP_CLAIMED
    assert users.doc(dave)["job"]["claim_id"] == "other-delivery"


def test_results_in_a_batch_never_overwrite_a_sign_in_nor_resurrect_a_deleted_user(users, job):
    alice, bob, carol = (users.sign_in(f"{n}@example.com") for n in ("alice", "bob", "carol"))
    claims = job.deps.jobs.claim_many(due(job), run_id="run-1", claim_id="c1", now=now(), ttl=TTL)
    claimed = {c.user.sub: c.user for c in claims}
    # A sign-in during the run stores a new refresh token (as the exchange seals it).
    new_bob_token = "1//new-refresh-token-from-a-sign-in"
    users.update(bob, {"refresh_token": users.exchange.sealer.seal(new_bob_token, sub=bob,
                                                                    field="refresh_token"),
                       "signed_in_at": now()})
    users.store.ref(carol).delete()  # a disconnect during the run
    result = UserResult(Outcome.NEEDS_REAUTH, "revoked", reauth_reason="revoked")
    later = now()

    saved = job.deps.jobs.finish_many([FinishedUser(claimed[s], result, later)
                                       for s in (alice, bob, carol)], run_id="run-1", claim_id="c1")

    assert saved == ["saved", "saved_job_only", "claim_lost"]
    assert users.doc(alice)["status"] == "needs_reauth"
    bob_doc = users.doc(bob)
    # The run's record is written, the sign-in's status and token are kept.
    assert bob_doc["status"] == "active" and users.open(bob, "refresh_token") == new_bob_token
    assert bob_doc["job"]["last_run_id"] == "run-1" and bob_doc["job"]["claim_id"] is None
    assert not users.store.ref(carol).get().exists


def test_a_run_stopped_mid_page_hands_back_the_claims_it_did_not_start(users, make_job, google):
    subs = [users.sign_in(f"user{i}@example.com") for i in range(6)]
    users.expire_cached_access_tokens(*subs)
    before = {sub: users.doc(sub)["next_run_at"] for sub in subs}
    google.latency(150)

    first = make_job({"JOB_TIME_BUDGET_SECONDS": "1", "JOB_CONCURRENCY": "1"}).run("run-1")

    assert first.stopped == "time_budget" and 0 < first.processed < 6
    assert first.released == 6 - first.processed
    left = [s for s in subs if users.doc(s).get("job", {}).get("last_run_id") != "run-1"]
    assert len(left) == first.released
    for sub in left:  # as if never claimed: due when they were, first in the next run
        doc = users.doc(sub)
        assert doc["job"]["claim_id"] is None and doc["next_run_at"] == before[sub]
    google.latency(0)
    second = make_job().run("run-2")
    assert second.processed == len(left)
    assert refreshes(google) == {sub: 1 for sub in subs}


def test_the_run_line_carries_the_backlog_age(users, job):
    alice = users.sign_in("alice@example.com")
    users.update(alice, {"next_run_at": now() - dt.timedelta(minutes=30)})

    job.run("run-1")
    job.run("run-2")  # nobody due any more

    runs = [line for line in job.log_lines() if line["event"] == "offline_job"]
    assert 1795 <= runs[0]["backlog_age_seconds"] <= 1900
    assert runs[1]["backlog_age_seconds"] == 0.0


def test_dead_letter_records_are_listed_and_cleared_by_the_next_result(users, job):
    alice, bob = users.sign_in("alice@example.com"), users.sign_in("bob@example.com")
    users.store.ref(bob).delete()
    record = {"at": now(), "run_id": "run-1", "message_id": "m-1", "reason": "secret_manager_unavailable",
              "attempts": 10}

    marked = job.deps.jobs.mark_dead_lettered([alice, bob], record)

    assert marked == 1 and not users.store.ref(bob).get().exists  # Bob is not brought back
    listed = job.deps.jobs.dead_lettered(10)
    assert [u.sub for u in listed] == [alice] and listed[0].job["dead_letter"]["message_id"] == "m-1"
    assert users.doc(alice)["status"] == "active"  # nothing else was touched

    job.run("run-2")

    assert "dead_letter" not in users.doc(alice)["job"]
    assert job.deps.jobs.dead_lettered(10) == []


def test_a_lost_batch_answer_is_recognised_as_our_own_claim(users, job):
    """A BatchWrite retried after its first answer was lost: each write then fails its
    precondition on our own claim, and the claim is recognised as ours."""
    alice = users.sign_in("alice@example.com")
    page = due(job)
    run = start_run(job.deps, "run-1")
    job.deps.jobs.claim_many(page, run_id="run-1", claim_id=run.claim_id, now=now(), ttl=TTL)

    again = job.deps.jobs.claim_many(page, run_id="run-1", claim_id=run.claim_id, now=now(), ttl=TTL)

    assert again[0].user is not None and again[0].user.sub == alice
    assert users.doc(alice)["job"]["claim_id"] == run.claim_id
