"""Key rotation that really retires keys: the job re-seals, retirement waits for it, and a key
that is gone costs one user each, once, never the run (review faults 3 and 4).

Each test has secrets of its own (`fresh_keys`): the real rotation adds key pairs to the local
Secret Manager, and the key operations count tokens with Firestore aggregation queries.
"""

from __future__ import annotations

import datetime as dt

import pytest
from google.cloud import firestore

from localdev.stack_secrets import key_operations
from offline_access.errors import ClientError
from tests.integration.job.conftest import Users, refreshes
from tests.legacy_v1_sealing import seal_v1
from tests.stack_values import LEGACY_SEALING_KEY


@pytest.fixture
def keyed_env(function_env, fresh_keys) -> dict[str, str]:
    return {**function_env, **fresh_keys}


@pytest.fixture
def keyed_users(google, keyed_env, opener_for) -> Users:
    return Users(google, keyed_env, opener_for(keyed_env))


@pytest.fixture
def opener_for():
    from offline_access import wiring
    from offline_access.config import Config
    from offline_access.store.secrets import SecretSource, make_client

    return lambda env: wiring.opening_sealer(SecretSource(make_client(env)), Config.from_env(env))


@pytest.fixture
def keys(secret_manager, keyed_env, project, firestore_emulator):
    # Without the wait for instances to re-read the primary: these tests' instances are built
    # after each rotation (`test_retirement_waits_for_instances_to_follow_the_rotation` has it).
    return key_operations(secret_manager, keyed_env, firestore.Client(project=project),
                          settle_seconds=0)


def key_ids(users: Users, sub: str) -> tuple[str, str]:
    doc = users.doc(sub)
    return doc["refresh_token"]["key_id"], doc["access_token"]["key_id"]


def by_key(keys) -> dict[str, dict]:
    return {status.key: status.row() for status in keys.status()}


def test_after_a_rotation_each_run_reseals_its_users_under_the_new_key(
        keyed_users, keyed_env, make_job, keys, google, secret_manager):
    alice = keyed_users.sign_in("alice@example.com")
    bob = keyed_users.sign_in("bob@example.org")
    keyed_users.expire_cached_access_tokens(alice)  # Alice refreshes; Bob's cached token is reused
    tokens = {sub: keyed_users.open(sub, "refresh_token") for sub in (alice, bob)}
    assert key_ids(keyed_users, alice) == key_ids(keyed_users, bob) == ("1", "1")

    rotated = keys.rotate()
    job = make_job(keyed_env)
    assert rotated.key_id == "2" and job.run().succeeded == 2

    for sub in (alice, bob):
        assert key_ids(keyed_users, sub) == ("2", "2")
        assert keyed_users.open(sub, "refresh_token") == tokens[sub]  # the same grant, re-sealed
    assert refreshes(google) == {alice: 1}
    assert sorted(line["resealed"] for line in job.user_lines()) == [
        ["access_token", "refresh_token"], ["refresh_token"]]
    status = by_key(keys)
    assert status["1"]["refresh_tokens"] == status["1"]["access_tokens"] == 0
    assert status["2"] | {"kind": None} == {
        "key": "2", "kind": None, "state": "ENABLED", "primary": True, "published": True,
        "refresh_tokens": 2, "dead_refresh_tokens": 0, "access_tokens": 2}


def test_retirement_is_refused_while_a_served_user_needs_the_key(
        keyed_users, keyed_env, make_job, keys, secret_manager, google):
    alice = keyed_users.sign_in("alice@example.com")
    bob = keyed_users.sign_in("bob@example.org")
    with pytest.raises(ClientError) as primary:
        keys.retire("1")
    assert primary.value.code == "key_is_primary"
    keys.rotate()
    # Bob's grant died before the rotation: his dead token does not hold the key back.
    keyed_users.update(bob, {"status": "needs_reauth", "reauth_reason": "revoked"})

    with pytest.raises(ClientError) as refused:
        keys.retire("1")
    assert refused.value.code == "key_in_use" and "1 refresh token" in refused.value.message
    assert by_key(keys)["1"]["state"] == "ENABLED"  # nothing changed

    assert make_job(keyed_env).run().succeeded == 1
    assert by_key(keys)["1"] | {"kind": None} == {
        "key": "1", "kind": None, "state": "ENABLED", "primary": False, "published": True,
        "refresh_tokens": 0, "dead_refresh_tokens": 1, "access_tokens": 1}
    private_keys = keyed_env["TOKEN_SEALING_PRIVATE_KEYS_SECRET"]
    public_keys = keyed_env["TOKEN_SEALING_PUBLIC_KEY_VERSION"].rsplit("/versions/", 1)[0]
    assert keys.retire("1") == [f"{private_keys}/versions/1", f"{public_keys}/versions/1"]
    assert by_key(keys)["1"]["state"] == "DISABLED"
    # The next instance seals and opens with key 2 alone; Alice is unaffected.
    keyed_users.expire_cached_access_tokens(alice)
    keyed_users.update(alice, {"next_run_at": dt.datetime.now(dt.timezone.utc)})
    assert make_job(keyed_env).run("run-2").succeeded == 1


def test_retirement_waits_for_instances_to_follow_the_rotation(
        keyed_users, keyed_env, make_job, secret_manager, project):
    """An exchange instance that read the primary before a rotation seals new sign-ins with the
    old key for up to PUBLIC_KEY_REFRESH_SECONDS: retiring it before then would lose them."""
    from offline_access.store.sealing_keys import SETTLE_SECONDS

    keys = key_operations(secret_manager, keyed_env, firestore.Client(project=project))
    keyed_users.sign_in("alice@example.com")  # this exchange instance now knows key 1
    keys.rotate()
    carol = keyed_users.sign_in("carol@example.net")
    assert key_ids(keyed_users, carol) == ("1", "1")  # still key 1, as in production

    with pytest.raises(ClientError) as refused:
        keys.retire("1")

    assert refused.value.code == "primary_too_recent" and "Try again after" in refused.value.message
    assert SETTLE_SECONDS == 900
    assert make_job(keyed_env).run().succeeded == 2  # meanwhile the job re-seals both
    later = key_operations(secret_manager, keyed_env, firestore.Client(project=project),
                           settle_seconds=-1)  # as if the quarter of an hour had passed
    assert later.retire("1")[0].endswith("/versions/1")


def test_a_destroyed_key_costs_each_of_its_users_once_and_never_the_run(
        keyed_users, keyed_env, make_job, keys, secret_manager, google):
    subs = [keyed_users.sign_in(f"user{i}@example.com") for i in range(24)]
    keyed_users.expire_cached_access_tokens(*subs)
    keys.rotate()
    private_v1 = f"{keyed_env['TOKEN_SEALING_PRIVATE_KEYS_SECRET']}/versions/1"
    secret_manager.destroy(private_v1)  # a leaked key, taken out of use at once
    secret_manager.reset_counters()

    summary = make_job({**keyed_env, "JOB_CONCURRENCY": "4"}, breaker_threshold=20).run()

    assert summary.needs_reauth == 24 and summary.stopped is None
    for sub in subs:
        doc = keyed_users.doc(sub)
        assert (doc["status"], doc["reauth_reason"]) == ("needs_reauth", "unreadable_token")
    assert secret_manager.accesses(private_v1) == 1  # remembered for the instance: no storm
    assert refreshes(google) == {}


def test_documents_sealed_by_the_first_releases_open_and_are_resealed(
        keyed_users, keyed_env, make_job, keys, opener_for):
    """The migration: documents exactly as the AES-GCM (v1) exchange wrote them."""
    alice = keyed_users.sign_in("alice@example.com")
    bob = keyed_users.sign_in("bob@example.org")
    keyed_users.expire_cached_access_tokens(alice)
    plain = {}
    for sub in (alice, bob):
        doc = keyed_users.doc(sub)
        plain[sub] = {field: keyed_users.open(sub, field) for field in ("refresh_token", "access_token")}
        # The first releases wrote no issue time, and sealed with AES key version 1.
        keyed_users.store.ref(sub).update({
            **{field: seal_v1(plain[sub][field], sub=sub, field=field, key=LEGACY_SEALING_KEY,
                              key_id="1") for field in plain[sub]},
            "refresh_token_issued_at": firestore.DELETE_FIELD,
            "refresh_token_expires_at": firestore.DELETE_FIELD,
        })
        assert set(keyed_users.doc(sub)["refresh_token"]) == {"v", "key_id", "nonce", "ciphertext"}
        assert doc["signed_in_at"] == keyed_users.doc(sub)["signed_in_at"]
    assert by_key(keys)["aes-1"]["refresh_tokens"] == 2

    assert make_job(keyed_env).run().succeeded == 2

    for sub in (alice, bob):
        assert key_ids(keyed_users, sub) == ("1", "1")
        assert keyed_users.doc(sub)["refresh_token"]["v"] == 2
        assert keyed_users.open(sub, "refresh_token") == plain[sub]["refresh_token"]
    assert keyed_users.open(bob, "access_token") == plain[bob]["access_token"]  # cached, re-sealed
    assert by_key(keys)["aes-1"]["refresh_tokens"] == 0
    legacy = keyed_env["TOKEN_SEALING_KEY_VERSION"]
    assert keys.retire("aes-1") == [legacy]
    assert by_key(keys)["aes-1"]["state"] == "DISABLED"


def test_a_key_pair_left_half_done_is_reported_and_the_primary_stays(keys, secret_manager, keyed_env):
    # A rotation that stopped after its private half: no public key names version 2.
    from offline_access.store.sealing import generate_key_pair, private_key_payload

    secret_manager.add_version(keyed_env["TOKEN_SEALING_PRIVATE_KEYS_SECRET"],
                               private_key_payload("X25519", generate_key_pair("X25519")[0]))
    status = by_key(keys)
    assert status["2"]["published"] is False and status["1"]["primary"] is True
    assert keys.rotate().key_id == "3" and by_key(keys)["3"]["primary"] is True
    assert keys.retire("2") == [f"{keyed_env['TOKEN_SEALING_PRIVATE_KEYS_SECRET']}/versions/2"]
