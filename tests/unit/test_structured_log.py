"""Structured log lines, credential masking, trace fields, user references."""

import base64
import hashlib
import hmac
import json
import os

import pytest

from offline_access.errors import Misconfigured
from offline_access.structured_log import UserRefs, emit, mask_credentials, parse_log_key, trace_field


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



class TestUserRefs:
    KEY = os.urandom(32)

    def refs(self, key: bytes = KEY) -> UserRefs:
        return UserRefs(lambda: base64.b64encode(key))

    def test_a_reference_is_stable_and_not_the_sub(self):
        refs = self.refs()
        assert refs.ref("1234") == refs.ref("1234") != "1234"
        assert len(refs.ref("1234")) == 24 and refs.ref("1234") != refs.ref("1235")

    def test_a_reference_is_an_hmac_under_the_key_not_a_plain_hash(self):
        # Knowing a user's sub is not enough to find them in the logs (review fault 9).
        unsalted = hashlib.sha256(b"offline-access-user|1234").hexdigest()
        ref = self.refs().ref("1234")
        assert not unsalted.startswith(ref[:16]) and ref not in hashlib.sha256(b"1234").hexdigest()
        assert ref == hmac.new(self.KEY, b"1234", hashlib.sha256).hexdigest()[:24]
        assert self.refs(os.urandom(32)).ref("1234") != ref

    def test_the_key_is_read_once(self):
        reads = []
        refs = UserRefs(lambda: reads.append(1) or base64.b64encode(self.KEY))
        for sub in ("1", "2", "3"):
            refs.ref(sub)
        assert reads == [1]

    @pytest.mark.parametrize("raw", [b"short", b"a 32-character passphrase, no!!!", base64.b64encode(b"x" * 16)],
                             ids=["short", "passphrase", "16 bytes"])
    def test_a_log_key_must_be_32_random_bytes_in_base64(self, raw):
        with pytest.raises(Misconfigured):
            parse_log_key(raw)
        with pytest.raises(Misconfigured):
            UserRefs(lambda: raw).check_ready()

    def test_an_unreadable_key_never_breaks_a_log_line(self):
        def unreadable() -> bytes:
            raise Misconfigured("no key")
        assert UserRefs(unreadable).ref("1234") == "unavailable"
