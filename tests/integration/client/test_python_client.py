"""The Python client (`client/`, package `offline_access_client`) against a real `token_api`
process: google-auth credentials for a user, used unchanged by `AuthorizedSession` and by
`googleapiclient` to call the local Google's Drive API; the error answers as `RefreshError`s."""

from __future__ import annotations

import json

import pytest
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import AuthorizedSession, Request
from googleapiclient.discovery import build

import offline_access_client
from localdev.processes import FunctionServer, free_port
from offline_access_client import (
    CallerRejected,
    NeedsReauth,
    ScopeNotGranted,
    TokenApiClient,
    TokenApiUnavailable,
    UserNotFound,
)
from tests.integration.accounts.conftest import Site
from tests.integration.tokenapi.conftest import APP_SA, OTHER_SA, refresh_calls
from tests.stack_values import DRIVE_APPDATA


@pytest.fixture
def token_api(function_env, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = FunctionServer("token_api", {**function_env, "TOKEN_API_AUDIENCES": url,
                                          "TOKEN_API_ALLOWED_CALLERS": APP_SA},
                            port=port, output=open(tmp_path / "token_api.log", "w"))
    yield server
    server.stop()


def key_file(google_server, tmp_path, email: str) -> str:
    path = tmp_path / f"{email.split('@')[0]}.json"
    path.write_text(json.dumps(google_server.service_account_key(email, "demo-test")))
    return str(path)


@pytest.fixture
def app_identity(google_server, tmp_path, monkeypatch):
    """This test process is the app's backend: its service account's key file, as on a laptop."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", key_file(google_server, tmp_path, APP_SA))


@pytest.fixture
def client(token_api, app_identity) -> TokenApiClient:
    return TokenApiClient(token_api.url)


@pytest.fixture
def users(google, function_env, opener):
    from tests.integration.job.conftest import Users
    return Users(google, function_env, opener)


def test_authorized_session_calls_drive_as_the_user(client, users, google):
    alice = users.sign_in("alice@example.com")
    google.drive_files(alice, [{"name": "settings.json"}])
    users.expire_cached_access_tokens(alice)

    drive = AuthorizedSession(client.credentials_for(alice, scopes=[DRIVE_APPDATA]))
    answer = drive.get(f"{google.base_url}/drive/v3/files", params={"spaces": "appDataFolder"})

    assert answer.status_code == 200
    assert [f["name"] for f in answer.json()["files"]] == ["settings.json"]
    credentials = drive.credentials
    assert credentials.valid and credentials.token == users.open(alice, "access_token")
    assert DRIVE_APPDATA in credentials.granted_scopes and refresh_calls(google) == 1
    assert "ya29" not in repr(credentials)


def test_googleapiclient_builds_drive_with_the_credentials(client, users, google):
    alice = users.sign_in("alice@example.com")
    google.drive_files(alice, [{"name": "a.json"}, {"name": "b.json"}])

    drive = build("drive", "v3", credentials=client.credentials_for(alice),
                  static_discovery=True, client_options={"api_endpoint": google.base_url + "/drive/v3/"})
    listed = drive.files().list(spaces="appDataFolder", fields="files(id,name)").execute()

    assert sorted(f["name"] for f in listed["files"]) == ["a.json", "b.json"]


def test_the_module_level_credentials_for_reads_the_url_from_the_environment(
        token_api, app_identity, users, google, monkeypatch):
    monkeypatch.setenv("OFFLINE_ACCESS_TOKEN_API_URL", token_api.url)
    monkeypatch.setattr(offline_access_client.client, "_default", None)
    alice = users.sign_in("alice@example.com")

    credentials = offline_access_client.credentials_for(alice)
    credentials.refresh(Request())

    assert credentials.token == users.open(alice, "access_token")


def test_error_answers_are_refresh_errors_with_retryable_set(client, users, google):
    alice = users.sign_in("alice@example.com")
    carol = users.sign_in("carol@example.net", granted=["openid", "email", "profile"])
    cases = []
    for sub, scopes in (("100000000000000000999", None), (carol, [DRIVE_APPDATA])):
        with pytest.raises(RefreshError) as caught:
            client.credentials_for(sub, scopes).refresh(Request())
        cases.append(caught.value)
    unknown, scope = cases
    assert isinstance(unknown, UserNotFound) and not unknown.retryable and unknown.status == 404
    assert isinstance(scope, ScopeNotGranted) and scope.missing_scopes == [DRIVE_APPDATA]

    users.expire_cached_access_tokens(alice)
    google.fault("/token", status=503, times=-1, match={"grant_type": "refresh_token"})
    with pytest.raises(TokenApiUnavailable) as down:
        client.credentials_for(alice).refresh(Request())
    assert down.value.retryable and down.value.retry_after >= 1

    google.clear_faults()
    google.revoke_grant(alice)
    with pytest.raises(NeedsReauth) as dead:
        client.credentials_for(alice).refresh(Request())
    assert dead.value.reason == "revoked" and not dead.value.retryable


def test_a_service_account_the_api_does_not_admit_gets_caller_rejected(
        token_api, users, google_server, tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", key_file(google_server, tmp_path, OTHER_SA))
    alice = users.sign_in("alice@example.com")

    with pytest.raises(CallerRejected) as caught:
        TokenApiClient(token_api.url).credentials_for(alice).refresh(Request())

    assert caught.value.status == 403 and caught.value.code == "caller_not_allowed"


def test_user_for_session_tells_the_backend_who_the_browser_is(client, function_env, google):
    site = Site({**function_env, "DISCONNECT_FUNCTION_URL": "http://127.0.0.1:9/"})
    browser = site.browser()
    browser.sign_in(google)

    user = client.user_for_session(browser.cookie)

    assert user is not None and user.sub == "100000000000000000001"
    assert user.status == "active" and user.email == "alice@example.com"
    assert client.user_for_session(browser.cookie[:-4] + "AAAA") is None
    assert client.user_for_session("") is None
    browser.request("POST", "/api/sign-out-everywhere")
    assert client.user_for_session(browser.cookie or "v1.1.x") is None
