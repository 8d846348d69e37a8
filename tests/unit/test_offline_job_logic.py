"""Pure logic of the scheduled job: backoff and jitter, retries within a deadline, reauth reasons,
the task registry, run ids, and which users a run may claim."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offline_access import reauth_reasons, user_tasks
from offline_access.access_tokens import Retrier
from offline_access.errors import Misconfigured, TransientUpstreamError
from offline_access.job_claims import (
    SKIP_CLAIMED,
    SKIP_DONE_IN_THIS_RUN,
    SKIP_NOT_ACTIVE,
    SKIP_NOT_DUE,
    DueUser,
    skip_reason,
)
from offline_access.offline_job import run_id_from_headers
from offline_access.retry_policy import CALL_RETRIES, DEFERRAL, Backoff

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
DRIVE = "https://www.googleapis.com/auth/drive.appdata"

backoffs = st.builds(
    lambda base, multiplier, cap_factor, jitter_share, attempts: Backoff(
        base=base,
        multiplier=multiplier,
        cap=base * cap_factor,
        jitter=(multiplier - 1) * jitter_share,
        max_attempts=attempts,
    ),
    base=st.floats(0.001, 10),
    multiplier=st.floats(1.0, 4.0),
    cap_factor=st.floats(1.0, 10_000),
    jitter_share=st.floats(0.0, 1.0),
    attempts=st.integers(1, 10),
)
unit_floats = st.floats(0.0, 1.0, exclude_max=True)


class TestBackoff:
    @given(backoffs, st.lists(unit_floats, min_size=40, max_size=40))
    def test_delays_grow_monotonically_until_the_cap_and_never_exceed_it(self, backoff, draws):
        delays = [backoff.delay(n, lambda d=d: d) for n, d in enumerate(draws)]
        assert all(0 < d <= backoff.cap for d in delays)
        assert all(a <= b for a, b in zip(delays, delays[1:], strict=False))
        # Once the cap is reached, every later delay is the cap.
        capped = [d == backoff.cap for d in delays]
        assert capped == sorted(capped)

    @given(backoffs, st.integers(0, 2000), unit_floats)
    def test_each_delay_is_within_its_jitter_bounds(self, backoff, attempt, draw):
        low, high = backoff.bounds(attempt)
        delay = backoff.delay(attempt, lambda: draw)
        assert low <= delay <= high <= backoff.cap
        assert high <= low * (1 + backoff.jitter) + 1e-9

    def test_production_schedules(self):
        assert [CALL_RETRIES.bounds(n) for n in range(3)] == [(1, 1.5), (2, 3), (4, 6)]
        assert DEFERRAL.bounds(0) == (300, 450)
        assert DEFERRAL.bounds(10) == (6 * 3600, 6 * 3600)

    @given(backoffs, st.integers(0, 20), st.none() | st.floats(1, 120), st.floats(0, 300),
           unit_floats)
    def test_wait_honours_retry_after_and_the_deadline(self, backoff, attempt, retry_after,
                                                       remaining, draw):
        wait = backoff.wait_before_retry(attempt, retry_after, remaining, lambda: draw)
        if attempt + 1 >= backoff.max_attempts:
            assert wait is None
        elif wait is not None:
            assert wait < remaining
            assert wait >= backoff.delay(attempt, lambda: draw)
            if retry_after is not None:
                assert wait >= retry_after
        else:
            needed = max(backoff.delay(attempt, lambda: draw), retry_after or 0)
            assert needed >= remaining

    @pytest.mark.parametrize("kwargs", [
        {"base": 0}, {"base": 2, "cap": 1}, {"multiplier": 0.5}, {"jitter": 1.5},
        {"max_attempts": 0},
    ])
    def test_rejects_settings_that_break_the_guarantees(self, kwargs):
        with pytest.raises(ValueError):
            Backoff(**kwargs)


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class TestRetrier:
    def failing(self, times: int, retry_after: float | None = None):
        calls = []

        def call():
            calls.append(1)
            if len(calls) <= times:
                raise TransientUpstreamError("503", retry_after=retry_after)
            return "ok"
        return call, calls

    def test_retries_until_success(self):
        clock = FakeClock()
        retrier = Retrier(CALL_RETRIES, deadline=100, clock=clock, sleep=clock.sleep,
                          rand=lambda: 0.0)
        call, calls = self.failing(2)
        assert retrier.call(call) == "ok"
        assert len(calls) == 3 and clock.sleeps == [1.0, 2.0] and retrier.retries == 2

    def test_gives_up_after_max_attempts(self):
        clock = FakeClock()
        retrier = Retrier(CALL_RETRIES, deadline=100, clock=clock, sleep=clock.sleep)
        call, calls = self.failing(10)
        with pytest.raises(TransientUpstreamError):
            retrier.call(call)
        assert len(calls) == CALL_RETRIES.max_attempts

    def test_retry_after_is_a_floor(self):
        clock = FakeClock()
        retrier = Retrier(CALL_RETRIES, deadline=100, clock=clock, sleep=clock.sleep,
                          rand=lambda: 0.0)
        call, _ = self.failing(1, retry_after=7)
        assert retrier.call(call) == "ok" and clock.sleeps == [7]

    def test_never_waits_past_the_deadline(self):
        clock = FakeClock()
        retrier = Retrier(CALL_RETRIES, deadline=5, clock=clock, sleep=clock.sleep)
        call, calls = self.failing(10, retry_after=30)
        with pytest.raises(TransientUpstreamError):
            retrier.call(call)
        assert len(calls) == 1 and clock.sleeps == []


def record(consented_days_ago: float | None = 1, refreshed_days_ago: float | None = None,
           scopes=("openid", DRIVE)) -> dict:
    doc: dict = {"granted_scopes": list(scopes), "job": {}}
    if consented_days_ago is not None:
        doc["signed_in_at"] = NOW - dt.timedelta(days=consented_days_ago)
    if refreshed_days_ago is not None:
        doc["job"]["refreshed_at"] = NOW - dt.timedelta(days=refreshed_days_ago)
    return doc


class TestReauthReasons:
    @pytest.mark.parametrize("doc,subtype,testing,expected", [
        (record(), "invalid_rapt", False, reauth_reasons.REAUTH_REQUIRED),
        (record(), "rapt_required", True, reauth_reasons.REAUTH_REQUIRED),
        (record(8), "invalid_grant", True, reauth_reasons.TESTING_MODE_EXPIRY),
        (record(7), "invalid_grant", True, reauth_reasons.TESTING_MODE_EXPIRY),
        (record(6), "invalid_grant", True, reauth_reasons.REVOKED),
        (record(8), "invalid_grant", False, reauth_reasons.REVOKED),
        # Only Sign-In scopes: exempt from the Testing expiry.
        (record(8, scopes=("openid", "https://www.googleapis.com/auth/userinfo.email")),
         "invalid_grant", True, reauth_reasons.REVOKED),
        (record(200), "invalid_grant", False, reauth_reasons.UNUSED_6_MONTHS),
        (record(200, refreshed_days_ago=181), "invalid_grant", False,
         reauth_reasons.UNUSED_6_MONTHS),
        # Used recently by the job: not idle, so most likely revoked.
        (record(200, refreshed_days_ago=1), "invalid_grant", False, reauth_reasons.REVOKED),
        (record(None), "invalid_grant", False, reauth_reasons.UNKNOWN),
    ])
    def test_decision_table(self, doc, subtype, testing, expected):
        assert reauth_reasons.classify(doc, error_subtype=subtype, now=NOW,
                                       testing_mode=testing) == expected

    def test_every_reason_is_in_the_vocabulary(self):
        assert len(set(reauth_reasons.REASONS)) == 7
        assert "unreadable_token" in reauth_reasons.REASONS


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
        with pytest.raises(ValueError):
            run_id_from_headers({"X-CloudScheduler-ScheduleTime": value})


class TestSkipReason:
    def user(self, **fields) -> DueUser:
        data = {"status": "active", "next_run_at": NOW - dt.timedelta(minutes=1), "job": {}}
        data.update(fields)
        return DueUser("sub-1", data)

    def test_due_user_may_be_claimed(self):
        assert skip_reason(self.user(), "run-1", NOW) is None

    def test_reasons(self):
        later = NOW + dt.timedelta(minutes=5)
        earlier = NOW - dt.timedelta(minutes=5)
        assert skip_reason(self.user(status="needs_reauth"), "run-1", NOW) == SKIP_NOT_ACTIVE
        assert skip_reason(self.user(next_run_at=later), "run-1", NOW) == SKIP_NOT_DUE
        assert skip_reason(self.user(job={"last_run_id": "run-1"}), "run-1", NOW) \
            == SKIP_DONE_IN_THIS_RUN
        live_claim = {"claim_id": "c", "claim_run_id": "run-0", "claim_expires_at": later}
        assert skip_reason(self.user(job=live_claim), "run-1", NOW) == SKIP_CLAIMED
        # A lapsed claim (its run crashed) does not protect the user any more.
        expired = {"claim_id": "c", "claim_run_id": "run-0", "claim_expires_at": earlier}
        assert skip_reason(self.user(job=expired), "run-1", NOW) is None

    def test_repr_shows_no_field_values(self):
        user = self.user(refresh_token={"ciphertext": b"secret"}, email="a@example.com")
        assert "a@example.com" not in repr(user) and "secret" not in repr(user)
