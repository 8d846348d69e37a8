"""The HTTP face of `run_offline_job`: method, run id from Cloud Scheduler's headers, errors."""

from __future__ import annotations

import json

import flask
import grpc
import pytest

from offline_access import http_adapter, wiring
from offline_access.errors import Misconfigured


class Instance:
    def __init__(self, get_deps):
        app = flask.Flask("job-under-test")
        app.add_url_rule("/", "job", lambda: http_adapter.handle_offline_job(flask.request, get_deps),
                         methods=["GET", "POST", "PUT"])
        self.client = app.test_client()

    def post(self, **headers):
        return self.client.post("/", data="{}", headers={"Content-Type": "application/json",
                                                         **headers})


@pytest.fixture
def instance(function_env):
    deps = wiring.build_job_dependencies(function_env)
    return Instance(lambda: deps)


def test_answers_the_run_summary_with_the_schedule_time_as_run_id(instance, users, capsys):
    users.sign_in("alice@example.com")

    answer = instance.post(**{"X-CloudScheduler-ScheduleTime": "2026-06-01T12:00:00Z",
                              "X-Cloud-Trace-Context": "0123456789abcdef/1;o=1"})

    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.get_json()
    assert body["run_id"] == "schedule@2026-06-01T12:00:00Z"
    assert (body["users_processed"], body["succeeded"], body["needs_reauth"],
            body["deferred"]) == (1, 1, 0, 0)
    assert isinstance(body["duration_seconds"], float)
    run_line = [json.loads(line) for line in capsys.readouterr().out.splitlines()
                if '"event":"offline_job"' in line][-1]
    assert run_line["logging.googleapis.com/trace"].endswith("/traces/0123456789abcdef")


def test_without_scheduler_headers_each_call_is_its_own_run(instance, users):
    first, second = instance.post().get_json(), instance.post().get_json()
    assert first["run_id"].startswith("manual-") and first["run_id"] != second["run_id"]


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_only_post_runs_the_job(instance, method):
    answer = instance.client.open("/", method=method)
    assert answer.status_code == 405 and answer.get_json()["error"] == "method_not_allowed"
    assert answer.headers["Allow"] == "POST"


def test_a_malformed_schedule_time_is_a_client_error(instance):
    answer = instance.post(**{"X-CloudScheduler-ScheduleTime": "not a time"})
    assert answer.status_code == 400 and answer.get_json()["error"] == "invalid_request"


def test_an_unknown_task_name_is_a_configuration_error(function_env, capsys):
    with pytest.raises(Misconfigured):
        wiring.build_job_dependencies({**function_env, "OFFLINE_TASKS": "drive_appdata,nope"})

    def build():
        return wiring.build_job_dependencies({**function_env, "OFFLINE_TASKS": "nope"})

    answer = Instance(build).post()
    assert answer.status_code == 500 and answer.get_json()["error"] == "server_misconfigured"
    line = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert "nope" in line["fix"] and line["severity"] == "ERROR"


def test_secret_manager_down_answers_503_before_touching_users(instance, users, secret_manager):
    alice = users.sign_in("alice@example.com")
    secret_manager.fail_next(grpc.StatusCode.UNAVAILABLE, times=-1)
    try:
        answer = instance.post()
    finally:
        secret_manager.clear_faults()

    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert "last_run_id" not in users.doc(alice).get("job", {})
