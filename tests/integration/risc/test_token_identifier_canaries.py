"""Canaries: no plaintext part of a refresh token is stored, answered or logged, yet events match it.

Users sign in through the real exchange; the refresh tokens Google issued are read back from the
local Google. Every Firestore document (users, what lies under them, the event records) and
every log line is then searched for each token, its 16-character prefix (what a `token-revoked`
event by `prefix` sends) and its double SHA-512 hash in every spelling, before and after events
that name the token both ways.
"""

from __future__ import annotations

import base64
import hashlib
import json

from localdev.stack_secrets import with_token_id_key
from offline_access.store.refresh_token_ids import RefreshTokenIds
from offline_access.store.secrets import SecretSource, make_client

ALICE, BOB = "100000000000000000001", "100000000000000000002"


def spellings(token: str) -> set[str]:
    """The token and every part of it an event or a careless store could hold."""
    inner = hashlib.sha512(token.encode()).digest()
    digest = hashlib.sha512(inner).digest()
    return {token, token[:16], token[3:16], digest.hex(), inner.hex(),
            base64.b64encode(digest).decode(), base64.b64encode(digest).decode().rstrip("="),
            base64.urlsafe_b64encode(digest).decode().rstrip("="),
            base64.b64encode(inner).decode(), json.dumps(token[:16])[1:-1]}


def every_document(client) -> str:
    """Every document of the project, subcollections included, as one string."""
    found: list[dict] = []

    def walk(collection) -> None:
        for snapshot in collection.stream():
            found.append({"id": snapshot.id, **(snapshot.to_dict() or {})})
            for sub in snapshot.reference.collections():
                walk(sub)

    for collection in client.collections():
        walk(collection)
    return json.dumps(found, default=repr)


def issued_refresh_tokens(google, sub: str) -> list[str]:
    return [t["token"] for t in google.state()["refresh_tokens"] if t["sub"] == sub]


def test_no_part_of_a_refresh_token_is_stored_or_logged_and_both_identifiers_match(
        site, google, stream, capsys):
    site.browser().sign_in(google)
    site.browser().sign_in(google, "bob@example.org")
    [alice_token], [bob_token] = issued_refresh_tokens(google, ALICE), issued_refresh_tokens(google, BOB)
    client = site.account.store.client
    stored = site.account.store.get(ALICE)["refresh_token_ids"]
    assert set(stored) == {"key", "prefix", "sha512_sha512"}
    assert all(len(stored[name]) == 64 for name in ("prefix", "sha512_sha512"))  # HMAC-SHA256, hex

    def assert_nowhere(text: str) -> None:
        for token in (alice_token, bob_token):
            for canary in spellings(token):
                assert canary not in text, f"a part of a refresh token ({len(canary)} chars) leaked"

    assert_nowhere(every_document(client))

    by_prefix = google.risc_event("token-revoked", sub=ALICE, token_identifier_alg="prefix")
    by_hash = google.risc_event("token-revoked", sub=BOB, token_identifier_alg="hash_base64_sha512_sha512")
    for sent in (by_prefix, by_hash):
        assert google.risc_wait(sent["jti"])["answers"] == [202]

    # Both were found by their identifiers, and the tokens were deleted.
    for sub in (ALICE, BOB):
        document = site.account.store.get(sub)
        assert document["status"] == "needs_reauth" and "refresh_token" not in document
        assert document["security_events"][-1]["action"] == "token_deleted"
    assert_nowhere(every_document(client))
    logged = capsys.readouterr().out
    assert '"outcome":"token_deleted"' in logged
    assert_nowhere(logged)


def test_the_identifiers_are_keyed(token_id_key, secret_manager, function_env):
    """The same token under another key gives other identifiers: a database copy alone
    cannot be matched against the identifiers Google (or anyone) sends."""
    secrets = SecretSource(make_client(function_env))
    other_key = with_token_id_key(secret_manager, function_env["GOOGLE_CLOUD_PROJECT"], {},
                                  suffix="-other")
    ours = RefreshTokenIds(lambda: secrets.get(token_id_key["REFRESH_TOKEN_ID_KEY_VERSION"]))
    theirs = RefreshTokenIds(lambda: secrets.get(other_key["REFRESH_TOKEN_ID_KEY_VERSION"]))
    token = "1//0canary-refresh-token-" + "x" * 80

    assert ours.of_token(token)["prefix"] != theirs.of_token(token)["prefix"]
    assert ours.of_token(token)["sha512_sha512"] != theirs.of_token(token)["sha512_sha512"]
    assert not spellings(token) & set(ours.of_token(token).values())
