"""Each security event type, from the local Google's push to the stored state, over real HTTP.

Users sign in through the real exchange and account API (a browser's `__session` cookie
included); the local Google signs each event as Google does and pushes it to the receiver,
redelivering until a 2xx; the tests then read Firestore, the account API's answer, the job's
behaviour and the receiver's log lines.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from offline_access import wiring
from offline_access.errors import OfflineAccessError
from offline_access.offline.run import run_offline_job, run_one_user
from offline_access.store.firestore_errors import firestore_unavailable
from offline_access.store.security_events import COLLECTION
from tests.integration.job.conftest import FAST_RETRIES

ALICE, BOB = "100000000000000000001", "100000000000000000002"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"


def push(google, name: str, **kw) -> dict:
    """One event pushed and acknowledged (the local Google waits for the 2xx)."""
    sent = google.risc_event(name, **kw)
    delivery = google.risc_wait(sent["jti"])
    assert delivery["acked"], delivery
    assert delivery["answers"][-1] == 202
    return sent


def doc(site, sub: str) -> dict | None:
    return site.account.store.get(sub)


def records(site) -> list[dict]:
    return [d.to_dict() for d in site.account.store.client.collection(COLLECTION).stream()]


def event_lines(capsys) -> list[dict]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "risc_event"]


def job(env: dict[str, str]):
    return dataclasses.replace(wiring.build_job_dependencies(env), call_retries=FAST_RETRIES)


def run_id() -> str:
    return f"risc-test-{uuid.uuid4().hex[:8]}"


def test_sessions_revoked_ends_every_session_of_the_user(site, google, stream, capsys):
    laptop, phone, bob = site.browser(), site.browser(), site.browser()
    laptop.sign_in(google)
    phone.sign_in(google)
    bob.sign_in(google, "bob@example.org")
    generation = doc(site, ALICE)["session_generation"]

    sent = push(google, "sessions-revoked", sub=ALICE)

    assert laptop.me().status == 401 and phone.me().status == 401
    assert bob.me().status == 200  # only the subject's sessions end
    stored = doc(site, ALICE)
    assert stored["session_generation"] == generation + 1
    assert stored["status"] == "active" and stored["refresh_token"]  # the grant is not touched
    [entry] = stored["security_events"]
    assert (entry["type"], entry["action"]) == ("sessions-revoked", "sessions_ended")
    [line] = event_lines(capsys)
    assert line["event_type"] == "sessions-revoked" and line["outcome"] == "sessions_ended"
    assert line["severity"] == "NOTICE" and line["jti"] == sent["jti"] and line["status"] == 202
    assert line["user"] == site.account.user_refs.ref(ALICE) and ALICE not in json.dumps(line)
    assert [r["action"] for r in records(site)] == ["sessions_ended"]


def test_tokens_revoked_deletes_the_tokens_and_asks_for_a_new_consent(site, google, stream, risc_env):
    browser = site.browser()
    browser.sign_in(google)
    assert doc(site, ALICE)["refresh_token_ids"]

    push(google, "tokens-revoked", sub=ALICE)

    stored = doc(site, ALICE)
    assert (stored["status"], stored["reauth_reason"]) == ("needs_reauth", "revoked_at_google")
    for field in ("refresh_token", "access_token", "access_token_expires_at", "refresh_token_ids"):
        assert field not in stored, field
    account = browser.me().body["account"]  # the session stays: the page says what happened
    assert account["status"] == "needs_reauth" and "Google told the app" in account["reauth_message"]
    assert run_one_user(job(risc_env), ALICE, run_id()).skipped == 1
    # Reconnecting stores a new grant, and its identifiers.
    browser.sign_in(google)
    assert doc(site, ALICE)["status"] == "active" and doc(site, ALICE)["refresh_token_ids"]


@pytest.mark.parametrize("alg", ["prefix", "hash_base64_sha512_sha512"])
def test_token_revoked_finds_the_user_by_the_tokens_identifier(site, google, stream, capsys, alg):
    site.browser().sign_in(google)
    site.browser().sign_in(google, "bob@example.org")
    capsys.readouterr()

    sent = push(google, "token-revoked", sub=ALICE, token_identifier_alg=alg)

    assert sent["claims"]["events"]["https://schemas.openid.net/secevent/oauth/event-type/token-revoked"][
        "subject"]["token_identifier_alg"] == alg
    alice = doc(site, ALICE)
    assert (alice["status"], alice["reauth_reason"]) == ("needs_reauth", "revoked_at_google")
    assert "refresh_token" not in alice and "refresh_token_ids" not in alice
    assert alice["security_events"][-1]["action"] == "token_deleted"
    assert doc(site, BOB)["status"] == "active" and "security_events" not in doc(site, BOB)
    [line] = event_lines(capsys)
    assert (line["outcome"], line["user"]) == ("token_deleted", site.account.user_refs.ref(ALICE))


def test_a_token_revoked_event_about_an_older_token_changes_nothing(site, google, stream, capsys):
    browser = site.browser()
    browser.sign_in(google)
    older = [t["token"] for t in google.state()["refresh_tokens"] if t["sub"] == ALICE][-1]
    browser.sign_in(google, prompt="consent")  # a new refresh token replaces the stored one
    capsys.readouterr()

    push(google, "token-revoked", refresh_token=older, token_identifier_alg="hash_base64_sha512_sha512",
         revoke=False)

    assert doc(site, ALICE)["status"] == "active" and doc(site, ALICE)["refresh_token"]
    [line] = event_lines(capsys)
    assert line["outcome"] == "unknown_subject" and "user" not in line


def test_a_hijacked_account_is_revoked_and_disconnected_and_signed_out(site, google, stream, capsys,
                                                                        disconnect_server):
    browser = site.browser()
    browser.sign_in(google)
    assert [g for g in google.state()["grants"] if g["sub"] == ALICE]

    push(google, "account-disabled", sub=ALICE, reason="hijacking")

    assert doc(site, ALICE) is None  # every record deleted
    assert [g for g in google.state()["grants"] if g["sub"] == ALICE] == []  # revoked at Google
    assert google.counters()["requests"].get("POST /revoke") == 1
    assert browser.me().status == 401
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [event] = [line for line in lines if line.get("event") == "risc_event"]
    assert (event["outcome"], event["disconnect"], event["lifecycle"]) == (
        "disconnect_requested", "deleted", "disconnect_requested")
    [audit] = [line for line in lines if line.get("event") == "account_disconnected"]
    assert audit["requested_by"] == "security_event" and audit["revoked"] == "revoked"
    assert len(disconnect_server.authorizations) == 1  # called with an ID token, as the account API


def test_a_hijacked_account_is_disconnected_by_the_job_when_the_call_fails(site, google, stream,
                                                                           disconnect_server, risc_env):
    site.browser().sign_in(google)
    disconnect_server.stop()  # disconnect_user is unreachable

    push(google, "account-disabled", sub=ALICE, reason="hijacking")

    stored = doc(site, ALICE)
    assert stored["status"] == "disconnecting"
    assert stored["disconnect"]["requested_by"] == "security_event"
    assert run_offline_job(job(risc_env), run_id()).disconnected == 1
    assert doc(site, ALICE) is None
    assert [g for g in google.state()["grants"] if g["sub"] == ALICE] == []


@pytest.mark.parametrize("reason", ["bulk-account", None])
def test_a_disabled_account_is_suspended_until_google_enables_it(site, google, stream, risc_env, reason):
    browser = site.browser()
    browser.sign_in(google)
    site.browser().sign_in(google, "bob@example.org")
    generation = doc(site, ALICE)["session_generation"]

    push(google, "account-disabled", sub=ALICE, **({"reason": reason} if reason else {}))

    stored = doc(site, ALICE)
    assert stored["status"] == "suspended" and stored["refresh_token"]  # the grant is kept
    assert stored["suspension"]["google_reason"] == reason
    assert stored["session_generation"] == generation  # the page can still say why
    me = browser.me().body
    assert me["offline_access"] is False
    assert me["account"]["security_notice"]["kind"] == "account_disabled"
    assert me["account"]["security_notice"]["title"] == "Google disabled your Google Account"
    # The job does not process a suspended user, due or not.
    summary = run_offline_job(job(risc_env), run_id(), everyone=True)
    assert summary.processed == 1 and summary.succeeded == 1  # Bob only
    assert run_one_user(job(risc_env), ALICE, run_id()).skipped == 1
    assert "job" not in doc(site, ALICE) or not doc(site, ALICE)["job"].get("last_run_at")

    push(google, "account-enabled", sub=ALICE)

    stored = doc(site, ALICE)
    assert stored["status"] == "active" and "suspension" not in stored
    assert browser.me().body["account"]["security_notice"] is None
    assert run_one_user(job(risc_env), ALICE, run_id()).succeeded == 1
    assert [e["action"] for e in doc(site, ALICE)["security_events"]] == ["suspended", "restored"]


def test_account_enabled_for_a_user_who_is_not_suspended_changes_nothing(site, google, stream):
    site.browser().sign_in(google)
    before = doc(site, ALICE)

    push(google, "account-enabled", sub=ALICE)

    after = doc(site, ALICE)
    assert after["status"] == "active" and after["session_generation"] == before["session_generation"]
    assert after["security_events"][-1] | {"received_at": None, "issued_at": None} == {
        "type": "account-enabled", "action": "no_change", "why": "not_suspended",
        "received_at": None, "issued_at": None}


def test_a_credential_change_is_asked_for_on_the_page_until_the_next_sign_in(site, google, stream,
                                                                             risc_env):
    browser = site.browser()
    browser.sign_in(google)

    push(google, "account-credential-change-required", sub=ALICE)

    notice = browser.me().body["account"]["security_notice"]
    assert notice["kind"] == "credential_change_required"
    assert notice["title"] == "Google asks you to change your password"
    assert notice["help_url"] == "https://myaccount.google.com/security"
    assert doc(site, ALICE)["status"] == "active"  # the grant still works: the job goes on
    assert run_one_user(job(risc_env), ALICE, run_id()).succeeded == 1
    browser.sign_in(google)
    assert browser.me().body["account"]["security_notice"] is None


def test_verification_logs_its_state(site, google, stream, capsys):
    google.risc_settings()  # the stream requests every type, verification included
    sent = google.risc_event("verification", state="check-me-42")
    assert google.risc_wait(sent["jti"])["acked"]

    [line] = event_lines(capsys)
    assert (line["event_type"], line["outcome"], line["state"]) == ("verification", "state_logged",
                                                                   "check-me-42")
    [record] = records(site)
    assert record["verification_state"] == "check-me-42" and record["user"] is None


def test_an_unknown_subject_is_acknowledged_and_nothing_else(site, google, stream, capsys):
    # Bob granted the app at Google, but never reached the product (or was disconnected).
    google.mint_code(["openid", "email"], sub=BOB)

    push(google, "sessions-revoked", sub=BOB)
    push(google, "account-disabled", sub=BOB, reason="hijacking")

    assert doc(site, BOB) is None and records(site) == []
    assert [line["outcome"] for line in event_lines(capsys)] == ["unknown_subject"] * 2


def test_a_redelivered_jti_acts_once(site, google, stream, capsys):
    browser = site.browser()
    browser.sign_in(google)
    generation = doc(site, ALICE)["session_generation"]
    sent = push(google, "sessions-revoked", sub=ALICE)
    browser.sign_in(google)  # a new session after the event

    again = google.risc_resend(sent["jti"])
    delivery = google.risc_wait(again["id"])

    assert delivery["acked"] and delivery["token"] == sent["token"]
    stored = doc(site, ALICE)
    assert stored["session_generation"] == generation + 1  # bumped once
    assert len(stored["security_events"]) == 1 and len(records(site)) == 1
    assert browser.me().status == 200  # the session begun since is not ended by the copy
    assert [line["outcome"] for line in event_lines(capsys)] == ["sessions_ended", "duplicate"]


def test_a_refused_answer_is_redelivered_and_then_acts_once(site, google, stream, receiver, monkeypatch):
    site.browser().sign_in(google)
    generation = doc(site, ALICE)["session_generation"]
    events = receiver.deps.events
    original = events.commit
    calls = {"n": 0}

    def flaky(*args, **kwargs):  # the first write's answer is lost after it was applied
        calls["n"] += 1
        result = original(*args, **kwargs)
        if calls["n"] == 1:
            raise firestore_unavailable()
        return result

    monkeypatch.setattr(events, "commit", flaky)
    sent = google.risc_event("sessions-revoked", sub=ALICE)
    delivery = google.risc_wait(sent["jti"])

    assert delivery["answers"] == [503, 202]
    assert doc(site, ALICE)["session_generation"] == generation + 1
    assert len(doc(site, ALICE)["security_events"]) == 1


def test_an_event_type_the_receiver_does_not_know_is_acknowledged(site, google, stream, capsys):
    site.browser().sign_in(google)
    sent = google.risc_raw(claims={
        "iss": "https://accounts.google.com/", "aud": google.clients()[0]["client_id"],
        "iat": 1_790_000_000, "jti": uuid.uuid4().hex,
        "events": {RISC + "some-future-event": {"subject": {"subject_type": "iss-sub",
                                                            "iss": "https://accounts.google.com/",
                                                            "sub": ALICE}}}})
    assert google.risc_wait(sent["delivery"]["id"])["answers"] == [202]
    [line] = event_lines(capsys)
    assert (line["outcome"], line["why"]) == ("ignored", "unsupported_type")
    assert "security_events" not in doc(site, ALICE)


def test_the_receiver_holds_no_key_that_opens_a_token(site, google, receiver):
    site.browser().sign_in(google)
    sealed = doc(site, ALICE)["refresh_token"]

    with pytest.raises(OfflineAccessError):
        receiver.deps.sealer.open(sealed, sub=ALICE, field="refresh_token")
    assert receiver.deps.config.sealing_private_keys_secret is None


def test_users_show_lists_the_security_events_a_user_received(site, google, stream, risc_env, tmp_path):
    site.browser().sign_in(google)
    push(google, "account-credential-change-required", sub=ALICE)
    push(google, "sessions-revoked", sub=ALICE)
    env_file = tmp_path / "cli.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in risc_env.items()))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}

    def show(*args: str) -> str:
        return subprocess.run([str(Path(sys.executable).parent / "offline-access"), "--env-file",
                               str(env_file), "users", "show", ALICE, *args], capture_output=True,
                              text=True, env=env, timeout=60, check=True).stdout

    shown = json.loads(show("--json"))
    assert [(e["type"], e["action"]) for e in shown["security_events"]] == [
        ("account-credential-change-required", "notice_set"), ("sessions-revoked", "sessions_ended")]
    assert shown["security_notice"]["kind"] == "credential_change_required"
    text = show()
    assert "security events 2" in text and "sessions-revoked: sessions_ended" in text
    assert "flagged         Google asks you to change your password" in text
