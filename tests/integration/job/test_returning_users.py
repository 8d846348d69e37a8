"""A user who signed in before keeps a working grant through every sign-in that fails for a
reason that is not final (review fault 1), and loses it only on a final rejection.

Each test signs Alice in once (her refresh token is stored), then signs her in again with a
new consent, so that Google issues a second refresh token for the same grant, and makes that
second sign-in fail. Revoking the second token would end the whole grant, the stored token
included; the local Google's counters show whether the job can still refresh with it.
"""

from __future__ import annotations

import json

import pytest
from google.api_core import exceptions as api_exceptions

from localdev.processes import free_port
from offline_access import wiring
from offline_access.errors import DomainNotAllowed, IdTokenRejected, Unavailable
from offline_access.signin import exchange as code_exchange
from offline_access.signin.request_guard import SignInRequest
from tests.integration.job.conftest import ALL_SCOPES, refreshes
from tests.stack_values import CLIENT_ID


def consent_again(google, email: str = "alice@example.com") -> SignInRequest:
    code = google.mint_code(client_id=CLIENT_ID, email=email, scopes=ALL_SCOPES,
                            prompt="consent")["code"]
    return SignInRequest(code=code)


def revocations(google) -> int:
    return google.counters()["requests"].get("POST /revoke", 0)


def live_refresh_tokens(google, sub: str) -> int:
    return sum(1 for t in google.state()["refresh_tokens"] if t["sub"] == sub and t["live"])


@pytest.fixture
def alice(users):
    sub = users.sign_in("alice@example.com")
    users.expire_cached_access_tokens(sub)
    return sub


def assert_the_stored_grant_still_works(users, job, google, sub, stored_token):
    assert revocations(google) == 0
    assert job.run().succeeded == 1
    assert refreshes(google) == {sub: 1}  # the job refreshed with the token it holds
    doc = users.doc(sub)
    assert doc["status"] == "active" and users.open(sub, "refresh_token") == stored_token


def test_firestore_unavailable_after_the_exchange_revokes_nothing(
        users, alice, job, google, function_env, monkeypatch):
    stored = users.open(alice, "refresh_token")
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    unreachable = wiring.build_exchange_dependencies(function_env)
    monkeypatch.undo()

    with pytest.raises(Unavailable) as failed:
        code_exchange.complete_sign_in(consent_again(google), unreachable)

    assert failed.value.status == 503 and failed.value.revoked is False
    assert live_refresh_tokens(google, alice) == 2  # the new token lives too, held by nobody
    assert_the_stored_grant_still_works(users, job, google, alice, stored)


def test_a_write_whose_answer_was_lost_revokes_nothing(users, alice, job, google, opener):
    """The update reached Firestore, but its answer did not: the new token is stored."""
    stored_before = users.open(alice, "refresh_token")
    exchange = users.exchange
    real_ref = exchange.store.ref

    class AppliedThenTimedOut:
        def __init__(self, ref):
            self._ref = ref

        def update(self, *args, **kwargs):
            self._ref.update(*args, **kwargs)
            raise api_exceptions.DeadlineExceeded("the commit's answer was lost")

        def __getattr__(self, name):
            return getattr(self._ref, name)

    exchange.store.ref = lambda sub: AppliedThenTimedOut(real_ref(sub))
    with pytest.raises(Unavailable):
        code_exchange.complete_sign_in(consent_again(google), exchange)
    exchange.store.ref = real_ref

    new_token = users.open(alice, "refresh_token")  # the write did happen
    assert new_token != stored_before
    users.expire_cached_access_tokens(alice)
    assert_the_stored_grant_still_works(users, job, google, alice, new_token)


def test_certificates_unavailable_sign_in_on_the_claims_and_revoke_nothing(
        users, alice, job, google, function_env):
    google.fault(path="/oauth2/v1/certs", status=503, times=-1)
    cold = wiring.build_exchange_dependencies(function_env)  # a new instance: no certificates yet

    result = code_exchange.complete_sign_in(consent_again(google), cold)

    assert result.signature_checked is False and result.body["offline_access"] is True
    google.clear_faults()
    new_token = users.open(alice, "refresh_token")
    users.expire_cached_access_tokens(alice)
    assert_the_stored_grant_still_works(users, job, google, alice, new_token)


def test_a_final_rejection_ends_the_grant_and_the_job_reports_it(users, alice, job, google):
    """Documented: an ID token whose claims are wrong cannot be trusted, so the tokens issued
    with it are revoked, and with them the whole grant (Google's rule); the job then finds the
    stored token dead and marks the user `needs_reauth (revoked)` until they sign in again."""
    request = consent_again(google)
    google.id_token_mode("wrong_aud")
    with pytest.raises(IdTokenRejected) as rejected:
        code_exchange.complete_sign_in(request, users.exchange)
    google.id_token_mode("normal")

    assert rejected.value.revoked is True and revocations(google) == 1
    assert live_refresh_tokens(google, alice) == 0
    assert job.run().needs_reauth == 1
    doc = users.doc(alice)
    assert (doc["status"], doc["reauth_reason"]) == ("needs_reauth", "revoked")


def test_a_domain_no_longer_allowed_ends_the_grant_at_sign_in_and_in_the_job(
        users, make_job, google, function_env):
    """Documented: a Workspace domain taken off ALLOWED_HOSTED_DOMAINS is a final rejection at
    sign-in (the grant is revoked) and, in the job, a disconnection (revoked, then deleted)."""
    bob = users.sign_in("bob@example.org")
    carol = users.sign_in("carol@example.net")
    narrowed = {**function_env, "ALLOWED_HOSTED_DOMAINS": "example.com"}
    exchange = wiring.build_exchange_dependencies(narrowed)

    with pytest.raises(DomainNotAllowed) as refused:
        code_exchange.complete_sign_in(consent_again(google, "bob@example.org"), exchange)
    assert refused.value.revoked is True and live_refresh_tokens(google, bob) == 0

    job = make_job({"ALLOWED_HOSTED_DOMAINS": "example.com"})
    summary = job.run()

    assert summary.disconnected == 2 and summary.body()["disconnected"] == 2
    assert users.doc(bob) is None and users.doc(carol) is None
    assert live_refresh_tokens(google, carol) == 0  # the job revoked Carol's grant
    lines = {line["user"]: line for line in job.user_lines()}
    assert {line["outcome"] for line in lines.values()} == {"disconnected"}
    assert lines[users.exchange.user_refs.ref(carol)]["grant_revoked"] is True
    assert lines[users.exchange.user_refs.ref(bob)]["grant_revoked"] is False  # already dead
    assert all(line["hd_not_allowed"] and line["severity"] == "WARNING" for line in lines.values())
    assert "example.org" not in json.dumps(job.log_lines())
