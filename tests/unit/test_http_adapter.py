"""Cloud Scheduler headers to a run id."""

from __future__ import annotations

import pytest

from offline_access.errors import ClientError
from offline_access.http_adapter import run_id_from_headers


class TestRunId:
    def test_from_cloud_scheduler_headers(self):
        headers = {"X-CloudScheduler-ScheduleTime": "2026-06-01T12:00:00Z"}
        assert run_id_from_headers(headers) == "schedule@2026-06-01T12:00:00Z"
        headers["X-CloudScheduler-JobName"] = "offline-access-job"
        assert run_id_from_headers(headers) == "offline-access-job@2026-06-01T12:00:00Z"

    def test_generated_when_absent(self):
        first, second = run_id_from_headers({}), run_id_from_headers({})
        assert first.startswith("manual-") and first != second

    @pytest.mark.parametrize("value", ["yesterday", "2026-06-01", "2026-06-01T12:00:00Z; drop",
                                       "x" * 300])
    def test_malformed_schedule_time_is_refused(self, value):
        with pytest.raises(ClientError):
            run_id_from_headers({"X-CloudScheduler-ScheduleTime": value})
