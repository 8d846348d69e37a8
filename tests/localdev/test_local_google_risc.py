"""The local Google as Google's RISC transmitter (google-oauth.md §5, §8.9), over real HTTP.

A real receiver (a ThreadingHTTPServer answering from a script) gets the SETs; they are verified
as Google's docs tell a receiver to: issuer and `jwks_uri` from the RISC configuration, the key by
`kid`, RS256 with `cryptography`, `aud` and `iss`, no `exp`. Registration goes through the
management API with a service account's self-signed JWT (google-auth's signer) or its access
token (google-auth's service-account credentials).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import socket
import threading
import time
from collections import deque

import google.auth.transport.requests as google_requests
import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google.auth import crypt, jwt
from google.oauth2 import service_account

from localdev.local_google import GoogleControl, LocalGoogle

CLIENT_ID = "123456-risc.apps.googleusercontent.com"
CLIENT_SECRET = "risc-secret"
PROJECT = "risc-app"
ALICE = "100000000000000000001"
BOB = "100000000000000000002"
RISC_AUDIENCE = "https://risc.googleapis.com/google.identity.risc.v1beta.RiscManagementService"
PUSH = "https://schemas.openid.net/secevent/risc/delivery-method/push"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
OAUTH = "https://schemas.openid.net/secevent/oauth/event-type/"
VERIFICATION = RISC + "verification"
SESSIONS_REVOKED = RISC + "sessions-revoked"
ALL_EVENTS = [RISC + "sessions-revoked", OAUTH + "tokens-revoked", OAUTH + "token-revoked",
              RISC + "account-disabled", RISC + "account-enabled",
              RISC + "account-credential-change-required", VERIFICATION]
AUTH = "https://www.googleapis.com/auth/"
APPDATA = AUTH + "drive.appdata"


# A receiver that answers from a script and records every request.


class Receiver:
    """Answers each POST with the next scripted answer (a status, or (status, delay in s)), then 202."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict, str]] = []
        self.answers: deque[int | tuple[int, float]] = deque()
        self.cond = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                with receiver.cond:
                    receiver.requests.append((dict(self.headers), body))
                    answer = receiver.answers.popleft() if receiver.answers else 202
                    receiver.cond.notify_all()
                status, delay = answer if isinstance(answer, tuple) else (answer, 0)
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/risc"

    def clear(self, *answers: int | tuple[int, float]) -> None:
        with self.cond:
            self.requests.clear()
            self.answers = deque(answers)

    def bodies(self) -> list[str]:
        with self.cond:
            return [body for _, body in self.requests]


@pytest.fixture(scope="module")
def google() -> LocalGoogle:
    server = LocalGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, project_id=PROJECT).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def receiver() -> Receiver:
    server = Receiver()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture(scope="module")
def key_file(google: LocalGoogle) -> dict:
    """The JSON key of a service account with the RISC Configuration Admin role."""
    return google.control.service_account(project_id=PROJECT)["key_file"]


@pytest.fixture
def ctl(google: LocalGoogle, receiver: Receiver) -> GoogleControl:
    google.control.reset()
    google.control.risc_settings(backoff_seconds=0.05, max_backoff_seconds=0.2)
    receiver.clear()
    return google.control


# Helpers


def sa_jwt(key_file: dict, **changes) -> str:
    """The self-signed JWT Google's RISC docs describe (kid = private_key_id)."""
    signer = crypt.RSASigner.from_service_account_info(key_file)
    now = int(time.time())
    claims = {"iss": key_file["client_email"], "sub": key_file["client_email"], "aud": RISC_AUDIENCE,
              "iat": now, "exp": now + 3600, **changes}
    return jwt.encode(signer, {k: v for k, v in claims.items() if v is not None}).decode()


def risc_call(google: LocalGoogle, method: str, path: str, token: str | None, body: dict | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{google.url}/v1beta/{path}", json=body, headers=headers, timeout=10)


def stream_body(url: str, events: list[str] | None = None) -> dict:
    return {"delivery": {"delivery_method": PUSH, "url": url},
            "events_requested": ALL_EVENTS if events is None else events}


def sign_in(google: LocalGoogle, sub: str = ALICE, scopes: str = "openid email profile") -> dict:
    minted = google.control.mint_code(scopes, sub=sub)
    response = requests.post(f"{google.url}/token", data={
        "grant_type": "authorization_code", "code": minted["code"], "redirect_uri": "postmessage",
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class Rejected(Exception):
    pass


def verify_set(google: LocalGoogle, token: str, client_ids: list[str]) -> tuple[dict, dict]:
    """A receiver's checks from Google's RISC page; returns (header, claims) or raises Rejected."""
    config = requests.get(f"{google.url}/.well-known/risc-configuration", timeout=10).json()
    jwks = requests.get(config["jwks_uri"], timeout=10).json()
    try:
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = json.loads(b64url_decode(header_b64))
        claims = json.loads(b64url_decode(payload_b64))
    except ValueError as exc:
        raise Rejected("malformed") from exc
    if "kid" not in header:
        raise Rejected("no kid")
    key = next((k for k in jwks["keys"] if k["kid"] == header["kid"]), None)
    if key is None:
        raise Rejected("unknown kid")
    if header.get("alg") != "RS256":
        raise Rejected(f"alg {header.get('alg')}")
    public_key = rsa.RSAPublicNumbers(
        int.from_bytes(b64url_decode(key["e"]), "big"), int.from_bytes(b64url_decode(key["n"]), "big")
    ).public_key()
    try:
        public_key.verify(b64url_decode(signature_b64), f"{header_b64}.{payload_b64}".encode(),
                          padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise Rejected("bad signature") from exc
    if claims.get("aud") not in client_ids:
        raise Rejected("aud")
    if claims.get("iss") != config["issuer"]:
        raise Rejected("iss")
    return header, claims


def register(google: LocalGoogle, key_file: dict, url: str, events: list[str] | None = None) -> None:
    response = risc_call(google, "POST", "stream:update", sa_jwt(key_file), stream_body(url, events))
    assert response.status_code == 200, response.text


# Discovery


def test_risc_configuration_points_at_this_server_and_the_id_token_keys(google):
    response = requests.get(f"{google.url}/.well-known/risc-configuration", timeout=10)

    assert response.status_code == 200
    config = response.json()
    assert config == {
        "issuer": "https://accounts.google.com/",
        "jwks_uri": f"{google.url}/oauth2/v3/certs",
        "delivery_methods_supported": [PUSH],
        "get_configuration_endpoint": f"{google.url}/v1beta/stream",
        "update_configuration_endpoint": f"{google.url}/v1beta/stream:update",
        "get_status_endpoint": f"{google.url}/v1beta/stream/status",
        "verification_endpoint": f"{google.url}/v1beta/stream:verify",
    }
    oidc = requests.get(f"{google.url}/.well-known/openid-configuration", timeout=10).json()
    assert config["jwks_uri"] == oidc["jwks_uri"]


# Registration


def test_register_read_and_toggle_the_stream_with_a_self_signed_jwt(google, ctl, key_file, receiver):
    token = sa_jwt(key_file)
    assert risc_call(google, "GET", "stream", token).status_code == 404

    updated = risc_call(google, "POST", "stream:update", token, stream_body(receiver.url))

    assert updated.status_code == 200, updated.text
    config = risc_call(google, "GET", "stream", token).json()
    assert config["delivery"] == {"delivery_method": PUSH, "url": receiver.url}
    assert config["events_requested"] == ALL_EVENTS
    assert risc_call(google, "GET", "stream/status", token).json() == {"status": "enabled"}
    disabled = risc_call(google, "POST", "stream/status:update", token, {"status": "disabled"})
    assert disabled.status_code == 200 and disabled.json() == {"status": "disabled"}
    # An update keeps the status, and GET's answer can be posted back as it is.
    assert risc_call(google, "POST", "stream:update", token, config).status_code == 200
    assert risc_call(google, "GET", "stream/status", token).json() == {"status": "disabled"}
    assert ctl.risc_stream()["status"] == "disabled"


def test_service_account_access_tokens_need_each_endpoints_scope(google, ctl, key_file, receiver):
    def session(*scopes: str) -> google_requests.AuthorizedSession:
        credentials = service_account.Credentials.from_service_account_info(
            key_file, scopes=[AUTH + s for s in scopes])
        return google_requests.AuthorizedSession(credentials)

    configure = session("risc.configuration.readwrite")
    assert configure.post(f"{google.url}/v1beta/stream:update", json=stream_body(receiver.url),
                          timeout=10).status_code == 200
    assert configure.get(f"{google.url}/v1beta/stream", timeout=10).status_code == 200
    refused = configure.post(f"{google.url}/v1beta/stream:verify", json={"state": "x"}, timeout=10)
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "Request had insufficient authentication scopes."

    operate = session("risc.verify", "risc.status.readwrite")
    assert operate.post(f"{google.url}/v1beta/stream:verify", json={"state": "x"}, timeout=10).status_code == 200
    assert operate.post(f"{google.url}/v1beta/stream/status:update", json={"status": "enabled"},
                        timeout=10).status_code == 200
    assert operate.get(f"{google.url}/v1beta/stream", timeout=10).status_code == 403
    assert session("risc.status.readonly").get(f"{google.url}/v1beta/stream/status",
                                               timeout=10).json() == {"status": "enabled"}


def other_key_file(google: LocalGoogle) -> dict:
    """A key the local Google never saw, claiming to be the registered account."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"private_key": pem, "private_key_id": "f" * 40, "client_email": "", "token_uri": ""}


@pytest.mark.parametrize("case", ["no_token", "wrong_aud", "sub_differs", "expired", "over_an_hour",
                                  "future_iat", "unregistered_key", "unknown_account", "garbage"])
def test_registration_refuses_bad_credentials_with_401(google, ctl, key_file, receiver, case):
    email = key_file["client_email"]
    now = int(time.time())
    forged = {**other_key_file(google), "client_email": email}
    token = {
        "no_token": None,
        "wrong_aud": sa_jwt(key_file, aud="https://risc.googleapis.com/"),
        "sub_differs": sa_jwt(key_file, sub="someone@example.com"),
        "expired": sa_jwt(key_file, iat=now - 7200, exp=now - 3600),
        "over_an_hour": sa_jwt(key_file, exp=now + 7200),
        "future_iat": sa_jwt(key_file, iat=now + 3600, exp=now + 5400),
        "unregistered_key": jwt.encode(crypt.RSASigner.from_service_account_info(forged), {
            "iss": email, "sub": email, "aud": RISC_AUDIENCE, "iat": now, "exp": now + 3600}).decode(),
        "unknown_account": sa_jwt(key_file, iss="nobody@risc-app.iam.gserviceaccount.com",
                                  sub="nobody@risc-app.iam.gserviceaccount.com"),
        "garbage": "not-a-token",
    }[case]

    response = risc_call(google, "POST", "stream:update", token, stream_body(receiver.url))

    assert response.status_code == 401, response.text
    assert response.json()["error"] == {"code": 401, "message": "Unauthorized.", "status": "UNAUTHENTICATED"}
    assert ctl.risc_stream() is None


def test_registration_refuses_users_accounts_without_the_role_and_projects_without_clients(
        google, ctl, key_file, receiver):
    user_token = sign_in(google)["access_token"]
    no_role = ctl.service_account("viewer@risc-app.iam.gserviceaccount.com", roles=[])["key_file"]
    lonely = ctl.service_account(project_id="no-clients-project")["key_file"]
    body = stream_body(receiver.url)

    cases = [
        (user_token, "Stream management APIs should only be called by a service account."),
        (sa_jwt(no_role), "Service account needs permission to access your RISC configuration"),
        (sa_jwt(lonely), "To use this API your project must have at least one OAuth client configured."),
    ]
    for token, message in cases:
        response = risc_call(google, "POST", "stream:update", token, body)
        assert (response.status_code, response.json()["error"]["message"]) == (403, message)
    assert ctl.risc_stream() is None


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"events_requested": ALL_EVENTS}, 400, "Stream configuration must contain delivery field."),
    ({"delivery": {"delivery_method": PUSH, "url": "https://risc.example.com/"}}, 400,
     "Stream configuration must contain events_requested field."),
    ({"delivery": {"delivery_method": PUSH}, "events_requested": []}, 400,
     "Stream configuration must contain delivery.url field."),
    (stream_body("http://risc.example.com/receiver"), 403, "The delivery endpoint must be an HTTPS URL."),
    (stream_body("ftp://risc.example.com/receiver"), 403, "The delivery endpoint must be an HTTPS URL."),
])
def test_stream_update_checks_the_configuration(google, ctl, key_file, body, status, message):
    response = risc_call(google, "POST", "stream:update", sa_jwt(key_file), body)

    assert (response.status_code, response.json()["error"]["message"]) == (status, message)
    assert ctl.risc_stream() is None


def test_status_errors(google, ctl, key_file, receiver):
    token = sa_jwt(key_file)
    missing = risc_call(google, "POST", "stream/status:update", token, {"status": "disabled"})
    assert (missing.status_code, missing.json()["error"]["message"]) == (
        404, "Project has no existing RISC configuration, cannot update status.")
    assert risc_call(google, "POST", "stream:verify", token, {"state": "x"}).status_code == 404

    register(google, key_file, receiver.url)
    invalid = risc_call(google, "POST", "stream/status:update", token, {"status": "paused"})
    assert (invalid.status_code, invalid.json()["error"]["message"]) == (403, "Unsupported status.")
    assert ctl.risc_stream()["status"] == "enabled"


def test_receiver_url_rules_are_settings(google, ctl, key_file):
    def update(url: str) -> int:
        return risc_call(google, "POST", "stream:update", sa_jwt(key_file), stream_body(url)).status_code

    assert update("http://127.0.0.1:9/risc") == 200  # default: plain HTTP on loopback only
    assert update("http://localhost:9/risc") == 200
    assert update("http://receiver.internal/risc") == 403
    ctl.risc_settings(allow_http_receivers=True)
    assert update("http://receiver.internal/risc") == 200
    ctl.risc_settings(allow_http_receivers=False)  # Google's own rule
    assert update("http://127.0.0.1:9/risc") == 403
    ctl.risc_settings(authorized_domains=["example.com"])
    assert update("https://risc.example.com/receiver") == 200
    refused = risc_call(google, "POST", "stream:update", sa_jwt(key_file), stream_body("https://example.org/r"))
    assert (refused.status_code, refused.json()["error"]["message"]) == (
        403, "The delivery endpoint does not belong to any of your project's domains.")
    assert ctl.risc_stream()["delivery"]["url"] == "https://risc.example.com/receiver"


# Delivery


def test_verification_event_reaches_the_receiver_as_a_valid_set(google, ctl, key_file, receiver):
    register(google, key_file, receiver.url)

    response = risc_call(google, "POST", "stream:verify", sa_jwt(key_file), {"state": "check-42"})

    assert response.status_code == 200
    (delivery,) = ctl.risc_deliveries()
    assert ctl.risc_wait(delivery["id"])["acked"]
    ((headers, body),) = receiver.requests
    assert headers["Content-Type"] == "application/secevent+jwt"
    header, claims = verify_set(google, body, [CLIENT_ID])
    assert header == {"alg": "RS256", "kid": header["kid"]}
    assert header["kid"] == requests.get(f"{google.url}/oauth2/v3/certs", timeout=10).json()["keys"][0]["kid"]
    assert set(claims) == {"iss", "aud", "iat", "jti", "events"}  # no exp
    assert claims["iss"] == "https://accounts.google.com/" and claims["aud"] == CLIENT_ID
    assert claims["jti"] == delivery["jti"]
    assert abs(claims["iat"] - time.time()) < 60
    assert claims["events"] == {VERIFICATION: {"state": "check-42"}}


def test_a_failed_delivery_is_retried_with_the_same_jti_until_a_2xx(google, ctl, receiver):
    sign_in(google)
    ctl.set_risc_stream(receiver.url)
    receiver.clear(500, 503)

    sent = ctl.risc_event("sessions-revoked", sub=ALICE)
    delivery = ctl.risc_wait(sent["jti"])

    assert delivery["status"] == "acked" and delivery["attempts"] == 3
    assert delivery["answers"] == [500, 503, 202]
    assert receiver.bodies() == [sent["token"]] * 3
    assert {verify_set(google, body, [CLIENT_ID])[1]["jti"] for body in receiver.bodies()} == {sent["jti"]}


def test_delivery_gives_up_after_the_bounded_attempts(google, ctl, receiver):
    sign_in(google)
    ctl.risc_settings(max_attempts=3)
    ctl.set_risc_stream(receiver.url)
    receiver.clear(500, 500, 500, 500)

    delivery = ctl.risc_wait(ctl.risc_event("account-enabled", sub=ALICE)["jti"])

    assert (delivery["status"], delivery["answers"]) == ("gave_up", [500, 500, 500])
    assert len(receiver.bodies()) == 3


def test_a_receiver_that_does_not_answer_in_time_gets_the_set_again(google, ctl, receiver):
    sign_in(google)
    ctl.risc_settings(timeout_seconds=0.3)
    ctl.set_risc_stream(receiver.url)
    receiver.clear((202, 1.0))

    delivery = ctl.risc_wait(ctl.risc_event("sessions-revoked", sub=ALICE)["jti"])

    assert (delivery["status"], delivery["answers"]) == ("acked", ["ReadTimeout", 202])
    assert len(set(receiver.bodies())) == 1 and len(receiver.bodies()) == 2


def test_an_unreachable_receiver_is_retried_then_given_up(google, ctl):
    sign_in(google)
    ctl.risc_settings(max_attempts=2)
    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctl.set_risc_stream(f"http://127.0.0.1:{port}/risc")

    delivery = ctl.risc_wait(ctl.risc_event("sessions-revoked", sub=ALICE)["jti"])

    assert (delivery["status"], delivery["answers"]) == ("gave_up", ["ConnectionError", "ConnectionError"])


def test_nothing_is_delivered_or_buffered_while_the_stream_is_disabled(google, ctl, key_file, receiver):
    sign_in(google)
    register(google, key_file, receiver.url)
    token = sa_jwt(key_file)
    risc_call(google, "POST", "stream/status:update", token, {"status": "disabled"})

    while_disabled = ctl.risc_event("sessions-revoked", sub=ALICE)
    risc_call(google, "POST", "stream/status:update", token, {"status": "enabled"})
    after = ctl.risc_event("account-enabled", sub=ALICE)

    assert while_disabled["delivery"]["status"] == "stream_disabled"
    assert ctl.risc_wait(after["jti"])["acked"]
    assert receiver.bodies() == [after["token"]]


def test_disabling_the_stream_ends_a_pending_redelivery(google, ctl, receiver):
    sign_in(google)
    ctl.risc_settings(backoff_seconds=0.5, max_backoff_seconds=0.5)
    ctl.set_risc_stream(receiver.url)
    receiver.clear(500, 500, 500)

    sent = ctl.risc_event("sessions-revoked", sub=ALICE)
    with receiver.cond:
        assert receiver.cond.wait_for(lambda: len(receiver.requests) == 1, timeout=10)
    ctl.set_risc_stream(receiver.url, status="disabled")

    delivery = ctl.risc_wait(sent["jti"])
    assert (delivery["status"], delivery["answers"]) == ("dropped", [500])
    assert len(receiver.bodies()) == 1


def test_only_requested_event_types_are_sent(google, ctl, key_file, receiver):
    sign_in(google)
    register(google, key_file, receiver.url, [SESSIONS_REVOKED])

    skipped = ctl.risc_event("account-disabled", sub=ALICE, reason="hijacking")
    risc_call(google, "POST", "stream:verify", sa_jwt(key_file), {"state": "unrequested"})
    sent = ctl.risc_event("sessions-revoked", sub=ALICE)

    assert skipped["delivery"]["status"] == "not_requested"
    assert ctl.risc_wait(sent["jti"])["acked"]
    assert receiver.bodies() == [sent["token"]]
    assert [d["status"] for d in ctl.risc_deliveries()] == ["not_requested", "not_requested", "acked"]


# Events and subjects


@pytest.mark.parametrize(("name", "extra"), [
    ("sessions-revoked", {}),
    ("tokens-revoked", {}),
    ("account-disabled", {"reason": "hijacking"}),
    ("account-disabled", {"reason": "bulk-account"}),
    ("account-disabled", {}),
    ("account-enabled", {}),
    ("account-credential-change-required", {}),
])
def test_user_events_carry_an_iss_sub_subject(google, ctl, receiver, name, extra):
    sign_in(google, BOB)
    ctl.set_risc_stream(receiver.url)

    sent = ctl.risc_event(name, sub=BOB, **extra)

    assert ctl.risc_wait(sent["jti"])["acked"]
    _, claims = verify_set(google, receiver.bodies()[0], [CLIENT_ID])
    uri = (OAUTH if name == "tokens-revoked" else RISC) + name
    assert claims["events"] == {uri: {
        "subject": {"subject_type": "iss-sub", "iss": "https://accounts.google.com/", "sub": BOB}, **extra}}


def test_id_token_claims_subject_adds_the_email(google, ctl, receiver):
    sign_in(google, BOB)
    ctl.set_risc_stream(receiver.url)

    sent = ctl.risc_event("sessions-revoked", email="bob@example.org", subject_type="id_token_claims")

    assert sent["claims"]["events"][SESSIONS_REVOKED]["subject"] == {
        "subject_type": "id_token_claims", "iss": "https://accounts.google.com/", "sub": BOB,
        "email": "bob@example.org"}


def test_token_revoked_names_the_refresh_token_and_revokes_it(google, ctl, receiver):
    ctl.set_risc_stream(receiver.url)
    older = sign_in(google, scopes=f"openid email {APPDATA}")["refresh_token"]
    newest = sign_in(google, scopes=f"openid email profile {APPDATA}")["refresh_token"]

    by_prefix = ctl.risc_event("token-revoked", sub=ALICE)
    by_hash = ctl.risc_event("token-revoked", refresh_token=older,
                             token_identifier_alg="hash_base64_sha512_sha512", revoke=False)

    for sent in (by_prefix, by_hash):
        assert ctl.risc_wait(sent["jti"])["acked"]
    prefix_subject = verify_set(google, receiver.bodies()[0], [CLIENT_ID])[1]["events"][OAUTH + "token-revoked"]
    assert prefix_subject == {"subject": {"subject_type": "oauth_token", "token_type": "refresh_token",
                                          "token_identifier_alg": "prefix", "token": newest[:16]}}
    double_sha512 = base64.b64encode(hashlib.sha512(hashlib.sha512(older.encode()).digest()).digest()).decode()
    assert by_hash["claims"]["events"][OAUTH + "token-revoked"]["subject"]["token"] == double_sha512
    assert (by_prefix["revoked"], by_hash["revoked"]) == (True, None)

    def refresh(token: str) -> int:
        return requests.post(f"{google.url}/token", data={
            "grant_type": "refresh_token", "refresh_token": token, "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET}, timeout=10).status_code

    assert refresh(newest) == 400  # reported revoked, so revoked
    assert refresh(older) == 200  # the grant and its other tokens live on (and revoke=False kept it)


def test_tokens_revoked_ends_the_grant(google, ctl, receiver):
    ctl.set_risc_stream(receiver.url)
    refresh_token = sign_in(google)["refresh_token"]

    sent = ctl.risc_event("tokens-revoked", sub=ALICE)

    assert sent["revoked"] is True
    assert ctl.state()["grants"] == []
    assert requests.post(f"{google.url}/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET}, timeout=10).json()["error"] == "invalid_grant"


def test_events_only_about_users_who_granted_email_or_profile(google, ctl, receiver):
    ctl.set_risc_stream(receiver.url)
    sign_in(google, BOB, scopes=APPDATA)

    def push(**who) -> requests.Response:
        return requests.post(f"{google.url}/_control/risc/events",
                             json={"type": "sessions-revoked", **who}, timeout=10)

    assert push(sub=BOB).status_code == 409
    assert push(email="nobody@example.com").status_code == 404
    sign_in(google, BOB, scopes="email")
    assert push(sub=BOB).status_code == 200
    ctl.revoke_grant(BOB)
    assert push(sub=BOB).status_code == 200  # having revoked does not stop the events
    assert len(ctl.risc_deliveries()) == 2


# Negative tests for receivers


@pytest.mark.parametrize(("forgery", "why"), [
    ("wrong_kid", "unknown kid"), ("no_kid", "no kid"), ("unknown_key", "unknown kid"),
    ("wrong_aud", "aud"), ("wrong_iss", "iss"), ("alg_none", "alg none"), ("hs256", "alg HS256"),
    ("garbage", "malformed"),
])
def test_forged_sets_fail_a_receivers_checks(google, ctl, receiver, forgery, why):
    sign_in(google)
    ctl.set_risc_stream(receiver.url)

    sent = ctl.risc_event("sessions-revoked", sub=ALICE, forgery=forgery)

    assert ctl.risc_wait(sent["jti"])["acked"]
    assert receiver.bodies() == [sent["token"]]
    with pytest.raises(Rejected, match=why):
        verify_set(google, sent["token"], [CLIENT_ID])


def test_an_exp_in_the_past_does_not_invalidate_a_set(google, ctl, receiver):
    sign_in(google)
    ctl.set_risc_stream(receiver.url)

    sent = ctl.risc_event("sessions-revoked", sub=ALICE, forgery="exp_in_past")

    _, claims = verify_set(google, sent["token"], [CLIENT_ID])
    assert claims["exp"] < time.time() - 3600
    with pytest.raises(Exception, match="[Ee]xpired"):
        jwt.decode(sent["token"], certs=requests.get(f"{google.url}/oauth2/v1/certs", timeout=10).json(),
                   audience=CLIENT_ID)  # a verifier that checks exp refuses it: receivers must not


def test_raw_sets_are_delivered_as_given(google, ctl, receiver):
    ctl.set_risc_stream(receiver.url)
    claims = {"iss": "https://accounts.google.com/", "aud": CLIENT_ID, "iat": int(time.time()),
              "jti": "RAW-1", "events": {SESSIONS_REVOKED: {"subject": {"subject_type": "iss-sub",
                                                                           "iss": "https://accounts.google.com/",
                                                                           "sub": ALICE}}}}

    signed = ctl.risc_raw(claims=claims)
    no_kid = ctl.risc_raw(claims={**claims, "jti": "RAW-2"}, header={"kid": None})
    verbatim = ctl.risc_raw("a.b")

    assert ctl.risc_wait("RAW-1")["acked"] and ctl.risc_wait("RAW-2")["acked"]
    assert ctl.risc_wait(verbatim["delivery"]["id"])["acked"]
    assert receiver.bodies() == [signed["token"], no_kid["token"], "a.b"]
    assert verify_set(google, signed["token"], [CLIENT_ID])[1] == claims
    with pytest.raises(Rejected, match="no kid"):
        verify_set(google, no_kid["token"], [CLIENT_ID])
    duplicate = requests.post(f"{google.url}/_control/risc/raw", json={"claims": claims}, timeout=10)
    assert duplicate.status_code == 400


def test_resend_delivers_a_duplicate_with_the_same_jti(google, ctl, receiver):
    sign_in(google)
    ctl.set_risc_stream(receiver.url)
    sent = ctl.risc_event("sessions-revoked", sub=ALICE)
    ctl.risc_wait(sent["jti"])

    copy = ctl.risc_resend(sent["jti"])

    assert copy["id"] == f"{sent['jti']}~2" and copy["jti"] == sent["jti"]
    assert ctl.risc_wait(copy["id"])["acked"]
    assert receiver.bodies() == [sent["token"], sent["token"]]


def test_sets_follow_key_rotation(google, ctl, receiver):
    sign_in(google)
    ctl.set_risc_stream(receiver.url)
    before = ctl.risc_event("sessions-revoked", sub=ALICE)

    rotated = ctl.rotate_keys()
    after = ctl.risc_event("sessions-revoked", sub=ALICE)

    kid = lambda token: json.loads(b64url_decode(token.split(".")[0]))["kid"]  # noqa: E731
    assert kid(after["token"]) == rotated["kid"] != kid(before["token"])
    for sent in (before, after):  # the previous key stays published
        verify_set(google, sent["token"], [CLIENT_ID])


# Service accounts and the control API


def test_the_key_file_works_with_google_auth_and_the_published_certificate(google, ctl, key_file):
    credentials = service_account.Credentials.from_service_account_info(
        key_file, scopes=[AUTH + "risc.configuration.readonly"])
    credentials.refresh(google_requests.Request())
    assert credentials.token.startswith("ya29.") and credentials.valid

    certs = requests.get(key_file["client_x509_cert_url"], timeout=10).json()
    claims = jwt.decode(sa_jwt(key_file), certs=certs, audience=RISC_AUDIENCE)
    assert claims["iss"] == key_file["client_email"] and list(certs) == [key_file["private_key_id"]]
    assert key_file["type"] == "service_account" and key_file["project_id"] == PROJECT


def test_a_public_key_can_be_registered_instead(google, ctl, receiver):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    email = "own-key@risc-app.iam.gserviceaccount.com"
    registered = ctl.service_account(email, public_key_pem=public_pem)
    assert "key_file" not in registered and registered["project_id"] == PROJECT
    own = {"private_key": private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()).decode(),
           "private_key_id": registered["key_id"], "client_email": email}

    assert risc_call(google, "POST", "stream:update", sa_jwt(own), stream_body(receiver.url)).status_code == 200


@pytest.mark.parametrize(("changes", "error", "description"), [
    ({"aud": "https://example.com/token"}, "invalid_grant", "Invalid JWT: Failed audience check."),
    ({"scope": None}, "invalid_scope", "Invalid OAuth scope or ID token audience provided."),
    ({"exp": int(time.time()) - 10}, "invalid_grant", None),
    ({"iss": "nobody@risc-app.iam.gserviceaccount.com"}, "invalid_grant", "Invalid JWT Signature."),
])
def test_jwt_bearer_grant_errors(google, ctl, key_file, changes, error, description):
    signer = crypt.RSASigner.from_service_account_info(key_file)
    now = int(time.time())
    claims = {"iss": key_file["client_email"], "aud": key_file["token_uri"], "iat": now, "exp": now + 3600,
              "scope": AUTH + "risc.verify", **changes}
    assertion = jwt.encode(signer, {k: v for k, v in claims.items() if v is not None}).decode()

    response = requests.post(f"{google.url}/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}, timeout=10)

    assert response.status_code == 400
    assert response.json()["error"] == error
    if description:
        assert response.json()["error_description"] == description


def test_reset_forgets_streams_and_deliveries_but_keeps_service_accounts(google, ctl, key_file, receiver):
    sign_in(google)
    ctl.set_risc_stream(receiver.url)
    ctl.risc_event("sessions-revoked", sub=ALICE)
    ctl.risc_settings(max_attempts=9)

    ctl.reset()

    assert ctl.risc_stream() is None and ctl.risc_deliveries() == []
    assert ctl.risc_settings()["max_attempts"] == 5
    assert key_file["client_email"] in [a["email"] for a in ctl.service_accounts()]


@pytest.mark.parametrize(("path", "body"), [
    ("risc/events", {"type": "password-changed", "sub": ALICE}),
    ("risc/events", {"type": "sessions-revoked", "sub": ALICE, "reason": "hijacking"}),
    ("risc/events", {"type": "account-disabled", "sub": ALICE, "reason": "bored"}),
    ("risc/events", {"type": "sessions-revoked", "sub": ALICE, "forgery": "rot13"}),
    ("risc/events", {"type": "sessions-revoked", "sub": ALICE, "subject_type": "email"}),
    ("risc/events", {"type": "verification", "client_id": "nope.apps.googleusercontent.com"}),
    ("risc/events", {"type": "token-revoked", "sub": ALICE, "token_identifier_alg": "sha1"}),
    ("risc/settings", {"max_attempts": 0}),
    ("risc/settings", {"allow_http_receivers": "sometimes"}),
    ("risc/settings", {"retries": 3}),
    ("risc/stream", {"url": "http://receiver.internal/"}),
    ("risc/raw", {}),
    ("service-accounts", {"email": "someone@example.com"}),
    ("service-accounts", {"project_id": PROJECT, "public_key_pem": "not a key"}),
])
def test_risc_control_rejects_bad_input(google, ctl, path, body):
    sign_in(google)  # so that only the field named is wrong

    response = requests.post(f"{google.url}/_control/{path}", json=body, timeout=10)

    assert response.status_code == 400, response.text
    assert response.json()["error"]
    assert ctl.risc_deliveries() == [] and ctl.risc_stream() is None
    assert ctl.risc_settings()["max_attempts"] == 5


def test_waiting_for_an_unknown_delivery_is_404(google, ctl):
    response = requests.post(f"{google.url}/_control/risc/wait", json={"id": "NOPE"}, timeout=10)
    assert response.status_code == 404
