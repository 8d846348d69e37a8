"""The worker under Pub/Sub's at-least-once delivery: duplicates, retries, the last attempt.

Each delivery is made by the test, as the real service would make it (the emulator neither
redelivers nor dead-letters): the same envelope twice in a row and twice at once, an envelope
whose `deliveryAttempt` is the last, and envelopes that are not work messages at all.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt

import grpc

from offline_access.offline.dead_letters import dead_lettered_users
from tests.integration.fanout.conftest import MAX_ATTEMPTS, envelope, work
from tests.integration.job.conftest import refreshes, requests_to

RUN = "offline-access-job@2026-06-01T12:00:00Z"


def test_a_message_is_processed_and_acknowledged(users, make_worker, google):
    subs = [users.sign_in(f"user{i}@example.com") for i in range(3)]
    users.expire_cached_access_tokens(*subs)
    worker = make_worker()

    answer = worker.push(envelope(work(RUN, *subs)))

    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["run_id"], body["users"], body["succeeded"], body["stopped"]) == (RUN, 3, 3, None)
    assert refreshes(google) == {sub: 1 for sub in subs}
    for sub in subs:
        record = users.doc(sub)["job"]
        assert record["last_run_id"] == RUN and record["claim_id"] is None
    (line,) = worker.lines("offline_job_message")
    assert line["message_id"] == "1001" and line["outcome"] == "completed"
    refs = sorted(map(users.exchange.user_refs.ref, subs))
    assert sorted(u["user"] for u in worker.lines("offline_job_user")) == refs


def test_a_message_delivered_twice_in_a_row_processes_nobody_twice(users, make_worker, google):
    subs = [users.sign_in(f"user{i}@example.com") for i in range(3)]
    users.expire_cached_access_tokens(*subs)
    worker = make_worker()
    body = envelope(work(RUN, *subs))

    first, second = worker.push(body), worker.push(envelope(work(RUN, *subs), attempt=2))

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.get_json()["succeeded"] == 3
    assert second.get_json()["succeeded"] == 0 and second.get_json()["skipped"] == 3
    assert refreshes(google) == {sub: 1 for sub in subs}
    assert requests_to(google, "GET /drive/v3/files") == 3


def test_a_message_delivered_twice_at_once_to_two_instances_processes_nobody_twice(
        users, make_worker, google):
    subs = [users.sign_in(f"user{i}@example.com") for i in range(6)]
    users.expire_cached_access_tokens(*subs)
    google.latency(30)  # keep both deliveries in flight together
    instances = [make_worker({"JOB_CONCURRENCY": "2"}) for _ in range(2)]
    body = envelope(work(RUN, *subs))

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda instance: instance.push(body), instances))

    assert [a.status_code for a in answers] == [200, 200]
    assert sum(a.get_json()["succeeded"] for a in answers) == 6
    assert sum(a.get_json()["skipped"] for a in answers) == 6
    assert refreshes(google) == {sub: 1 for sub in subs}


def test_a_user_deleted_or_signed_out_before_the_delivery_is_skipped_not_resurrected(
        users, make_worker, google):
    alice, bob = users.sign_in("alice@example.com"), users.sign_in("bob@example.com")
    users.store.ref(bob).delete()
    worker = make_worker()

    answer = worker.push(envelope(work(RUN, alice, bob)))

    assert answer.status_code == 200 and answer.get_json()["succeeded"] == 1
    assert not users.store.ref(bob).get().exists
    skipped = [u for u in worker.lines("offline_job_user") if u["outcome"] == "skipped"]
    assert [(u["user"], u["detail"]) for u in skipped] == [(users.exchange.user_refs.ref(bob), "deleted")]


def test_an_outage_before_the_last_attempt_asks_for_a_redelivery(users, make_worker, secret_manager):
    alice = users.sign_in("alice@example.com")
    worker = make_worker()
    secret_manager.fail_next(grpc.StatusCode.UNAVAILABLE, times=-1)
    try:
        answer = worker.push(envelope(work(RUN, alice), attempt=MAX_ATTEMPTS - 1))
    finally:
        secret_manager.clear_faults()

    assert answer.status_code == 503 and answer.get_json()["error"] == "service_unavailable"
    doc = users.doc(alice)
    assert "last_run_id" not in doc.get("job", {}) and "dead_letter" not in doc.get("job", {})
    (line,) = worker.lines("offline_job_message")
    assert line["outcome"] == "failed" and line["dependency"] == "secret_manager"
    assert not [u for u in worker.lines("offline_job_user") if u["outcome"] == "dead_lettered"]


def test_the_last_attempt_records_its_users_as_dead_lettered(users, make_worker, secret_manager,
                                                            google):
    alice, bob = users.sign_in("alice@example.com"), users.sign_in("bob@example.com")
    worker = make_worker()
    # An instance that has served before holds its log key (a fresh one logs `unavailable`
    # references while Secret Manager is down; the users' records name them anyway).
    worker.worker.deps.user_refs.check_ready()
    secret_manager.fail_next(grpc.StatusCode.UNAVAILABLE, times=-1)
    try:
        answer = worker.push(envelope(work(RUN, alice, bob), message_id="777",
                                      attempt=MAX_ATTEMPTS))
    finally:
        secret_manager.clear_faults()

    # Still an error: Pub/Sub forwards the message to the dead-letter topic.
    assert answer.status_code == 503
    dead = [u for u in worker.lines("offline_job_user") if u["outcome"] == "dead_lettered"]
    assert sorted(u["user"] for u in dead) == sorted(map(users.exchange.user_refs.ref, (alice, bob)))
    assert {u["severity"] for u in dead} == {"ERROR"}
    assert {u["detail"] for u in dead} == {"secret_manager_unavailable"}
    listed = dead_lettered_users(worker.worker.deps.jobs, worker.worker.deps.user_refs)
    assert sorted(u.sub for u in listed) == sorted((alice, bob))
    assert {(u.message_id, u.attempts, u.run_id, u.status) for u in listed} == {
        ("777", MAX_ATTEMPTS, RUN, "active")}
    # The users stay due; the next run processes them and clears the record.
    assert users.doc(alice)["next_run_at"] <= dt.datetime.now(dt.timezone.utc)
    assert worker.push(envelope(work("next-run", alice, bob), message_id="778")).status_code == 200
    assert dead_lettered_users(worker.worker.deps.jobs, worker.worker.deps.user_refs) == []
    assert "dead_letter" not in users.doc(alice)["job"]


def test_what_is_not_a_work_message_is_refused_with_a_client_error(make_worker, capsys):
    worker = make_worker()
    cases = {
        b"not json": "invalid_push",
        b'{"message": {"data": "%%%", "messageId": "1"}}': "invalid_push",
        envelope(b"not json either"): "invalid_message",
        envelope(b'{"v": 1, "run_id": "r", "users": [], "dispatched_at": "2026-06-01T12:00:00Z"}'):
            "invalid_message",
        envelope(b'{"v": 1, "run_id": "r", "users": ["a/b"], "dispatched_at": "2026-06-01T12:00:00Z"}'):
            "invalid_message",
        envelope(b'{"v": 2, "run_id": "r", "users": ["1"], "dispatched_at": "2026-06-01T12:00:00Z"}'):
            "invalid_message",
    }
    for body, error in cases.items():
        answer = worker.push(body)
        assert answer.status_code == 400, body
        assert answer.get_json()["error"] == error and answer.get_json()["message"]
    assert worker.client.get("/").status_code == 405
    refused = [line for line in capsys.readouterr().out.splitlines() if "refused" in line]
    assert len(refused) == len(cases) + 1
