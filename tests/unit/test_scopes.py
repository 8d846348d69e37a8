"""Scope spelling: short and long names compare equal."""

from offline_access.scopes import identity_only, missing_scopes


def test_missing_scopes_understands_googles_long_names():
    configured = ("openid", "email", "profile", "https://www.googleapis.com/auth/drive.appdata")
    granted = ("openid", "https://www.googleapis.com/auth/userinfo.email",
               "https://www.googleapis.com/auth/userinfo.profile")
    assert missing_scopes(configured, granted) == ["https://www.googleapis.com/auth/drive.appdata"]
    assert missing_scopes(configured, granted + configured[3:]) == []


def test_identity_only_understands_both_spellings():
    assert identity_only(["openid", "email", "https://www.googleapis.com/auth/userinfo.profile"])
    assert not identity_only(["openid", "https://www.googleapis.com/auth/drive.appdata"])
    assert identity_only([])
