"""A bug in a handler still answers JSON: 500 `internal_error`, never an HTML page or a trace."""

from __future__ import annotations

import flask
import pytest

from offline_access import http_adapter

HANDLERS = [http_adapter.handle_account_api, http_adapter.handle_disconnect_user,
            http_adapter.handle_offline_job]


def broken_dependencies():
    raise KeyError("a bug, with request data in its message: 4/0Abc-canary")


@pytest.mark.parametrize("handler", HANDLERS, ids=lambda h: h.__name__)
def test_a_bug_answers_500_json_and_logs_its_type_only(handler, capsys):
    app = flask.Flask("bug-under-test")
    app.add_url_rule("/<path:path>", "any", lambda path: handler(flask.request, broken_dependencies),
                     methods=["GET", "POST"])
    answer = app.test_client().post("/api/me", json={})
    assert answer.status_code == 500
    assert answer.get_json() == http_adapter.INTERNAL_ERROR
    assert answer.headers["Content-Type"] == "application/json"
    out = capsys.readouterr().out
    assert '"exception_type":"KeyError"' in out and "canary" not in out
