"""Service-account keys and the JWT-bearer grant that turns them into Google-signed ID tokens.

One function calling another on Cloud Run authenticates with an ID token whose audience is the
callee's URL. In production google-auth's `id_token.fetch_id_token` gets it from the metadata
server; with `GOOGLE_APPLICATION_CREDENTIALS` naming a service-account key file, it signs a JWT
with the key and sends it to the key file's `token_uri` (RFC 7523, with Google's
`target_audience` claim), and Google answers `{"id_token": ...}`. This module is that second
path: `create_key` makes a key file whose `token_uri` is the local Google, and
`ServiceAccounts.id_token_for` checks an assertion the way Google does and mints the ID token,
signed with the same keys as users' ID tokens (so `/oauth2/v1/certs` verifies both).

Checks, in order, each a 400 `invalid_grant` like Google's (descriptions as observed; the
exact wording of the audience and time errors is unverified):

| check | `error_description` |
|---|---|
| not a three-part JWT, or unreadable header or claims | `Invalid JWT Signature.` |
| `alg` other than RS256, unknown `kid`, or a bad signature | `Invalid JWT Signature.` |
| `iss` is not the key's service account | `Invalid JWT Signature.` |
| `aud` is not `https://oauth2.googleapis.com/token` | `Invalid JWT: Failed audience check.` |
| `iat`/`exp` missing, `exp` passed, `iat` in the future, or lifetime over an hour | `BAD_TIME` below |
| no `target_audience` (an access-token assertion, not served here) | 400 `invalid_request` |

Reference: https://developers.google.com/identity/protocols/oauth2/service-account#jwt-auth ;
google-auth `google/oauth2/service_account.py` (`IDTokenCredentials`) and `_client.id_token_jwt_grant`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .oauth_state import OAuthError
from .signing import ISSUER, KeyRing, encode_jwt

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# google-auth always puts Google's own token URL in `aud`, whatever the key file's token_uri.
TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
MAX_ASSERTION_LIFETIME = 3600
ID_TOKEN_LIFETIME = 3600
CLOCK_SKEW = 300

BAD_SIGNATURE = "Invalid JWT Signature."
BAD_AUDIENCE = "Invalid JWT: Failed audience check."
BAD_TIME = ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
            "timeframe. Check your iat and exp values in the JWT claim.")


def unique_id(email: str) -> str:
    """A stable 21-digit numeric id for a service account, shaped like Google's."""
    digest = int.from_bytes(hashlib.sha256(b"sa|" + email.lower().encode()).digest()[:16], "big")
    return "1" + str(digest % 10**20).zfill(20)


@dataclass(frozen=True, slots=True)
class _Key:
    email: str
    public_key: rsa.RSAPublicKey


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _bad(description: str = BAD_SIGNATURE) -> OAuthError:
    return OAuthError(400, "invalid_grant", description)


class ServiceAccounts:
    """The service-account keys this local Google knows, by key id."""

    def __init__(self) -> None:
        self._keys: dict[str, _Key] = {}
        self._lock = threading.Lock()

    def create_key(self, email: str, token_uri: str, project_id: str = "local-project") -> dict:
        """A new key for `email`: the JSON key file `gcloud iam service-accounts keys create` writes,
        with `token_uri` pointing at this server."""
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        with self._lock:
            self._keys[key_id] = _Key(email, private_key.public_key())
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        return {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": unique_id(email),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" + email,
            "universe_domain": "googleapis.com",
        }

    def delete_key(self, key_id: str) -> bool:
        """Forget a key (as deleting it in IAM does); assertions signed with it then fail."""
        with self._lock:
            return self._keys.pop(key_id, None) is not None

    def id_token_for(self, assertion: str, keys: KeyRing, now: float | None = None) -> str:
        """Check a JWT-bearer assertion and mint the ID token it asks for (see the module's table).

        Raises:
            OAuthError: the assertion fails a check.
        """
        now = time.time() if now is None else now
        parts = assertion.split(".")
        if len(parts) != 3:
            raise _bad()
        try:
            header = json.loads(_b64decode(parts[0]))
            claims = json.loads(_b64decode(parts[1]))
            signature = _b64decode(parts[2])
        except (ValueError, binascii.Error):
            raise _bad() from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise _bad()
        with self._lock:
            key = self._keys.get(str(header.get("kid")))
        if header.get("alg") != "RS256" or key is None:
            raise _bad()
        try:
            key.public_key.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"),
                                  padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise _bad() from None
        if claims.get("iss") != key.email:
            raise _bad()
        if claims.get("aud") != TOKEN_AUDIENCE:
            raise _bad(BAD_AUDIENCE)
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, (int, float)) or not isinstance(exp, (int, float)):
            raise _bad(BAD_TIME)
        if exp <= now - CLOCK_SKEW or iat > now + CLOCK_SKEW or exp - iat > MAX_ASSERTION_LIFETIME:
            raise _bad(BAD_TIME)
        audience = claims.get("target_audience")
        if not isinstance(audience, str) or not audience:
            raise OAuthError(400, "invalid_request",
                             "Only ID tokens (target_audience) are issued for service accounts here.")
        issued = int(now)
        payload = {
            "iss": ISSUER,
            "aud": audience,
            "azp": unique_id(key.email),
            "sub": unique_id(key.email),
            "email": key.email,
            "email_verified": True,
            "iat": issued,
            "exp": issued + ID_TOKEN_LIFETIME,
        }
        signing_key = keys.current
        return encode_jwt({"kid": signing_key.kid, "typ": "JWT"}, payload, signing_key)
