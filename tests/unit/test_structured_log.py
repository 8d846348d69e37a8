"""Structured log lines, credential masking, trace fields, user references."""

import json

import pytest

from offline_access.structured_log import emit, mask_credentials, trace_field, user_ref


class TestLogs:
    @pytest.mark.parametrize("secret", [
        "ya29.a0AfH6SMBx-canary", "1//0gLw-canary_token", "4/0AeanS0b-canary",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
    ])
    def test_credential_shapes_are_masked(self, secret):
        assert secret not in mask_credentials(f"before {secret} after")

    def test_emit_writes_one_json_line_with_trace(self, capsys):
        emit("INFO", "hello", outcome="ok", **trace_field("proj", "abc123/1;o=1"))
        line = capsys.readouterr().out
        assert line.count("\n") == 1
        entry = json.loads(line)
        assert entry["severity"] == "INFO" and entry["message"] == "hello"
        assert entry["logging.googleapis.com/trace"] == "projects/proj/traces/abc123"

    def test_bad_trace_header_is_ignored(self):
        assert trace_field("p", "not a trace!/x") == {}

    def test_user_ref_is_stable_and_not_the_sub(self):
        assert user_ref("1234") == user_ref("1234") != "1234"
        assert len(user_ref("1234")) == 16
