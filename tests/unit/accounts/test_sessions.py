"""The `__session` cookie's codec and policy: opaque, authenticated, expiring, rotating keys."""

from __future__ import annotations

import base64

import pytest

from offline_access.accounts.sessions import (
    BOUND,
    NO_STATE,
    UNBOUND,
    CookiePolicy,
    CookieState,
    Session,
    SessionCodec,
    SessionKeys,
    SignInAttempt,
    bind_state,
    new_state,
)
from offline_access.errors import ClientError, Misconfigured
from offline_access.store.secrets import SecretValue

NOW = 1_800_000_000
SUB = "100000000000000000001"
KEY_1 = base64.b64encode(b"1" * 32)
KEY_2 = base64.b64encode(b"2" * 32)
SECRET = "projects/p/secrets/session-key"


class FakeSecrets:
    """Stands in for SecretSource (pure logic): versions by name, and the reads made."""

    def __init__(self, versions: dict[int, bytes], latest: int) -> None:
        self.versions = versions
        self.latest = latest
        self.reads: list[str] = []

    def get(self, name: str) -> SecretValue:
        self.reads.append(name)
        version = name.rsplit("/", 1)[1]
        number = self.latest if version == "latest" else int(version)
        if number not in self.versions:
            raise Misconfigured(f"{name} does not exist")
        return SecretValue(self.versions[number], f"{SECRET}/versions/{number}")


def codec(secrets: FakeSecrets, clock=lambda: NOW) -> SessionCodec:
    return SessionCodec(SessionKeys(secrets, f"{SECRET}/versions/latest"), clock)  # type: ignore[arg-type]


def signed_in(expires_at: int = NOW + 3600, attempts=()) -> CookieState:
    return CookieState(Session(SUB, 7, expires_at), tuple(attempts))


def test_a_sealed_cookie_opens_to_the_same_state():
    c = codec(FakeSecrets({1: KEY_1}, 1))
    state = signed_in(attempts=[SignInAttempt("s1", NOW + 60)])
    assert c.open(c.seal(state)) == state


def test_nothing_about_the_user_can_be_read_from_the_value():
    c = codec(FakeSecrets({1: KEY_1}, 1))
    value = c.seal(signed_in())
    version, key_id, blob = value.split(".")
    assert (version, key_id) == ("v1", "1")
    raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
    assert SUB.encode() not in raw and SUB not in value
    assert b'"s"' not in raw  # not even the document's shape
    # Two cookies for the same session differ (a fresh nonce each time).
    assert c.seal(signed_in()) != value


@pytest.mark.parametrize("mangle", [
    lambda v: v[:-2] + ("A" if v[-2] != "A" else "B") + v[-1],   # a flipped character
    lambda v: v[:-10],                                            # truncated
    lambda v: v.replace("v1.", "v2.", 1),                          # another format
    lambda v: "v1.1." + base64.urlsafe_b64encode(b"x" * 40).decode(),  # garbage
    lambda v: v + ".extra",
    lambda v: "",
    lambda v: "v1.1.%%%",
    lambda v: "v1.1." + "A" * 3000,                               # oversized
])
def test_a_tampered_value_is_no_session(mangle):
    c = codec(FakeSecrets({1: KEY_1}, 1))
    assert c.open(mangle(c.seal(signed_in()))) == CookieState()


def test_a_cookie_sealed_under_a_foreign_key_is_no_session():
    theirs = codec(FakeSecrets({1: base64.b64encode(b"9" * 32)}, 1))
    ours = codec(FakeSecrets({1: KEY_1}, 1))
    assert ours.open(theirs.seal(signed_in())) == CookieState()


def test_expired_parts_are_dropped():
    c = codec(FakeSecrets({1: KEY_1}, 1))
    value = c.seal(signed_in(expires_at=NOW + 10,
                             attempts=[SignInAttempt("old", NOW + 5), SignInAttempt("new", NOW + 50)]))
    later = codec(FakeSecrets({1: KEY_1}, 1), clock=lambda: NOW + 20)
    assert later.open(value) == CookieState(None, (SignInAttempt("new", NOW + 50),))


def test_an_old_key_still_opens_after_rotation_and_new_cookies_use_the_new_one():
    secrets = FakeSecrets({1: KEY_1}, 1)
    old_value = codec(secrets).seal(signed_in())
    secrets.versions[2] = KEY_2
    secrets.latest = 2
    rotated = codec(secrets)
    assert rotated.open(old_value) == signed_in()
    assert rotated.seal(signed_in()).startswith("v1.2.")


def test_made_up_key_ids_cost_no_secret_manager_read():
    secrets = FakeSecrets({1: KEY_1, 2: KEY_2}, 2)
    c = codec(secrets)
    value = c.seal(signed_in())
    for key_id in ("3", "999", "-1", "abc", "1e3", ""):
        secrets.reads.clear()
        forged = value.replace("v1.2.", f"v1.{key_id}.", 1)
        assert c.open(forged) == CookieState()
        assert all(name.endswith("/latest") for name in secrets.reads), secrets.reads


def test_a_destroyed_old_key_is_asked_for_once_and_its_cookies_are_void():
    secrets = FakeSecrets({1: KEY_1, 3: KEY_2}, 3)  # version 2 was destroyed
    c = codec(secrets)
    forged = c.seal(signed_in()).replace("v1.3.", "v1.2.", 1)
    assert c.open(forged) == CookieState()
    assert c.open(forged) == CookieState()
    assert secrets.reads.count(f"{SECRET}/versions/2") == 1


def test_a_key_that_is_not_32_base64_bytes_is_a_misconfiguration():
    c = codec(FakeSecrets({1: b"too short"}, 1))
    with pytest.raises(Misconfigured) as caught:
        c.check_ready()
    assert "rotate-session-key" in caught.value.fix


def test_attempts_keep_the_newest_three_and_are_used_once():
    state = CookieState()
    for n in range(5):
        state = state.with_attempt(SignInAttempt(f"s{n}", NOW + 60))
    assert [a.state for a in state.attempts] == ["s2", "s3", "s4"]
    remaining, binding = bind_state(state, "s3")
    assert binding == BOUND
    assert [a.state for a in remaining.attempts] == ["s2", "s4"]
    with pytest.raises(ClientError) as caught:
        bind_state(remaining, "s3")
    assert (caught.value.status, caught.value.code) == (400, "state_mismatch")


def test_a_request_without_state_or_without_any_cookie_is_not_bound():
    with_attempts = CookieState(attempts=(SignInAttempt("s", NOW + 60),))
    assert bind_state(with_attempts, None) == (with_attempts, NO_STATE)
    assert bind_state(CookieState(), "anything") == (CookieState(), UNBOUND)


def test_a_signed_in_browser_must_send_a_state_it_was_given():
    # After a sign-in the attempt is used up: replaying its state is refused, not unbound.
    with pytest.raises(ClientError):
        bind_state(signed_in(), "a-used-or-made-up-state")


def test_new_states_are_long_and_url_safe():
    states = {new_state() for _ in range(50)}
    assert len(states) == 50
    assert all(len(s) >= 43 and s.replace("-", "").replace("_", "").isalnum() for s in states)


class TestCookiePolicy:
    def policy(self, *origins: str) -> CookiePolicy:
        return CookiePolicy.for_origins(origins, session_lifetime=3600, attempt_lifetime=600)

    def test_flags(self):
        header = self.policy("https://app.example").header("VALUE", 3600)
        assert header == ("__session=VALUE; Max-Age=3600; Path=/api; HttpOnly; SameSite=Lax; Secure")

    @pytest.mark.parametrize("origins, secure", [
        (("http://localhost:8080",), False),
        (("http://127.0.0.1:8080", "http://localhost:8080"), False),
        (("http://localhost:8080", "https://app.example"), True),
        (("http://localhost.evil.example",), True),
        (("http://app.example",), True),
        ((), True),
    ])
    def test_secure_unless_every_origin_is_plain_http_on_loopback(self, origins, secure):
        assert self.policy(*origins).secure is secure

    def test_max_age_covers_the_longest_part(self):
        policy = self.policy("https://app.example")
        state = signed_in(expires_at=NOW + 100, attempts=[SignInAttempt("s", NOW + 600)])
        assert policy.max_age(state, NOW) == 600
        assert policy.max_age(CookieState(), NOW) == 0
        assert policy.header("", 0).startswith("__session=; Max-Age=0;")


def test_the_cookie_document_is_compact_json():
    # Cookies are limited to about 4 kB: three attempts and a session stay far below.
    c = codec(FakeSecrets({1: KEY_1}, 1))
    state = signed_in(attempts=[SignInAttempt(new_state(), NOW + 600) for _ in range(3)])
    assert len(c.seal(state)) < 600
