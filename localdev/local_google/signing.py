"""Google's signing keys and the ID tokens signed with them.

The key ring publishes RS256 keys in both of Google's formats: `/oauth2/v1/certs` maps each
`kid` to a self-signed X.509 certificate in PEM (what google-auth's `jwt.decode(certs=...)`
reads), `/oauth2/v3/certs` is a JWKS. Rotation adds a new signing key and keeps the previous
one published until the next rotation, as Google does, so tokens in flight still verify.

ID tokens can be minted deliberately wrong (`ID_TOKEN_MODES`) for negative tests. Their
`iat`/`exp` use the real time, not the injectable clock: the verifier runs on the real clock.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

ISSUER = "https://accounts.google.com"
BARE_ISSUER = "accounts.google.com"
ID_TOKEN_LIFETIME = 3600

ID_TOKEN_MODES = (
    "normal",
    "bare_iss",  # iss without the scheme, which Google also uses
    "expired",
    "wrong_aud",
    "wrong_iss",
    "unknown_key",  # signed by a key that is not published
    "alg_none",
    "hs256",  # HMAC keyed with the published public key: the alg-confusion attack
    "no_sub",
)
WRONG_AUDIENCE = "wrong-audience.apps.googleusercontent.com"
WRONG_ISSUER = "https://accounts.example.com"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64url(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def at_hash(access_token: str) -> str:
    """OIDC `at_hash`: the left half of SHA-256 of the access token, base64url."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return b64url(digest[:16])


def self_signed_certificate(key: rsa.RSAPrivateKey, common_name: str, days: int) -> str:
    """A PEM certificate for the key, valid from yesterday for `days` days.

    X.509 caps a common name at 64 characters; a longer one (a service account's email with a
    long project id) is cut there.
    """
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    cert_pem: str
    public_pem: bytes
    jwk: dict

    @classmethod
    def generate(cls) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        # Google's kids are 40 hex digits.
        kid = secrets.token_hex(20)
        numbers = key.public_key().public_numbers()
        return cls(
            kid=kid,
            private_key=key,
            cert_pem=self_signed_certificate(key, "federated-signon.system.gserviceaccount.com", days=14),
            public_pem=key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            jwk={
                "kty": "RSA",
                "alg": "RS256",
                "use": "sig",
                "kid": kid,
                "n": _int_b64url(numbers.n),
                "e": _int_b64url(numbers.e),
            },
        )

    def sign(self, signing_input: bytes) -> bytes:
        return self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())


class KeyRing:
    """The current signing key plus the previous one, and their published documents."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._unknown: SigningKey | None = None
        self._published: tuple[SigningKey, ...] = ()
        self._v1 = b"{}"
        self._v3 = b'{"keys": []}'
        self.rotate()

    def rotate(self) -> SigningKey:
        """Makes a new key current; the old current key stays published, older ones go."""
        new = SigningKey.generate()  # slow (RSA keygen): outside the lock
        with self._lock:
            self._published = (new, *self._published[:1])
            self._v1 = json.dumps({k.kid: k.cert_pem for k in self._published}, indent=2).encode()
            self._v3 = json.dumps({"keys": [k.jwk for k in self._published]}, indent=2).encode()
        return new

    @property
    def current(self) -> SigningKey:
        return self._published[0]

    @property
    def kids(self) -> list[str]:
        return [k.kid for k in self._published]

    def v1_certs(self) -> bytes:
        return self._v1

    def v3_certs(self) -> bytes:
        return self._v3

    def unknown_key(self) -> SigningKey:
        """A key that is never published, for `unknown_key` tokens."""
        with self._lock:
            if self._unknown is None:
                self._unknown = SigningKey.generate()
            return self._unknown


def encode_jwt(header: dict, payload: dict, key: SigningKey | None, alg: str = "RS256") -> str:
    """Compact JWS. `alg` RS256 signs with `key`; HS256 uses the key's public PEM as secret."""
    header = {"alg": alg, **header}
    segments = [
        b64url(json.dumps(header, separators=(",", ":")).encode()),
        b64url(json.dumps(payload, separators=(",", ":")).encode()),
    ]
    signing_input = ".".join(segments).encode("ascii")
    if alg == "none":
        signature = b""
    elif alg == "HS256":
        assert key is not None
        signature = hmac.new(key.public_pem, signing_input, hashlib.sha256).digest()
    else:
        assert key is not None
        signature = key.sign(signing_input)
    return ".".join([*segments, b64url(signature)])


def mint_id_token(keys: KeyRing, claims: dict, client_id: str, access_token: str, mode: str) -> str:
    """Signs an ID token for `claims` (user claims incl. `sub`) in the given mode.

    Args:
        keys: the key ring; the current key signs.
        claims: `sub`, email and profile claims already filtered by scope.
        client_id: the audience and authorised party.
        access_token: the access token issued alongside, for `at_hash`.
        mode: one of `ID_TOKEN_MODES`.
    """
    now = int(time.time())
    payload = {
        "iss": BARE_ISSUER if mode == "bare_iss" else ISSUER,
        "azp": client_id,
        "aud": client_id,
        **claims,
        "at_hash": at_hash(access_token),
        "iat": now,
        "exp": now + ID_TOKEN_LIFETIME,
    }
    if mode == "expired":
        payload["iat"], payload["exp"] = now - 2 * ID_TOKEN_LIFETIME, now - ID_TOKEN_LIFETIME
    elif mode == "wrong_aud":
        payload["aud"] = WRONG_AUDIENCE
    elif mode == "wrong_iss":
        payload["iss"] = WRONG_ISSUER
    elif mode == "no_sub":
        payload.pop("sub", None)

    key = keys.unknown_key() if mode == "unknown_key" else keys.current
    alg = {"alg_none": "none", "hs256": "HS256"}.get(mode, "RS256")
    return encode_jwt({"kid": key.kid, "typ": "JWT"}, payload, key, alg)
