"""`offline-access risc register | status | verify`, as installed, against the local Google.

The CLI runs as a separate process configured by an env file, as with `make dev`'s `cli.env`:
the local Google's management API under `GOOGLE_EMULATOR_HOST`, the RISC admin service
account's key file (a self-signed JWT), or Application Default Credentials (an access token
through the JWT-bearer grant). `verify` waits for the receiver, which runs in this process and
receives the local Google's push.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = Path(sys.executable).parent / "offline-access"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
OAUTH = "https://schemas.openid.net/secevent/oauth/event-type/"
ALL_EVENTS = [RISC + "sessions-revoked", OAUTH + "tokens-revoked", OAUTH + "token-revoked",
              RISC + "account-disabled", RISC + "account-enabled",
              RISC + "account-credential-change-required", RISC + "verification"]


@pytest.fixture
def admin_key(google, tmp_path) -> Path:
    """A key file of the project's RISC admin (roles/riscconfigs.admin), from the local Google."""
    path = tmp_path / "risc-admin-key.json"
    path.write_text(json.dumps(google.service_account()["key_file"]))
    return path


@pytest.fixture
def cli(risc_env, receiver, admin_key, tmp_path):
    def run(*args: str, expect: int = 0, **settings: str) -> subprocess.CompletedProcess:
        env_file = tmp_path / "cli.env"
        values = {**risc_env, "RISC_RECEIVER_URL": receiver.url,
                  "RISC_SERVICE_ACCOUNT_KEY_FILE": str(admin_key), **settings}
        env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items() if v))
        env = {k: v for k, v in os.environ.items()
               if not k.endswith("_EMULATOR_HOST") and k not in ("GOOGLE_CLOUD_PROJECT",
                                                                  "GOOGLE_APPLICATION_CREDENTIALS")}
        if settings.get("GOOGLE_APPLICATION_CREDENTIALS"):
            env["GOOGLE_APPLICATION_CREDENTIALS"] = settings["GOOGLE_APPLICATION_CREDENTIALS"]
        result = subprocess.run([str(CLI), "--env-file", str(env_file), *args], capture_output=True,
                                text=True, env=env, timeout=120, check=False)
        assert result.returncode == expect, (result.returncode, result.stdout, result.stderr)
        assert "PRIVATE KEY" not in result.stdout + result.stderr
        return result
    return run


def test_register_points_the_stream_at_the_receiver_for_every_event_type(cli, google, receiver):
    assert "No receiver is registered" in cli("risc", "status", expect=1).stdout

    registered = cli("risc", "register")

    assert f"Registered {receiver.url} for 7 event type(s)" in registered.stdout
    stream = google.risc_stream()
    assert stream["delivery"]["url"] == receiver.url
    assert stream["events_requested"] == ALL_EVENTS and stream["status"] == "enabled"
    status = json.loads(cli("risc", "status", "--json").stdout)
    assert status["status"] == "enabled"
    assert status["configuration"]["delivery"]["url"] == receiver.url
    assert "status     enabled" in cli("risc", "status").stdout


def test_verify_waits_until_the_receiver_has_logged_the_state(cli, capsys):
    cli("risc", "register")
    capsys.readouterr()

    verified = cli("risc", "verify", "--state", "cli-check-1")

    assert "The receiver logged state 'cli-check-1'" in verified.stdout
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(line["event_type"], line["state"]) for line in lines if line.get("event") == "risc_event"] \
        == [("verification", "cli-check-1")]


def test_verify_fails_with_a_sentence_when_nothing_arrives(cli, google, receiver):
    cli("risc", "register")
    google.set_risc_stream(receiver.url, status="disabled")

    failed = cli("risc", "verify", "--timeout", "1.5", expect=1)

    assert "did not log state" in failed.stderr and "risc status" in failed.stderr


def test_an_access_token_from_application_default_credentials_works_too(cli, admin_key, google, receiver):
    # No key file named: google-auth's default credentials (the same key, through the
    # JWT-bearer grant at the local Google's /token) with the endpoint's scope.
    cli("risc", "register", RISC_SERVICE_ACCOUNT_KEY_FILE="",
        GOOGLE_APPLICATION_CREDENTIALS=str(admin_key))

    assert google.risc_stream()["delivery"]["url"] == receiver.url


def test_an_account_without_the_role_is_refused_with_googles_sentence(cli, google, tmp_path):
    key = tmp_path / "viewer.json"
    key.write_text(json.dumps(google.service_account(
        "viewer@test-client-id.iam.gserviceaccount.com", roles=[])["key_file"]))

    refused = cli("risc", "register", "--key-file", str(key), expect=3)

    assert "Service account needs permission to access your RISC configuration" in refused.stderr
    assert google.risc_stream() is None


def test_register_without_a_url_says_where_to_find_it(cli):
    refused = cli("risc", "register", RISC_RECEIVER_URL="", expect=2)
    assert "RISC_RECEIVER_URL" in refused.stderr
