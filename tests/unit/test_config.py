"""Settings from the environment: defaults, required variables, malformed values."""

import pytest

from offline_access.config import Config
from offline_access.errors import ConfigError


class TestConfig:
    BASE = {
        "GOOGLE_CLOUD_PROJECT": "p", "OAUTH_CLIENT_ID": "c",
        "OAUTH_CLIENT_SECRET_VERSION": "projects/p/secrets/s/versions/3",
        "TOKEN_SEALING_PUBLIC_KEY_VERSION": "projects/p/secrets/k/versions/latest",
        "LOG_USER_REF_KEY_VERSION": "projects/p/secrets/l/versions/2",
        "ALLOWED_ORIGINS": "https://a.example, http://localhost:8080",
    }

    def test_defaults(self):
        config = Config.from_env(self.BASE)
        assert config.redirect_uri == "postmessage"
        assert config.allowed_origins == ("https://a.example", "http://localhost:8080")
        assert "openid" in config.scopes and config.users_collection == "users"
        # Nothing that opens tokens unless it is given: a public function's configuration.
        assert config.sealing_private_keys_secret is None and config.legacy_sealing_key_version is None
        assert config.request_body_timeout_seconds == 10

    def test_the_keys_that_open_tokens_are_optional_settings(self):
        config = Config.from_env({**self.BASE,
                                  "TOKEN_SEALING_PRIVATE_KEYS_SECRET": "projects/p/secrets/priv",
                                  "TOKEN_SEALING_KEY_VERSION": "projects/p/secrets/aes/versions/1"})
        assert config.sealing_private_keys_secret == "projects/p/secrets/priv"
        assert config.legacy_sealing_key_version == "projects/p/secrets/aes/versions/1"

    @pytest.mark.parametrize("name", ["GOOGLE_CLOUD_PROJECT", "OAUTH_CLIENT_ID",
                                      "OAUTH_CLIENT_SECRET_VERSION", "TOKEN_SEALING_PUBLIC_KEY_VERSION",
                                      "LOG_USER_REF_KEY_VERSION"])
    def test_missing_required_setting_names_the_variable(self, name):
        env = dict(self.BASE)
        del env[name]
        with pytest.raises(ConfigError) as caught:
            Config.from_env(env)
        assert name in caught.value.fix

    @pytest.mark.parametrize("name,value", [
        ("OAUTH_CLIENT_SECRET_VERSION", "projects/p/secrets/s"),
        ("TOKEN_SEALING_PRIVATE_KEYS_SECRET", "projects/p/secrets/priv/versions/1"),
        ("TOKEN_SEALING_KEY_VERSION", "projects/p/secrets/aes"),
        ("ALLOWED_ORIGINS", "https://a.example/"),
        ("ALLOWED_ORIGINS", "*"),
        ("JOB_CONCURRENCY", "many"),
        ("JOB_CONCURRENCY", "0"),
    ])
    def test_malformed_settings_are_refused(self, name, value):
        with pytest.raises(ConfigError) as caught:
            Config.from_env({**self.BASE, name: value})
        assert name in caught.value.fix


class TestFanOutConfig:
    BASE = TestConfig.BASE

    def test_inline_by_default(self):
        config = Config.from_env(self.BASE)
        assert (config.job_mode, config.job_work_topic) == ("inline", None)
        assert (config.job_message_users, config.job_max_delivery_attempts) == (50, 10)

    def test_pubsub_needs_a_topic_and_takes_an_id_or_a_full_name(self):
        with pytest.raises(ConfigError) as caught:
            Config.from_env({**self.BASE, "JOB_MODE": "pubsub"})
        assert "JOB_WORK_TOPIC" in caught.value.fix
        by_id = Config.from_env({**self.BASE, "JOB_MODE": "PubSub", "JOB_WORK_TOPIC": "work"})
        assert (by_id.job_mode, by_id.job_work_topic) == ("pubsub", "projects/p/topics/work")
        full = Config.from_env({**self.BASE, "JOB_MODE": "pubsub",
                                "JOB_WORK_TOPIC": "projects/other/topics/work"})
        assert full.job_work_topic == "projects/other/topics/work"

    @pytest.mark.parametrize("name,value", [
        ("JOB_MODE", "cloud-tasks"),
        ("JOB_WORK_TOPIC", "projects/p/subscriptions/s"),
        ("JOB_WORK_TOPIC", "a b"),
        ("JOB_MESSAGE_USERS", "501"),  # one BatchWrite per message: at most 500 writes
        ("JOB_MAX_DELIVERY_ATTEMPTS", "4"),  # Pub/Sub's dead-letter policy: 5 to 100
        ("JOB_MAX_DELIVERY_ATTEMPTS", "101"),
    ])
    def test_malformed_fan_out_settings_are_refused(self, name, value):
        with pytest.raises(ConfigError) as caught:
            Config.from_env({**self.BASE, name: value})
        assert name in caught.value.fix


class TestCrossAccountProtectionSettings:
    BASE = TestConfig.BASE

    def test_off_unless_set(self):
        config = Config.from_env(self.BASE)
        assert config.refresh_token_id_key_version is None
        assert config.risc_audiences == ("c",)

    def test_the_key_and_the_projects_other_clients(self):
        config = Config.from_env({**self.BASE,
                                  "REFRESH_TOKEN_ID_KEY_VERSION": "projects/p/secrets/ids/versions/1",
                                  "RISC_CLIENT_IDS": "ios.apps.googleusercontent.com, c"})
        assert config.refresh_token_id_key_version == "projects/p/secrets/ids/versions/1"
        assert config.risc_audiences == ("c", "ios.apps.googleusercontent.com")

    def test_a_malformed_key_version_names_the_variable(self):
        with pytest.raises(ConfigError) as raised:
            Config.from_env({**self.BASE, "REFRESH_TOKEN_ID_KEY_VERSION": "ids-key"})
        assert "REFRESH_TOKEN_ID_KEY_VERSION" in raised.value.fix
def test_token_api_and_event_settings():
    from offline_access.config import DEFAULT_EVENT_TYPE_PREFIX

    base = {"GOOGLE_CLOUD_PROJECT": "p", "OAUTH_CLIENT_ID": "c",
            "OAUTH_CLIENT_SECRET_VERSION": "projects/p/secrets/s/versions/1",
            "TOKEN_SEALING_PUBLIC_KEY_VERSION": "projects/p/secrets/k/versions/1",
            "LOG_USER_REF_KEY_VERSION": "projects/p/secrets/l/versions/1"}
    config = Config.from_env(base)
    assert config.events_topic is None and config.event_type_prefix == DEFAULT_EVENT_TYPE_PREFIX
    assert config.token_api_audiences == () and config.token_api_allowed_callers == ()
    config = Config.from_env({**base, "EVENTS_TOPIC": "projects/p/topics/events",
                              "EVENT_TYPE_PREFIX": "com.example.app",
                              "TOKEN_API_AUDIENCES": "https://a.run.app, https://b.example",
                              "TOKEN_API_ALLOWED_CALLERS": "App@p.iam.gserviceaccount.com"})
    assert config.events_topic == "projects/p/topics/events"
    assert config.event_type_prefix == "com.example.app"
    assert config.token_api_audiences == ("https://a.run.app", "https://b.example")
    assert config.token_api_allowed_callers == ("app@p.iam.gserviceaccount.com",)
    # A topic id is taken as one of this project, as for JOB_WORK_TOPIC.
    assert Config.from_env({**base, "EVENTS_TOPIC": "events"}).events_topic == "projects/p/topics/events"
    for name, bad in (("EVENTS_TOPIC", "events topic"), ("EVENT_TYPE_PREFIX", "Not DNS"),
                      ("TOKEN_API_AUDIENCES", "ftp://x"), ("TOKEN_API_ALLOWED_CALLERS", "nobody")):
        with pytest.raises(ConfigError) as caught:
            Config.from_env({**base, name: bad})
        assert name in caught.value.fix
