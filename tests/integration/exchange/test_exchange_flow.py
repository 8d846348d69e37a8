"""`exchange_code` end to end against the local Google, the local Secret Manager and Firestore."""

from __future__ import annotations

import concurrent.futures
import json
import time

import grpc
import pytest

from localdev.processes import free_port
from tests.stack_values import CLIENT_ID, DRIVE_APPDATA

ALICE = "100000000000000000001"  # the local Google's consumer test account
BOB = "100000000000000000002"  # its Workspace account (hd example.org)
ALL_SCOPES = ["openid", "email", "profile", DRIVE_APPDATA]


def mint(google, email="alice@example.com", granted=None, **kw) -> str:
    return google.mint_code(client_id=CLIENT_ID, email=email, scopes=ALL_SCOPES,
                            granted_scopes=granted or ALL_SCOPES, **kw)["code"]


def token_calls(google) -> int:
    return google.counters()["requests"].get("POST /token", 0)


def live_refresh_tokens(google) -> int:
    return sum(1 for token in google.state()["refresh_tokens"] if token["live"])


def revocations(google) -> int:
    return google.counters()["requests"].get("POST /revoke", 0)


def test_happy_path_signs_in_and_stores_a_sealed_refresh_token(exchange, google):
    answer = exchange.sign_in(mint(google), state="state-1")

    assert answer.status == 200, answer.text
    assert answer.headers["Access-Control-Allow-Origin"] == "http://localhost:8080"
    assert answer.body["status"] == "signed_in"
    assert answer.body["offline_access"] is True
    assert answer.body["missing_scopes"] == []
    assert answer.body["user"]["sub"] == ALICE
    assert answer.body["user"]["email"] == "alice@example.com"
    assert answer.body["user"]["email_verified"] is True
    assert DRIVE_APPDATA in answer.body["granted_scopes"]
    assert not any(key in answer.body for key in ("access_token", "refresh_token", "id_token"))

    doc = exchange.user_doc(ALICE)
    assert doc["status"] == "active"
    assert doc["email"] == "alice@example.com" and doc["hd"] is None
    assert set(doc["refresh_token"]) == {"v", "key_id", "ct"} and doc["refresh_token"]["v"] == 2
    assert isinstance(doc["refresh_token"]["ct"], bytes)
    assert doc["created_at"] == doc["signed_in_at"] and doc["next_run_at"] is not None
    assert doc["refresh_token_issued_at"] == doc["signed_in_at"]
    assert doc["refresh_token_expires_at"] is None  # no time-based access
    assert DRIVE_APPDATA in doc["granted_scopes"]


def test_stored_tokens_are_sealed_and_bound_to_the_user(exchange, google, opener):
    assert exchange.sign_in(mint(google)).status == 200
    doc = exchange.user_doc(ALICE)
    refresh_token = opener.open(doc["refresh_token"], sub=ALICE, field="refresh_token")
    access_token = opener.open(doc["access_token"], sub=ALICE, field="access_token")
    assert refresh_token.startswith("1//") and access_token.startswith("ya29.")
    stored = repr(doc).encode()
    for token in (refresh_token, access_token):
        assert token.encode() not in stored
    from offline_access.errors import SealError
    with pytest.raises(SealError):
        opener.open(doc["refresh_token"], sub=BOB, field="refresh_token")


def test_the_exchange_cannot_open_what_it_stored(exchange, google, secret_manager, function_env):
    # Review fault 4: code running in the public function finds no key that opens a token.
    from offline_access.errors import Misconfigured

    assert exchange.sign_in(mint(google)).status == 200
    doc = exchange.user_doc(ALICE)
    for field in ("refresh_token", "access_token"):
        with pytest.raises(Misconfigured):
            exchange.deps.sealer.open(doc[field], sub=ALICE, field=field)
    private_keys = function_env["TOKEN_SEALING_PRIVATE_KEYS_SECRET"]
    assert secret_manager.accesses(f"{private_keys}/versions/1") == 0


def test_time_based_access_is_stored_with_the_refresh_token(exchange, google):
    # Review fault 9: `refresh_token_expires_in` was parsed and dropped.
    answer = exchange.sign_in(mint(google, refresh_token_lifetime_seconds=3600))
    assert answer.status == 200
    doc = exchange.user_doc(ALICE)
    lifetime = doc["refresh_token_expires_at"] - doc["refresh_token_issued_at"]
    assert lifetime.total_seconds() == pytest.approx(3600, abs=1)


def test_a_sign_in_without_a_new_refresh_token_keeps_its_issue_time(exchange, google):
    # Review fault 9: Google's 7-day and 6-month clocks run from the refresh token's issue.
    assert exchange.sign_in(mint(google)).status == 200
    issued = exchange.user_doc(ALICE)["refresh_token_issued_at"]
    assert exchange.sign_in(mint(google)).status == 200  # no consent screen: no refresh token
    doc = exchange.user_doc(ALICE)
    assert doc["signed_in_at"] > issued and doc["refresh_token_issued_at"] == issued


def test_a_replayed_code_is_rejected_and_changes_nothing(exchange, google):
    code = mint(google)
    assert exchange.sign_in(code).status == 200
    before = exchange.all_docs()

    answer = exchange.sign_in(code)

    assert answer.status == 400
    assert answer.body["error"] == "code_rejected"
    assert "sign in again" in answer.body["message"].lower()
    assert exchange.all_docs() == before


def test_the_same_code_sent_in_parallel_signs_in_once(exchange, google):
    code = mint(google)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = sorted(a.status for a in pool.map(lambda _: exchange.sign_in(code), range(8)))
    assert statuses == [200] + [400] * 7
    assert list(exchange.all_docs()) == [ALICE]


def test_a_second_sign_in_without_refresh_token_keeps_the_first(exchange, google):
    assert exchange.sign_in(mint(google)).status == 200
    first = exchange.user_doc(ALICE)["refresh_token"]

    answer = exchange.sign_in(mint(google))  # not the first consent: Google sends no refresh token

    assert answer.status == 200 and answer.body["offline_access"] is True
    doc = exchange.user_doc(ALICE)
    assert doc["refresh_token"] == first
    assert doc["status"] == "active"
    assert doc["signed_in_at"] > doc["created_at"]


def test_a_new_consent_replaces_the_refresh_token_and_keeps_the_rest(exchange, google):
    assert exchange.sign_in(mint(google)).status == 200
    first = exchange.user_doc(ALICE)
    claim = {"job.claim_id": "claim-1", "job.failure_count": 3, "status": "needs_reauth",
             "reauth_reason": "invalid_grant"}
    exchange.deps.store.ref(ALICE).update(claim)

    answer = exchange.sign_in(mint(google, prompt="consent"))  # consent again: a new refresh token

    assert answer.status == 200 and answer.body["offline_access"] is True
    doc = exchange.user_doc(ALICE)
    assert doc["refresh_token"] != first["refresh_token"]
    assert doc["created_at"] == first["created_at"] and doc["signed_in_at"] > first["signed_in_at"]
    assert doc["refresh_token_issued_at"] == doc["signed_in_at"]
    assert doc["status"] == "active" and doc["reauth_reason"] is None
    assert doc["job"] == {"claim_id": "claim-1", "failure_count": 0}  # a running claim is kept


def test_first_sign_ins_of_one_user_in_parallel_leave_one_consistent_document(make_exchange, google,
                                                                              opener):
    instances = [make_exchange() for _ in range(4)]  # four instances, as under a burst of traffic
    codes = [mint(google, prompt="consent") for _ in instances]
    with concurrent.futures.ThreadPoolExecutor(len(instances)) as pool:
        answers = list(pool.map(lambda instance, code: instance.sign_in(code), instances, codes))

    assert [a.status for a in answers] == [200] * 4
    assert all(a.body["offline_access"] for a in answers)
    doc = instances[0].user_doc(ALICE)
    assert list(instances[0].all_docs()) == [ALICE]
    assert opener.open(doc["refresh_token"], sub=ALICE, field="refresh_token").startswith("1//")
    assert doc["status"] == "active" and doc["job"] == {"failure_count": 0}


def test_a_document_deleted_between_create_and_update_is_created_again(exchange, google):
    assert exchange.sign_in(mint(google)).status == 200
    store = exchange.deps.store
    real_ref = store.ref

    class DeletedAfterCreateFails:
        """The user's document, deleted by someone else right after our create found it there."""

        def __init__(self, ref):
            self._ref = ref

        def create(self, *args, **kwargs):
            try:
                return self._ref.create(*args, **kwargs)
            except Exception:
                self._ref.delete()
                store.ref = real_ref  # once
                raise

        def __getattr__(self, name):
            return getattr(self._ref, name)

    store.ref = lambda sub: DeletedAfterCreateFails(real_ref(sub))

    answer = exchange.sign_in(mint(google, prompt="consent"))

    assert answer.status == 200 and answer.body["offline_access"] is True
    doc = exchange.user_doc(ALICE)
    assert doc["status"] == "active" and doc["created_at"] == doc["signed_in_at"]


def test_a_user_who_never_got_a_refresh_token_lacks_offline_access(exchange, google):
    answer = exchange.sign_in(mint(google, offline=False))
    assert answer.status == 200 and answer.body["offline_access"] is False
    doc = exchange.user_doc(ALICE)
    assert doc["status"] == "no_offline_access" and "refresh_token" not in doc


def test_a_partial_grant_is_stored_and_reported(exchange, google):
    answer = exchange.sign_in(mint(google, granted=["openid", "email", "profile"]))
    assert answer.status == 200
    assert answer.body["missing_scopes"] == [DRIVE_APPDATA]
    assert DRIVE_APPDATA not in exchange.user_doc(ALICE)["granted_scopes"]


def test_the_page_origin_works_as_redirect_uri(make_exchange, google):
    exchange = make_exchange(OAUTH_REDIRECT_URI="http://localhost:8080")
    code = mint(google, redirect_uri="http://localhost:8080")
    assert exchange.sign_in(code).status == 200


def test_client_sent_oauth_parameters_are_ignored(exchange, google):
    body = json.dumps({"code": mint(google), "redirect_uri": "https://evil.example",
                       "client_id": "someone-else", "sub": BOB})
    answer = exchange.request(body=body, headers={
        "X-Requested-With": "XMLHttpRequest", "Content-Type": "application/json",
        "Origin": "http://localhost:8080"})
    assert answer.status == 200 and answer.body["user"]["sub"] == ALICE
    assert exchange.user_doc(BOB) is None


def test_the_old_samples_raw_body_works(exchange, google):
    answer = exchange.request(body=mint(google), headers={
        "X-Requested-With": "XMLHttpRequest",
        "Content-Type": "application/octet-stream; charset=utf-8",
        "Origin": "http://localhost:8080"})
    assert answer.status == 200, answer.text


@pytest.mark.parametrize("mode", ["expired", "wrong_aud", "wrong_iss", "unknown_key", "alg_none",
                                  "hs256", "no_sub"])
def test_bad_id_tokens_are_rejected_and_the_grant_revoked(exchange, google, mode):
    code = mint(google)
    google.id_token_mode(mode)

    answer = exchange.sign_in(code)

    assert answer.status == 502 and answer.body["error"] == "upstream_invalid"
    assert exchange.all_docs() == {}
    assert revocations(google) == 1
    assert live_refresh_tokens(google) == 0


def test_the_bare_issuer_is_accepted(exchange, google):
    code = mint(google)
    google.id_token_mode("bare_iss")
    assert exchange.sign_in(code).status == 200


def test_hosted_domain_allowlist(make_exchange, google):
    exchange = make_exchange(ALLOWED_HOSTED_DOMAINS="example.org")
    refused = exchange.sign_in(mint(google, email="alice@example.com"))
    assert refused.status == 403 and refused.body["error"] == "domain_not_allowed"
    assert exchange.all_docs() == {} and revocations(google) == 1
    allowed = exchange.sign_in(mint(google, email="bob@example.org"))
    assert allowed.status == 200 and allowed.body["user"]["hd"] == "example.org"


class TestDependenciesDown:
    def test_secret_manager_down_is_503_before_the_code_is_spent(self, exchange, google,
                                                                  secret_manager):
        secret_manager.fail_next(grpc.StatusCode.UNAVAILABLE, times=-1)
        code = mint(google)
        answer = exchange.sign_in(code)
        assert answer.status == 503 and answer.body["error"] == "service_unavailable"
        assert int(answer.headers["Retry-After"]) > 0
        assert token_calls(google) == 0 and exchange.all_docs() == {}
        secret_manager.clear_faults()
        assert exchange.sign_in(code).status == 200  # the code was not spent

    def test_a_corrupted_secret_payload_is_refused(self, exchange, google, secret_manager):
        secret_manager.fail_next(grpc.StatusCode.OK, corrupt_crc=True)
        answer = exchange.sign_in(mint(google))
        assert answer.status == 503 and token_calls(google) == 0

    @pytest.mark.parametrize("status", [500, 503, 429])
    def test_token_endpoint_errors_are_503_with_retry_after(self, exchange, google, status):
        google.fault(path="/token", status=status, headers={"Retry-After": "7"})
        answer = exchange.sign_in(mint(google))
        assert answer.status == 503 and answer.headers["Retry-After"] == "7"
        assert token_calls(google) == 1  # never retried: the code may be spent
        assert exchange.all_docs() == {}

    def test_a_token_endpoint_timeout_is_503_and_not_retried(self, make_exchange, google):
        exchange = make_exchange(HTTP_TIMEOUT_SECONDS="1")
        google.fault(path="/token", timeout=True, hang_seconds=3)
        answer = exchange.sign_in(mint(google))
        assert answer.status == 503 and token_calls(google) == 1
        assert exchange.all_docs() == {}

    @pytest.mark.parametrize("body", ["<html>Oops</html>", {"token_type": "Bearer"},
                                      {"access_token": "ya29.x", "expires_in": 3599}])
    def test_an_unusable_token_response_is_502(self, exchange, google, body):
        google.fault(path="/token", status=200, body=body)
        answer = exchange.sign_in(mint(google))
        assert answer.status == 502 and exchange.all_docs() == {}

    def test_certificates_down_signs_in_on_the_checked_claims(self, exchange, google, capsys):
        # The ID token came straight from the token endpoint over TLS: its signature may be
        # skipped when the certificates cannot be had; its claims never are.
        google.fault(path="/oauth2/v1/certs", status=503, times=-1)
        answer = exchange.sign_in(mint(google))
        assert answer.status == 200 and exchange.user_doc(ALICE)["status"] == "active"
        assert revocations(google) == 0
        [line] = [json.loads(entry) for entry in capsys.readouterr().out.splitlines()
                  if '"event":"exchange_code"' in entry]
        assert line["severity"] == "WARNING"
        assert line["id_token_signature"] == "skipped_certificates_unavailable"

    @pytest.mark.parametrize("mode", ["expired", "wrong_aud", "wrong_iss", "no_sub"])
    def test_certificates_down_still_checks_the_claims(self, exchange, google, mode):
        google.fault(path="/oauth2/v1/certs", status=503, times=-1)
        code = mint(google)
        google.id_token_mode(mode)
        answer = exchange.sign_in(code)
        assert answer.status == 502 and answer.body["error"] == "upstream_invalid"
        assert exchange.all_docs() == {} and revocations(google) == 1

    def test_firestore_down_is_503_and_the_grant_kept(self, make_exchange, google, monkeypatch):
        # Review fault 1: not final, so nothing is revoked; the page retries.
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
        exchange = make_exchange()
        answer = exchange.sign_in(mint(google))
        assert answer.status == 503 and answer.body["error"] == "service_unavailable"
        assert int(answer.headers["Retry-After"]) > 0
        assert revocations(google) == 0
        assert live_refresh_tokens(google) == 1


class TestMisconfiguration:
    def test_a_wrong_client_secret_is_500_with_a_fix_in_the_log(self, make_exchange, google,
                                                                 secret_manager, project, capsys):
        secret_manager.add_version(f"projects/{project}/secrets/wrong-secret", b"not-the-secret")
        exchange = make_exchange(
            OAUTH_CLIENT_SECRET_VERSION=f"projects/{project}/secrets/wrong-secret/versions/1")
        answer = exchange.sign_in(mint(google))
        assert answer.status == 500 and answer.body["error"] == "server_misconfigured"
        log = capsys.readouterr().out
        assert '"severity":"ERROR"' in log and "OAUTH_CLIENT_ID" in log

    def test_a_redirect_uri_mismatch_is_500(self, make_exchange, google):
        exchange = make_exchange(OAUTH_REDIRECT_URI="https://elsewhere.example")
        answer = exchange.sign_in(mint(google))
        assert answer.status == 500 and answer.body["error"] == "server_misconfigured"

    def test_a_missing_secret_is_500(self, make_exchange, google, project):
        exchange = make_exchange(
            OAUTH_CLIENT_SECRET_VERSION=f"projects/{project}/secrets/nope/versions/1")
        answer = exchange.sign_in(mint(google))
        assert answer.status == 500 and token_calls(google) == 0


class TestCaching:
    def test_secret_read_once_and_certificates_once_per_max_age(self, exchange, google,
                                                                secret_manager):
        for i in range(5):
            assert exchange.sign_in(mint(google, email=f"user{i}@example.com")).status == 200
        # The client secret, the public sealing key, the session key and the log key, once each.
        assert secret_manager.accesses() == 4
        assert google.counters()["requests"].get("GET /oauth2/v1/certs", 0) == 1

    def test_certificates_refetched_once_when_google_rotates_keys(self, exchange, google):
        assert exchange.sign_in(mint(google)).status == 200
        google.rotate_keys()
        time.sleep(1.1)
        assert exchange.sign_in(mint(google, email="x@example.com")).status == 200
        assert google.counters()["requests"].get("GET /oauth2/v1/certs", 0) == 2

    def test_a_key_rotated_within_a_second_of_a_fetch_is_not_refused(self, exchange, google):
        # Review fault 2: the refetch after an unknown kid waited a second and answered 502.
        assert exchange.sign_in(mint(google)).status == 200
        google.rotate_keys()
        answer = exchange.sign_in(mint(google, email="x@example.com"))
        assert answer.status == 200, answer.text
        assert revocations(google) == 0
        assert google.counters()["requests"].get("GET /oauth2/v1/certs", 0) == 2

    def test_a_failed_refetch_does_not_hold_back_the_next(self, exchange, google, capsys):
        # Review fault 2: after a certificate outage, a key rotation gave 502 and a revocation.
        assert exchange.sign_in(mint(google)).status == 200
        google.rotate_keys()
        google.fault(path="/oauth2/v1/certs", status=503)
        during = exchange.sign_in(mint(google, email="x@example.com"))
        after = exchange.sign_in(mint(google, email="y@example.com"))
        assert (during.status, after.status) == (200, 200)
        assert revocations(google) == 0
        assert google.counters()["requests"].get("GET /oauth2/v1/certs", 0) == 3
        lines = [json.loads(entry) for entry in capsys.readouterr().out.splitlines()
                 if '"event":"exchange_code"' in entry]
        # Only the sign-in during the outage skipped the signature.
        assert ["id_token_signature" in line for line in lines] == [False, True, False]
