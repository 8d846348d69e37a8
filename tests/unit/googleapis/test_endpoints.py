"""Google endpoints switch by environment only."""

from offline_access.googleapis.endpoints import GoogleEndpoints


def test_endpoints_switch_by_environment_only():
    assert GoogleEndpoints.from_env({}).token == "https://oauth2.googleapis.com/token"
    local = GoogleEndpoints.from_env({"GOOGLE_EMULATOR_HOST": "127.0.0.1:8090"})
    assert local.token == "http://127.0.0.1:8090/token"
    assert local.certs_pem == "http://127.0.0.1:8090/oauth2/v1/certs"
    assert local.drive == "http://127.0.0.1:8090/drive/v3"
