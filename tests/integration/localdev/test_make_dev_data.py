"""What `make dev` keeps between runs, `make job`'s explanations, and `make help`'s sentences.

The pieces `make dev` runs are tested here on free ports (its own ports are fixed, and may be in
use): the Firestore export and import through a second emulator, the kept secrets, the grants
restored at a fresh local Google through the real exchange, and `make job` against a running
`run_offline_job` process and against none.
"""

from __future__ import annotations

import re
import subprocess

import pytest
import requests
from google.cloud import firestore

from localdev import job_now
from localdev.dev_data import DevData, restore_grants
from localdev.processes import REPO, FirestoreEmulator, FunctionServer, free_port
from tests.integration.job.conftest import Users
from tests.stack_values import CLIENT_ID, CLIENT_SECRET, PAGE_HEADERS, PAGE_ORIGIN


def test_firestore_data_survives_an_export_and_a_new_emulator(tmp_path, monkeypatch):
    data = DevData(tmp_path / ".dev-data")
    assert data.latest_export() is None
    first = FirestoreEmulator()
    try:
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", first.host_port)
        firestore.Client(project="demo-keep").collection("users").document("u1").set({"n": 1})
        data.save_firestore(first, "demo-keep")
        firestore.Client(project="demo-keep").collection("users").document("u2").set({"n": 2})
        kept = data.save_firestore(first, "demo-keep")  # the older export is pruned
    finally:
        first.stop()
    assert data.latest_export() == kept
    assert len(list((tmp_path / ".dev-data" / "firestore").iterdir())) == 1

    second = FirestoreEmulator(import_data=kept)
    try:
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", second.host_port)
        docs = {d.id: d.to_dict() for d in
                firestore.Client(project="demo-keep").collection("users").stream()}
    finally:
        second.stop()
    assert docs == {"u1": {"n": 1}, "u2": {"n": 2}}


def test_local_secrets_are_made_once_and_kept(tmp_path):
    data = DevData(tmp_path / "d")
    made = data.secret("session-key", lambda: "first")
    assert made == "first"
    assert DevData(tmp_path / "d").secret("session-key", lambda: "second") == "first"
    assert (tmp_path / "d" / "secrets.json").stat().st_mode & 0o077 == 0


def test_grants_are_restored_at_a_fresh_local_google(function_env, google, google_server, opener):
    users = Users(google, function_env, opener)
    alice = users.sign_in("alice@example.com")
    dana = users.sign_in("dana@example.com")  # an account typed on the consent page
    users.sign_in("bob@example.org")
    users.update(users.exchange.store.ref("100000000000000000002").id,
                 {"status": "needs_reauth", "reauth_reason": "revoked"})
    exchange = FunctionServer("exchange_code", function_env)
    google.reset()  # what a restart of the local Google forgets: every grant and account added
    try:
        stored = [{"sub": d.id, **d.to_dict()} for d in users.store.collection.stream()]
        restored = restore_grants(stored, google, client_id=CLIENT_ID, origin=PAGE_ORIGIN,
                                  exchange_url=exchange.url + "/")
    finally:
        exchange.stop()

    assert restored == 2
    live = {t["sub"] for t in google.state()["refresh_tokens"] if t["live"]}
    assert live == {alice, dana}  # bob needs to reconnect anyway: nothing was given back to him
    assert users.open(alice, "refresh_token") in {t["token"] for t in google.state()["refresh_tokens"]}


class TestMakeJob:
    def test_without_make_dev_it_says_to_start_it(self, capsys):
        status = job_now.main(["--url", f"http://127.0.0.1:{free_port()}/"])
        assert status == 1
        assert "make dev is not running" in capsys.readouterr().err

    @pytest.fixture
    def job_url(self, function_env):
        server = FunctionServer("run_offline_job", function_env)
        yield server.url + "/"
        server.stop()

    def run(self, capsys, job_url, project, firestore_emulator, *extra: str) -> str:
        assert job_now.main(["--url", job_url, "--project", project,
                             "--firestore", firestore_emulator, *extra]) == 0
        return capsys.readouterr().out

    def test_it_explains_why_nobody_was_processed_and_how_to_run_now(
            self, capsys, job_url, function_env, google, project, firestore_emulator, opener):
        Users(google, function_env, opener).sign_in("alice@example.com")

        first = self.run(capsys, job_url, project, firestore_emulator)
        second = self.run(capsys, job_url, project, firestore_emulator)
        forced = self.run(capsys, job_url, project, firestore_emulator, "--all")

        assert "Processed 1 user(s)" in first and "alice@example.com: active, last run" in first
        assert re.search(r"Nobody was processed: no user is due until \d\d:\d\d UTC", second)
        assert "make job ALL=1" in second
        assert "Processed 1 user(s)" in forced

    def test_with_nobody_signed_in(self, capsys, job_url, project, firestore_emulator):
        out = self.run(capsys, job_url, project, firestore_emulator)
        assert "no user has offline access" in out and "Sign in on the page first" in out


def test_make_help_prints_whole_sentences():
    out = subprocess.run(["make", "--no-print-directory", "help"], cwd=REPO, capture_output=True,
                         text=True, check=True, timeout=60).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    targets = {line.split()[0] for line in lines}
    assert {"dev", "dev-reset", "job", "test", "deploy", "install"} <= targets
    for line in lines:
        target, text = line.split(None, 1)
        assert "$(" not in text and "$$" not in text, line
        assert text[0].isupper() and text.rstrip().endswith((".", ".)")), line


def test_the_exchange_of_make_dev_sets_a_session_only_on_its_origin(function_env):
    # make dev's functions only trust the page's origin: another one gets no answer to read.
    server = FunctionServer("account_api", {**function_env, "DISCONNECT_FUNCTION_URL": "http://127.0.0.1:9/"})
    try:
        foreign = requests.post(server.url + "/api/sign-in-attempts", timeout=10,
                                headers={**PAGE_HEADERS, "Origin": "http://localhost:9999"})
        ours = requests.post(server.url + "/api/sign-in-attempts", timeout=10, headers=PAGE_HEADERS)
    finally:
        server.stop()
    assert foreign.status_code == 403 and "Set-Cookie" not in foreign.headers
    assert ours.status_code == 200 and ours.headers["Set-Cookie"].startswith("__session=v1.")
    assert CLIENT_SECRET not in ours.text
