"""Which due users a run may claim, and what a user record shows of itself."""

from __future__ import annotations

import datetime as dt

from offline_access.store.job_claims import (
    SKIP_CLAIMED,
    SKIP_DONE_IN_THIS_RUN,
    SKIP_NOT_ACTIVE,
    SKIP_NOT_DUE,
    DueUser,
    skip_reason,
)

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


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
