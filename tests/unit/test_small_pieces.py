"""Pure helpers: CRC32C, Retry-After, scopes, configuration, log masking, warm-up choice."""

import datetime as dt
import email.utils
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offline_access.code_exchange import missing_scopes
from offline_access.config import Config, ConfigError
from offline_access.google_endpoints import GoogleEndpoints
from offline_access.secret_source import crc32c
from offline_access.structured_log import emit, mask_credentials, trace_field, user_ref
from offline_access.token_endpoint import (
    RETRY_AFTER_MAX_SECONDS,
    RETRY_AFTER_MIN_SECONDS,
    parse_retry_after,
)


def test_crc32c_known_answer():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


class TestRetryAfter:
    @pytest.mark.parametrize("value,expected", [
        ("5", 5.0), ("0", RETRY_AFTER_MIN_SECONDS), ("86400", RETRY_AFTER_MAX_SECONDS),
        (None, None), ("", None), ("abc", None), ("-5", None), ("1.5", None),
    ])
    def test_values(self, value, expected):
        assert parse_retry_after(value) == expected

    def test_http_date(self):
        now = 1_800_000_000.0
        header = email.utils.formatdate(now + 30, usegmt=True)
        assert parse_retry_after(header, now=now) == 30.0
        assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) is None

    @given(st.text(max_size=40))
    def test_never_crashes_and_stays_clamped(self, value):
        result = parse_retry_after(value)
        assert result is None or RETRY_AFTER_MIN_SECONDS <= result <= RETRY_AFTER_MAX_SECONDS


def test_missing_scopes_understands_googles_long_names():
    configured = ("openid", "email", "profile", "https://www.googleapis.com/auth/drive.appdata")
    granted = ("openid", "https://www.googleapis.com/auth/userinfo.email",
               "https://www.googleapis.com/auth/userinfo.profile")
    assert missing_scopes(configured, granted) == ["https://www.googleapis.com/auth/drive.appdata"]
    assert missing_scopes(configured, granted + configured[3:]) == []


class TestConfig:
    BASE = {
        "GOOGLE_CLOUD_PROJECT": "p", "OAUTH_CLIENT_ID": "c",
        "OAUTH_CLIENT_SECRET_VERSION": "projects/p/secrets/s/versions/3",
        "TOKEN_SEALING_KEY_VERSION": "projects/p/secrets/k/versions/latest",
        "ALLOWED_ORIGINS": "https://a.example, http://localhost:8080",
    }

    def test_defaults(self):
        config = Config.from_env(self.BASE)
        assert config.redirect_uri == "postmessage"
        assert config.allowed_origins == ("https://a.example", "http://localhost:8080")
        assert "openid" in config.scopes and config.users_collection == "users"

    @pytest.mark.parametrize("name", ["GOOGLE_CLOUD_PROJECT", "OAUTH_CLIENT_ID",
                                      "OAUTH_CLIENT_SECRET_VERSION", "TOKEN_SEALING_KEY_VERSION"])
    def test_missing_required_setting_names_the_variable(self, name):
        env = dict(self.BASE)
        del env[name]
        with pytest.raises(ConfigError, match=name):
            Config.from_env(env)

    @pytest.mark.parametrize("name,value", [
        ("OAUTH_CLIENT_SECRET_VERSION", "projects/p/secrets/s"),
        ("ALLOWED_ORIGINS", "https://a.example/"),
        ("ALLOWED_ORIGINS", "*"),
        ("JOB_CONCURRENCY", "many"),
        ("JOB_CONCURRENCY", "0"),
    ])
    def test_malformed_settings_are_refused(self, name, value):
        with pytest.raises(ConfigError, match=name):
            Config.from_env({**self.BASE, name: value})


def test_endpoints_switch_by_environment_only():
    assert GoogleEndpoints.from_env({}).token == "https://oauth2.googleapis.com/token"
    local = GoogleEndpoints.from_env({"GOOGLE_EMULATOR_HOST": "127.0.0.1:8090"})
    assert local.token == "http://127.0.0.1:8090/token"
    assert local.certs_pem == "http://127.0.0.1:8090/oauth2/v1/certs"
    assert local.drive == "http://127.0.0.1:8090/drive/v3"


class TestLogs:
    @pytest.mark.parametrize("secret", [
        "ya29.a0AfH6SMBx-canary", "1//0gLw-canary_token", "4/0AeanS0b-canary",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
    ])
    def test_credential_shapes_are_masked(self, secret):
        assert secret not in mask_credentials(f"before {secret} after")

    def test_emit_writes_one_json_line_with_trace(self, capsys):
        emit("INFO", "hello", outcome="ok", **trace_field("proj", "abc123/1;o=1"))
        line = capsys.readouterr().out
        assert line.count("\n") == 1
        entry = json.loads(line)
        assert entry["severity"] == "INFO" and entry["message"] == "hello"
        assert entry["logging.googleapis.com/trace"] == "projects/proj/traces/abc123"

    def test_bad_trace_header_is_ignored(self):
        assert trace_field("p", "not a trace!/x") == {}

    def test_user_ref_is_stable_and_not_the_sub(self):
        assert user_ref("1234") == user_ref("1234") != "1234"
        assert len(user_ref("1234")) == 16


def test_now_is_timezone_aware():
    from offline_access.code_exchange import ExchangeDependencies
    now = ExchangeDependencies.__dataclass_fields__["now"].default()
    assert now.tzinfo is dt.timezone.utc


class TestHttpSession:
    def test_ca_bundle_is_read_once_when_no_proxy_is_set(self):
        from offline_access.http_session import make_session
        session = make_session(environ={"REQUESTS_CA_BUNDLE": "/etc/ssl/bundle.pem"})
        assert session.trust_env is False and session.verify == "/etc/ssl/bundle.pem"

    def test_proxies_keep_requests_environment_handling(self):
        from offline_access.http_session import make_session
        session = make_session(environ={"https_proxy": "http://proxy.internal:3128"})
        assert session.trust_env is True and session.verify is True

    def test_pool_fits_the_concurrency(self):
        from offline_access.http_session import make_session
        adapter = make_session(pool_size=48, environ={}).get_adapter("https://oauth2.googleapis.com")
        assert adapter._pool_maxsize == 48


def test_only_the_served_function_registers_a_warm_up(monkeypatch):
    import os

    from offline_access import runtime

    registered = []
    monkeypatch.setattr(os, "register_at_fork", lambda **hooks: registered.append(hooks))
    lazy = runtime.Lazy(lambda: None)

    def warm(deps):
        return None

    assert not runtime.warm_up_in_each_worker("exchange_code", lazy, warm, environ={})
    assert not runtime.warm_up_in_each_worker(
        "exchange_code", lazy, warm, environ={"FUNCTION_TARGET": "run_offline_job"})
    assert registered == []
    assert runtime.warm_up_in_each_worker(
        "exchange_code", lazy, warm, environ={"FUNCTION_TARGET": "exchange_code"})
    assert list(registered[0]) == ["after_in_child"]
