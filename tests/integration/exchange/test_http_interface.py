"""The HTTP contract of `exchange_code`: methods, CORS, CSRF, bodies, and no 5xx for bad input."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.stack_values import PAGE_ORIGIN


def io_counts(google, secret_manager) -> tuple[int, int]:
    return secret_manager.accesses(), sum(google.counters()["requests"].values())


def assert_json_error(answer, status: int, error: str):
    assert answer.status == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.body["error"] == error
    assert isinstance(answer.body["message"], str) and answer.body["message"].endswith(".")
    assert "Traceback" not in answer.text


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_other_methods_are_405(exchange, method):
    answer = exchange.request(method, headers={"X-Requested-With": "XMLHttpRequest"})
    assert_json_error(answer, 405, "method_not_allowed")
    assert answer.headers["Allow"] == "POST, OPTIONS"


def test_preflight_from_the_page(exchange):
    answer = exchange.request("OPTIONS", headers={
        "Origin": PAGE_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-requested-with"})
    assert answer.status == 204
    assert answer.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
    assert answer.headers["Vary"] == "Origin"
    assert "X-Requested-With" in answer.headers["Access-Control-Allow-Headers"]


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://localhost:8080.evil.com",
                                    "https://localhost:8080", "http://localhost:8081"])
def test_preflight_from_elsewhere_gets_no_cors_grant(exchange, origin):
    answer = exchange.request("OPTIONS", headers={"Origin": origin,
                                                  "Access-Control-Request-Method": "POST"})
    assert answer.status == 403
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_csrf_refusals_happen_before_any_io(exchange, google, secret_manager):
    before = io_counts(google, secret_manager)
    body = json.dumps({"code": "4/0Acanary-code-value"})
    no_header = exchange.request(body=body, headers={"Content-Type": "application/json",
                                                     "Origin": PAGE_ORIGIN})
    assert_json_error(no_header, 403, "csrf_check_failed")
    foreign = exchange.request(body=body, headers={
        "Content-Type": "application/json", "Origin": "https://evil.example",
        "X-Requested-With": "XMLHttpRequest"})
    assert_json_error(foreign, 403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in foreign.headers
    assert io_counts(google, secret_manager) == before


@pytest.mark.parametrize("content_type,body,status,error", [
    ("text/plain", '{"code":"4/0Aabcdefgh"}', 415, "unsupported_media_type"),
    ("application/x-www-form-urlencoded", "code=4/0Aabcdefgh", 415, "unsupported_media_type"),
    ("application/json", "{", 400, "invalid_request"),
    ("application/json", '{"nocode": 1}', 400, "invalid_request"),
    ("application/json", "x" * 10 * 1024 * 1024, 413, "payload_too_large"),
    ("application/octet-stream", "", 400, "invalid_request"),
])
def test_bad_bodies_get_clear_errors_and_no_io(exchange, google, secret_manager,
                                               content_type, body, status, error):
    before = io_counts(google, secret_manager)
    answer = exchange.request(body=body, headers={
        "Content-Type": content_type, "X-Requested-With": "XMLHttpRequest", "Origin": PAGE_ORIGIN})
    assert_json_error(answer, status, error)
    assert answer.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN  # the page can read it
    assert io_counts(google, secret_manager) == before


def test_an_unknown_code_is_rejected_and_nothing_stored(exchange):
    answer = exchange.sign_in("4/0AeanS0b-a-code-google-never-issued")
    assert_json_error(answer, 400, "code_rejected")
    assert exchange.all_docs() == {}


header_values = st.one_of(st.none(), st.sampled_from(
    ["XMLHttpRequest", "xmlhttprequest", "", "fetch", PAGE_ORIGIN, "null", "https://evil.example",
     "application/json", "application/octet-stream", "text/plain", "0", "99999999", "-1", "abc"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(method=st.sampled_from(["POST", "POST", "POST", "OPTIONS", "GET", "PUT"]),
       requested_with=header_values, origin=header_values, content_type=header_values,
       content_length=header_values,
       body=st.one_of(st.binary(max_size=6000),
                      st.builds(lambda c, s: json.dumps({"code": c, "state": s}).encode(),
                                st.text(max_size=60), st.one_of(st.none(), st.text(max_size=10)))))
def test_no_request_produces_a_5xx(exchange, method, requested_with, origin, content_type,
                                   content_length, body):
    headers = {name: value for name, value in (
        ("X-Requested-With", requested_with), ("Origin", origin),
        ("Content-Type", content_type), ("Content-Length", content_length)) if value is not None}
    answer = exchange.request(method, body=body, headers=headers)
    assert answer.status < 500, (answer.status, answer.text)
    if answer.status >= 400:
        assert answer.body["error"] and answer.body["message"]
