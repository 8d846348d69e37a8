"""The task registry: built-in tasks, resolution by name, registration."""

from __future__ import annotations

import pytest

from offline_access.errors import Misconfigured
from offline_access.offline import tasks as user_tasks

DRIVE = "https://www.googleapis.com/auth/drive.appdata"


class TestRegistry:
    def test_built_in_tasks_and_their_scopes(self):
        tasks = user_tasks.registered()
        assert tasks["drive_appdata"].scopes == (DRIVE,)
        assert tasks["userinfo"].scopes == ("openid",)

    def test_resolve_keeps_order_and_drops_repeats(self):
        names = [t.name for t in user_tasks.resolve(["userinfo", "drive_appdata", "userinfo"])]
        assert names == ["userinfo", "drive_appdata"]

    def test_unknown_name_is_a_configuration_error_naming_the_known_tasks(self):
        with pytest.raises(Misconfigured) as caught:
            user_tasks.resolve(["drive_appdata", "calendar"])
        assert "calendar" in caught.value.fix and "drive_appdata, userinfo" in caught.value.fix

    def test_register_a_task_and_refuse_a_second_one_with_the_same_name(self, monkeypatch):
        monkeypatch.setattr(user_tasks, "_REGISTRY", dict(user_tasks._REGISTRY))

        @user_tasks.offline_task("example_count", scopes=("email",))
        def example(api, user):
            return user_tasks.TaskResult(summary={"n": 1})

        task = user_tasks.resolve(["example_count"])[0]
        assert task.run is example
        # Google reports `email` under its long name: that counts as granted.
        assert task.missing_scopes(["https://www.googleapis.com/auth/userinfo.email"]) == []
        assert task.missing_scopes(["openid"]) == ["email"]
        with pytest.raises(ValueError):
            user_tasks.offline_task("example_count", scopes=())(example)
