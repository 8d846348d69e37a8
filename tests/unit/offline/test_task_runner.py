"""Each task on its own: skipped without its scope, failed alone, outages and dead grants propagate."""

import pytest

from offline_access.errors import (
    ApiRefused,
    GoogleUnavailable,
    GrantRevoked,
    Misconfigured,
    UpstreamInvalid,
)
from offline_access.offline.task_runner import run_tasks
from offline_access.offline.tasks import OfflineTask, TaskResult
from offline_access.store.job_claims import DueUser

DRIVE = "https://www.googleapis.com/auth/drive.appdata"
USER = DueUser("sub-1", {})


def task(name, behaviour, scopes=("openid",)):
    def run(api, user):
        if isinstance(behaviour, BaseException):
            raise behaviour
        return behaviour
    return OfflineTask(name=name, scopes=tuple(scopes), run=run)


def test_records_per_task_and_the_profile():
    tasks = [
        task("ok", TaskResult(summary={"n": 1}, profile={"name": "A", "token": "x"})),
        task("refused", ApiRefused(403, "forbidden")),
        task("junk", UpstreamInvalid("junk")),
        task("bug", ZeroDivisionError()),
        task("no_scope", TaskResult(), scopes=(DRIVE,)),
    ]
    results, profile = run_tasks(tasks, api=None, user=USER, granted_scopes=("openid",))
    assert results == {
        "ok": {"status": "ok", "n": 1},
        "refused": {"status": "failed", "error": "http_403", "reason": "forbidden"},
        "junk": {"status": "failed", "error": "upstream_invalid"},
        "bug": {"status": "failed", "error": "task_error", "exception_type": "ZeroDivisionError"},
        "no_scope": {"status": "skipped", "reason": "scope_not_granted", "missing_scopes": [DRIVE]},
    }
    assert profile == {"name": "A"}


@pytest.mark.parametrize("error", [GoogleUnavailable("503"), GrantRevoked("invalid_grant"),
                                   Misconfigured("fix")])
def test_errors_that_end_the_users_work_propagate(error):
    later = []
    second = OfflineTask(name="second", scopes=(),
                         run=lambda api, user: later.append(1) or TaskResult())
    with pytest.raises(type(error)):
        run_tasks([task("first", error), second], api=None, user=USER, granted_scopes=("openid",))
    assert later == []
