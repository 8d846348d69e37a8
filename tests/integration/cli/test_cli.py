"""The `offline-access` console script, run as installed in the virtualenv, against the emulators.

Users are signed in through the real exchange; the CLI gets the local stack's settings from an
env file, as `make dev` writes one, and its `--json` output is parsed back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.job.conftest import Users
from tests.stack_values import CLIENT_SECRET, LOG_KEY_B64, SESSION_KEY_B64

CLI = Path(sys.executable).parent / "offline-access"
ALICE, BOB = "100000000000000000001", "100000000000000000002"


@pytest.fixture
def users(google, function_env, opener) -> Users:
    return Users(google, function_env, opener)


@pytest.fixture
def env_file(function_env, tmp_path) -> Path:
    path = tmp_path / "cli.env"
    path.write_text("# written like make dev's .dev-data/cli.env\n"
                    + "".join(f"{k}={v}\n" for k, v in function_env.items()))
    return path


@pytest.fixture
def cli(env_file):
    def run(*args: str, expect: int = 0, stdin: str = "") -> subprocess.CompletedProcess:
        # Only the env file configures it: none of the stack's variables are inherited.
        env = {k: v for k, v in os.environ.items()
               if not k.endswith("_EMULATOR_HOST") and k != "GOOGLE_CLOUD_PROJECT"}
        result = subprocess.run([str(CLI), "--env-file", str(env_file), *args], input=stdin,
                                capture_output=True, text=True, env=env, timeout=120, check=False)
        assert result.returncode == expect, (result.returncode, result.stdout, result.stderr)
        for secret in (CLIENT_SECRET, LOG_KEY_B64, SESSION_KEY_B64):
            assert secret not in result.stdout + result.stderr
        assert "ya29." not in result.stdout + result.stderr and "1//" not in result.stdout
        return result
    return run


def test_the_script_is_installed_in_the_virtualenv():
    assert CLI.exists()
    assert "users" in subprocess.run([str(CLI), "--help"], capture_output=True, text=True,
                                     check=True).stdout


def test_users_list_as_json_and_as_a_table(cli, users):
    users.sign_in("alice@example.com")
    users.sign_in("bob@example.org")
    users.update(BOB, {"status": "needs_reauth", "reauth_reason": "revoked"})

    listed = json.loads(cli("users", "list", "--json").stdout)

    assert [u["sub"] for u in listed] == [ALICE, BOB]
    assert set(listed[0]) == {"sub", "email", "status", "reauth_reason", "connected_at",
                              "last_run_at", "last_outcome", "next_run_at"}
    table = cli("users", "list").stdout
    assert table.splitlines()[0].split() == ["SUB", "EMAIL", "STATUS", "REASON", "CONNECTED",
                                             "LAST", "RUN", "OUTCOME", "NEXT", "RUN"]
    assert "alice@example.com" in table and "2 user(s)." in table


def test_users_list_filters_by_status_and_reason(cli, users):
    users.sign_in("alice@example.com")
    users.sign_in("bob@example.org")
    users.update(BOB, {"status": "needs_reauth", "reauth_reason": "testing_mode_expiry"})

    assert [u["sub"] for u in json.loads(cli("users", "list", "--status", "needs_reauth",
                                             "--json").stdout)] == [BOB]
    assert json.loads(cli("users", "list", "--status", "needs_reauth", "--reason", "revoked",
                          "--json").stdout) == []
    assert "No users (active revoked)" in cli("users", "list", "--status", "active", "--reason",
                                              "revoked").stdout
    cli("users", "list", "--status", "nonsense", expect=2)


def test_users_show_never_prints_a_token(cli, users):
    users.sign_in("alice@example.com")
    refresh_token, access_token = users.open(ALICE, "refresh_token"), users.open(ALICE, "access_token")

    by_sub = json.loads(cli("users", "show", ALICE, "--json").stdout)
    by_email = json.loads(cli("users", "show", "alice@example.com", "--json").stdout)
    text = cli("users", "show", ALICE).stdout

    assert by_sub == by_email
    assert by_sub["status"] == "active" and by_sub["has_refresh_token"] is True
    assert "refresh_token" not in by_sub and "access_token" not in by_sub
    everything = json.dumps(by_sub) + text
    for secret in (refresh_token, access_token, "ciphertext", "nonce"):
        assert secret not in everything
    assert "refresh token   stored (sealed)" in text


def test_users_show_an_unknown_user_fails_with_a_sentence(cli):
    result = cli("users", "show", "nobody@example.com", expect=1)
    assert "No user nobody@example.com" in result.stderr


def test_users_disconnect_revokes_and_deletes(cli, users, google):
    users.sign_in("alice@example.com")
    users.sign_in("bob@example.org")

    [result] = json.loads(cli("users", "disconnect", ALICE, "--yes", "--json").stdout)

    assert result == {"sub": ALICE, "outcome": "deleted", "revoked": "revoked",
                      "records_deleted": 1, "error": None}
    assert users.store.get(ALICE) is None and users.store.get(BOB) is not None
    assert not [g for g in google.state()["grants"] if g["sub"] == ALICE]
    again = cli("users", "disconnect", ALICE, "--yes").stdout
    assert "already disconnected" in again


def test_users_disconnect_asks_first_and_changes_nothing_without_yes(cli, users):
    users.sign_in("alice@example.com")
    result = cli("users", "disconnect", ALICE, expect=2)
    assert "nothing was changed" in result.stderr
    assert users.store.get(ALICE)["status"] == "active"


def test_users_disconnect_all_before_a_tear_down(cli, users, google):
    users.sign_in("alice@example.com")
    users.sign_in("bob@example.org")

    results = json.loads(cli("users", "disconnect", "--all", "--yes", "--json").stdout)

    assert sorted(r["sub"] for r in results) == [ALICE, BOB]
    assert all(r["outcome"] == "deleted" for r in results)
    assert json.loads(cli("users", "list", "--json").stdout) == []
    assert google.state()["grants"] == []


def test_users_disconnect_with_google_down_leaves_it_pending(cli, users, google):
    users.sign_in("alice@example.com")
    google.fault("/revoke", status=503, times=-1)

    [result] = json.loads(cli("users", "disconnect", ALICE, "--yes", "--json", expect=1).stdout)

    assert result["outcome"] == "deferred" and result["error"] == "google_unavailable"
    shown = json.loads(cli("users", "show", ALICE, "--json").stdout)
    assert shown["status"] == "disconnecting"
    assert shown["disconnect"]["requested_by"] == "operator"
    assert shown["disconnect"]["last_error"] == "google_unavailable"
    google.clear_faults()
    summary = json.loads(cli("job", "run", "--json").stdout)
    assert summary["disconnected"] == 1 and users.store.get(ALICE) is None


def test_job_run_processes_due_users_then_explains_why_nobody(cli, users):
    users.sign_in("alice@example.com")

    first = json.loads(cli("job", "run", "--json").stdout)
    second = cli("job", "run").stdout

    assert (first["users_processed"], first["succeeded"]) == (1, 1)
    assert first["run_id"].startswith("manual-cli-")
    assert "Nobody was processed: no user is due until" in second
    assert "make job ALL=1" in second and "job run --all" in second
    assert json.loads(cli("job", "run", "--json").stdout)["next_due_at"].endswith("Z")


def test_job_run_all_and_one_user(cli, users):
    users.sign_in("alice@example.com")
    users.sign_in("bob@example.org")
    cli("job", "run")

    everyone = json.loads(cli("job", "run", "--all", "--json").stdout)
    one = json.loads(cli("job", "run", "--user", BOB, "--json").stdout)

    assert everyone["succeeded"] == 2
    assert (one["users_processed"], one["succeeded"]) == (1, 1)
    assert "Processed 1 user(s)" in cli("job", "run", "--user", ALICE).stdout
    assert "not processed: deleted" in cli("job", "run", "--user", "199999999999999999999").stdout


def test_job_run_logs_go_to_stderr_and_quiet_silences_them(cli, users):
    users.sign_in("alice@example.com")
    loud = cli("job", "run", "--json")
    assert '"event":"offline_job_user"' in loud.stderr
    json.loads(loud.stdout)  # stdout stays JSON
    quiet = cli("--quiet", "job", "run", "--all", "--json")
    assert quiet.stderr == ""


def test_missing_configuration_is_a_sentence(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_CLOUD_PROJECT",)}
    result = subprocess.run([str(CLI), "--env-file", str(empty), "users", "list"],
                            capture_output=True, text=True, env=env, timeout=60, check=False)
    assert result.returncode == 2
    assert "Set GOOGLE_CLOUD_PROJECT" in result.stderr and "Traceback" not in result.stderr
    bad = tmp_path / "bad.env"
    bad.write_text("this is not a setting\n")
    result = subprocess.run([str(CLI), "--env-file", str(bad), "users", "list"],
                            capture_output=True, text=True, env=env, timeout=60, check=False)
    assert result.returncode == 2 and "bad.env:1 is not a KEY=VALUE line" in result.stderr


@pytest.fixture
def keys_cli(function_env, secret_manager, project, tmp_path):
    """The CLI against secrets of its own: rotating keys must not touch the other tests'."""
    from tests.conftest import seed_secrets

    env = {**function_env, **seed_secrets(secret_manager, project, suffix="-cli-keys")}
    path = tmp_path / "keys.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))

    def run(*args: str) -> subprocess.CompletedProcess:
        clean = {k: v for k, v in os.environ.items()
                 if not k.endswith("_EMULATOR_HOST") and k != "GOOGLE_CLOUD_PROJECT"}
        return subprocess.run([str(CLI), "--env-file", str(path), "keys", *args],
                              capture_output=True, text=True, env=clean, timeout=120, check=False)
    return run


def test_keys_status_rotate_and_a_refused_retirement(keys_cli):
    status = keys_cli("status")
    assert status.returncode == 0, status.stderr
    assert "primary" in status.stdout and status.stdout.splitlines()[1].split()[0] == "1"
    rotated = keys_cli("rotate")
    assert rotated.returncode == 0 and "Added key 2" in rotated.stdout
    after = keys_cli("status").stdout
    primary = [line for line in after.splitlines() if "primary" in line]
    assert len(primary) == 1 and primary[0].split()[0] == "2"
    # The primary may never be retired; key 1 not yet, while instances may still seal with it.
    for key in ("2", "1"):
        refused = keys_cli("retire", key)
        assert refused.returncode == 2 and "disabled" not in refused.stdout, refused
        assert refused.stderr.startswith("retire: ")
    private = keys_cli("rotate").stdout
    assert "BEGIN" not in private and "private_key" not in private
