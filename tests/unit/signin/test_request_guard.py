"""The request checks of `exchange_code`: CSRF, CORS and body parsing (pure logic)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offline_access.errors import ClientError
from offline_access.signin.request_guard import (
    MAX_BODY_BYTES,
    check_post_headers,
    check_preflight,
    cors_headers,
    parse_body,
)

ORIGINS = ("http://localhost:8080", "https://app.example.com")
CODE = "4/0AeanS0bXyZ-abc_def.ghi~jkl"


def status_of(call) -> tuple[int, str]:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.status, info.value.code


class TestPreflight:
    def test_allowed_origin_gets_exact_echo_and_vary(self):
        headers = check_preflight(
            {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type, x-requested-with"}, ORIGINS)
        assert headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert headers["Vary"] == "Origin"
        assert headers["Access-Control-Allow-Methods"] == "POST"

    @pytest.mark.parametrize("origin", [
        None, "null", "https://app.example.com.evil.com", "http://app.example.com",
        "https://app.example.com:8443", "https://APP.example.com", "https://app.example.com/",
        "*",
    ])
    def test_other_origins_are_refused(self, origin):
        headers = {"Access-Control-Request-Method": "POST"}
        if origin is not None:
            headers["Origin"] = origin
        assert status_of(lambda: check_preflight(headers, ORIGINS)) == (403, "origin_not_allowed")

    @pytest.mark.parametrize("method,requested", [
        ("PUT", "content-type"), ("GET", ""), ("POST", "authorization"),
        ("POST", "content-type, x-requested-with, cookie"),
    ])
    def test_other_methods_and_headers_are_refused(self, method, requested):
        headers = {"Origin": ORIGINS[0], "Access-Control-Request-Method": method,
                   "Access-Control-Request-Headers": requested}
        assert status_of(lambda: check_preflight(headers, ORIGINS))[0] == 403


class TestPostHeaders:
    @pytest.mark.parametrize("value", ["XMLHttpRequest", "xmlhttprequest", "XmlHttpRequest"])
    def test_header_value_is_case_insensitive(self, value):
        check_post_headers({"X-Requested-With": value, "Origin": ORIGINS[0]}, ORIGINS)

    def test_a_post_without_origin_is_403(self):
        # Review fault 8: browsers send Origin on every POST (security-reliability.md A3).
        headers = {"X-Requested-With": "XMLHttpRequest"}
        assert status_of(lambda: check_post_headers(headers, ORIGINS)) == (403, "origin_not_allowed")

    @pytest.mark.parametrize("value", [None, "", "fetch", "XMLHttpRequest2"])
    def test_missing_or_wrong_header_is_403(self, value):
        headers = {"Origin": ORIGINS[0]}
        if value is not None:
            headers["X-Requested-With"] = value
        assert status_of(lambda: check_post_headers(headers, ORIGINS)) == (403, "csrf_check_failed")

    @pytest.mark.parametrize("origin", ["null", "https://evil.example", "http://localhost:8081"])
    def test_foreign_origin_is_403(self, origin):
        headers = {"X-Requested-With": "XMLHttpRequest", "Origin": origin}
        assert status_of(lambda: check_post_headers(headers, ORIGINS)) == (403, "origin_not_allowed")

    def test_declared_oversize_is_413_before_reading(self):
        headers = {"X-Requested-With": "XMLHttpRequest", "Origin": ORIGINS[0],
                   "Content-Length": str(10 * 2**20)}
        assert status_of(lambda: check_post_headers(headers, ORIGINS))[0] == 413

    def test_cors_headers_only_for_allowlisted_origins(self):
        assert cors_headers("https://evil.example", ORIGINS) == {"Vary": "Origin"}
        assert cors_headers(ORIGINS[0], ORIGINS)["Access-Control-Allow-Origin"] == ORIGINS[0]


class TestBody:
    def test_json_body(self):
        request = parse_body("application/json", json.dumps({"code": CODE, "state": "s-1"}).encode())
        assert (request.code, request.state) == (CODE, "s-1")
        assert CODE not in repr(request)

    def test_old_sample_octet_stream_body(self):
        request = parse_body("application/octet-stream; charset=utf-8", CODE.encode())
        assert request.code == CODE and request.state is None

    def test_client_sent_oauth_parameters_are_ignored(self):
        body = {"code": CODE, "redirect_uri": "https://evil.example", "client_id": "x", "scope": "y"}
        assert parse_body("application/json", json.dumps(body).encode()).code == CODE

    @pytest.mark.parametrize("content_type", [
        None, "", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
        "application/json; charset=latin-1",
    ])
    def test_other_content_types_are_415(self, content_type):
        assert status_of(lambda: parse_body(content_type, b'{"code":"x"}'))[0] == 415

    def test_oversize_body_is_413(self):
        assert status_of(lambda: parse_body("application/json", b" " * (MAX_BODY_BYTES + 1)))[0] == 413

    @pytest.mark.parametrize("body", [
        b"", b"{", b"null", b"[]", b"42", b'"4/abc"', b"{}", b'{"code": null}', b'{"code": 5}',
        b'{"code": ""}', b'{"code": ["4/abcdefgh"]}', b'{"code": "4/ab\\u0000cdefgh"}',
        b'{"code": "' + b"A" * 3000 + b'"}', b'{"code": "4/abcdefgh", "code": "4/ijklmnop"}',
        b'{"code": "4/abcdefgh", "state": 7}', b'{"code": "4/abcdefgh", "state": "<script>"}',
        b"\xff\xfe", b'{"code": "4/abc defgh"}',
    ])
    def test_malformed_json_bodies_are_400(self, body):
        assert status_of(lambda: parse_body("application/json", body)) == (400, "invalid_request")

    @pytest.mark.parametrize("field,value", [("code", CODE + "\n"), ("state", "s-1\n"),
                                             ("code", CODE + "\r\n")])
    def test_a_trailing_newline_is_not_part_of_a_valid_value(self, field, value):
        # Review fault 8: `re.match` with `$` let "4/...\n" through to Google.
        body = {"code": CODE, "state": "s-1", field: value}
        assert status_of(lambda: parse_body("application/json", json.dumps(body).encode())) == \
            (400, "invalid_request")

    @pytest.mark.parametrize("body", [b"", b"   ", b"4/abc\x00defgh", b"\xff" * 20, b"short"])
    def test_malformed_raw_bodies_are_400(self, body):
        assert status_of(lambda: parse_body("application/octet-stream", body))[0] == 400

    @settings(max_examples=500, deadline=None)
    @given(content_type=st.one_of(st.none(), st.text(max_size=60),
                                  st.sampled_from(["application/json", "application/octet-stream"])),
           body=st.one_of(st.binary(max_size=5000), st.text(max_size=300).map(str.encode),
                          st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                                       lambda c: st.lists(c, max_size=3) | st.dictionaries(
                                           st.sampled_from(["code", "state", "x"]), c, max_size=3),
                                       max_leaves=8).map(lambda v: json.dumps(v).encode())))
    def test_any_body_is_accepted_or_refused_with_a_4xx(self, content_type, body):
        try:
            request = parse_body(content_type, body)
        except ClientError as exc:
            assert 400 <= exc.status < 500
            assert exc.message and exc.code
        else:
            assert request.code
