"""`make dev` registers its RISC receiver with the local Google at start (on free ports here).

The same function `make dev` calls registers a running receiver; the local Google's own events
then reach it over plain http (its loopback rule), and the CLI settings it returns are the ones
`make dev` writes to `.dev-data/cli.env` for `offline-access risc verify`.
"""

from __future__ import annotations

import json

from localdev.dev import register_risc_receiver
from localdev.dev_data import DevData

ALICE = "100000000000000000001"


def test_make_dev_registers_the_receiver_and_events_reach_it(google, google_server, receiver, site,
                                                             tmp_path):
    site.browser().sign_in(google)

    settings = register_risc_receiver(google_server, DevData(tmp_path / ".dev-data"), receiver.url)

    assert settings["RISC_RECEIVER_URL"] == receiver.url
    key = json.loads((tmp_path / ".dev-data" / "risc-admin-key.json").read_text())
    assert settings["RISC_SERVICE_ACCOUNT_KEY_FILE"].endswith("risc-admin-key.json")
    assert key["type"] == "service_account" and key["client_email"].startswith("risc-admin@")
    stream = google.risc_stream()
    assert stream["delivery"]["url"] == receiver.url and stream["status"] == "enabled"
    assert len(stream["events_requested"]) == 7
    sent = google.risc_event("sessions-revoked", sub=ALICE)
    assert google.risc_wait(sent["jti"])["answers"] == [202]
    assert site.account.store.get(ALICE)["security_events"][0]["action"] == "sessions_ended"
