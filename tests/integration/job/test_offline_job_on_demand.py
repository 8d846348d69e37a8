"""Running the job ahead of schedule: one user (`{"user": SUB}`) or everyone (`{"all": true}`)."""

from __future__ import annotations

import flask
import pytest

from offline_access import http_adapter, wiring


@pytest.fixture
def post(function_env):
    deps = wiring.build_job_dependencies(function_env)
    app = flask.Flask("job-on-demand")
    app.add_url_rule("/", "job", lambda: http_adapter.handle_offline_job(flask.request, lambda: deps),
                     methods=["POST"])
    client = app.test_client()

    def send(body: str):
        return client.post("/", data=body, headers={"Content-Type": "application/json"})
    return send


def processed_twice(post, body: str) -> tuple[dict, dict]:
    return post(body).get_json(), post(body).get_json()


def test_a_scheduled_run_after_a_run_has_nobody_due(post, users):
    users.sign_in("alice@example.com")
    first, second = processed_twice(post, "{}")
    assert (first["users_processed"], second["users_processed"]) == (1, 0)


def test_all_processes_every_active_user_even_if_not_due(post, users):
    alice = users.sign_in("alice@example.com")
    users.sign_in("bob@example.org")
    assert post("{}").get_json()["succeeded"] == 2  # now nobody is due for an hour
    users.update(alice, {"status": "needs_reauth"})

    answer = post('{"all": true}')

    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["users_processed"], body["succeeded"], body["skipped"]) == (1, 1, 0)


def test_all_brings_no_user_twice_across_pages(function_env, users):
    subs = [users.sign_in(f"user{n}@example.com") for n in range(5)]
    deps = wiring.build_job_dependencies({**function_env, "JOB_PAGE_SIZE": "2"})
    from offline_access.offline.run import run_offline_job

    summary = run_offline_job(deps, "manual-1", everyone=True)

    assert (summary.succeeded, summary.skipped, summary.pages) == (5, 0, 3)
    assert all(users.doc(sub)["job"]["last_run_id"] == "manual-1" for sub in subs)


def test_one_user_is_processed_now_whatever_their_due_time(post, users):
    alice = users.sign_in("alice@example.com")
    bob = users.sign_in("bob@example.org")
    post("{}")
    before = users.doc(bob)["job"]["last_run_id"]

    body = post(f'{{"user": "{alice}"}}').get_json()

    assert (body["users_processed"], body["succeeded"]) == (1, 1)
    assert users.doc(alice)["job"]["last_run_id"] == body["run_id"]
    assert users.doc(bob)["job"]["last_run_id"] == before


@pytest.mark.parametrize("status, detail", [("needs_reauth", "not_active"),
                                            ("no_offline_access", "not_active")])
def test_one_user_who_cannot_be_processed_says_why(post, users, status, detail):
    alice = users.sign_in("alice@example.com")
    users.update(alice, {"status": status})
    body = post(f'{{"user": "{alice}"}}').get_json()
    assert (body["users_processed"], body["skipped"], body["detail"]) == (0, 1, detail)


def test_an_unknown_user_is_skipped_as_deleted(post):
    body = post('{"user": "199999999999999999999"}').get_json()
    assert (body["skipped"], body["detail"]) == (1, "deleted")


@pytest.mark.parametrize("body", ['{"user": 1}', '{"user": "a/b"}', '{"all": "yes"}',
                                  '{"all": true, "user": "1"}', '{"users": []}', "[]", "{", "null"])
def test_other_bodies_are_400(post, body):
    answer = post(body)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "invalid_request"


def test_an_empty_body_is_a_scheduled_run(post, users):
    users.sign_in("alice@example.com")
    assert post("").get_json()["users_processed"] == 1
