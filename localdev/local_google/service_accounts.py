"""Service accounts of the local Google's projects: their keys, and the credentials they sign.

Google knows a service account's public keys because it made them. The local Google cannot know
a real account's, so the control API registers one (email, project, roles) with a public key, or
generates a key pair and hands back the private key in Google's JSON key-file format, which
`google.oauth2.service_account.Credentials.from_service_account_info` and
`google.auth.crypt.RSASigner.from_service_account_info` read.

A caller authenticates as a service account as it does at Google, either way:

- a self-signed JWT (`iss` = `sub` = the email, `aud` = the API's audience, `kid` = the key id,
  RS256, `exp` at most one hour after `iat`): `verify_self_signed_jwt`;
- an access token from `POST /token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`
  and an assertion whose `scope` claim names the scopes: `exchange_assertion`.

JWT times are checked against the real clock, because the caller signs with its own; the access
tokens' one-hour lifetime runs on the injectable clock, like users' tokens.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions as google_exceptions
from google.auth import jwt as google_jwt

from .clock import Clock
from .oauth_state import ACCESS_TOKEN_LIFETIME, OAuthError
from .signing import self_signed_certificate

RISC_ADMIN_ROLE = "roles/riscconfigs.admin"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ID_TOKEN_LIFETIME = 3600
MAX_JWT_LIFETIME = 3600
# Allowance for the caller's clock running a little ahead of ours.
CLOCK_SKEW = 300
PROJECT_FROM_EMAIL = re.compile(r"^[^@\s]+@([a-z0-9-]+)\.iam\.gserviceaccount\.com$")
# Observed wording of Google's token endpoint for bad assertions (not documented by Google).
BAD_SIGNATURE = "Invalid JWT Signature."
BAD_TIMES = ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
             "timeframe. Check your iat and exp values in the JWT claim.")
BAD_AUDIENCE = "Invalid JWT: Failed audience check."
NO_SCOPE = "Invalid OAuth scope or ID token audience provided."


class ServiceAccountAuthError(Exception):
    """A service-account credential that does not authenticate; the message says why."""


@dataclass(slots=True)
class ServiceAccount:
    email: str
    project_id: str
    roles: list[str]
    unique_id: str
    # kid -> public key (PEM) and, for keys generated here, a self-signed certificate (PEM).
    public_keys: dict[str, bytes] = field(default_factory=dict)
    certificates: dict[str, str] = field(default_factory=dict)

    def public(self) -> dict:
        return {
            "email": self.email,
            "project_id": self.project_id,
            "roles": list(self.roles),
            "unique_id": self.unique_id,
            "key_ids": list(self.public_keys),
        }


@dataclass(slots=True)
class ServiceAccountToken:
    token: str
    email: str
    scopes: frozenset[str]
    expires_at: float


def _unique_id() -> str:
    return "1" + "".join(secrets.choice("0123456789") for _ in range(20))


class ServiceAccounts:
    """Registered service accounts and the access tokens issued to them. Thread-safe."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._accounts: dict[str, ServiceAccount] = {}
        self._tokens: dict[str, ServiceAccountToken] = {}

    def reset_tokens(self) -> None:
        """Forgets issued access tokens; the accounts and their keys are configuration."""
        with self._lock:
            self._tokens.clear()

    # Registration (control API)

    def register(
        self,
        email: str | None,
        project_id: str | None,
        roles: list[str] | None,
        public_key_pem: str | None,
        base_url: str,
    ) -> tuple[ServiceAccount, str, dict | None]:
        """Creates the account (or adds a key to it) and returns (account, key id, key file).

        Without `public_key_pem` a key pair is generated and the key file (with the private
        key) is returned; with one, the key file is None. Raises ValueError for bad input.
        """
        if email is None:
            if not project_id:
                raise ValueError("a service account needs `email` or `project_id`")
            email = f"risc-admin@{project_id}.iam.gserviceaccount.com"
        if "@" not in email:
            raise ValueError("`email` must be an email address")
        if project_id is None:
            match = PROJECT_FROM_EMAIL.match(email)
            if match is None:
                raise ValueError("`project_id` is required unless the email is NAME@PROJECT.iam.gserviceaccount.com")
            project_id = match.group(1)
        kid = secrets.token_hex(20)
        key_file = None
        certificate = None
        if public_key_pem is None:
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            public_pem = private_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            certificate = self_signed_certificate(private_key, email, days=3650)
            private_pem = private_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode("ascii")
        else:
            try:
                loaded = serialization.load_pem_public_key(public_key_pem.encode())
            except ValueError as exc:
                raise ValueError("`public_key_pem` is not a PEM public key") from exc
            if not isinstance(loaded, rsa.RSAPublicKey):
                raise ValueError("`public_key_pem` must be an RSA key (service-account JWTs are RS256)")
            public_pem = public_key_pem.encode()
        with self._lock:
            account = self._accounts.get(email)
            if account is None:
                account = ServiceAccount(email, project_id, list(roles if roles is not None else [RISC_ADMIN_ROLE]),
                                         _unique_id())
                self._accounts[email] = account
            else:
                account.project_id = project_id
                if roles is not None:
                    account.roles = list(roles)
            account.public_keys[kid] = public_pem
            if certificate is not None:
                account.certificates[kid] = certificate
        if public_key_pem is None:
            key_file = {
                "type": "service_account",
                "project_id": project_id,
                "private_key_id": kid,
                "private_key": private_pem,
                "client_email": email,
                "client_id": account.unique_id,
                "auth_uri": f"{base_url}/o/oauth2/auth",
                "token_uri": f"{base_url}/token",
                "auth_provider_x509_cert_url": f"{base_url}/oauth2/v1/certs",
                "client_x509_cert_url": f"{base_url}/robot/v1/metadata/x509/{quote(email)}",
                "universe_domain": "googleapis.com",
            }
        return account, kid, key_file

    def delete_key(self, kid: str) -> bool:
        """Deletes a key, as `gcloud iam service-accounts keys delete` does; True if it existed."""
        with self._lock:
            for account in self._accounts.values():
                if account.public_keys.pop(kid, None) is not None:
                    account.certificates.pop(kid, None)
                    return True
        return False

    def get(self, email: str | None) -> ServiceAccount | None:
        return self._accounts.get(email) if email else None

    def accounts(self) -> list[ServiceAccount]:
        with self._lock:
            return list(self._accounts.values())

    def certificates(self, email: str) -> dict[str, str] | None:
        """`{kid: certificate PEM}` of the account's generated keys (Google's x509 metadata)."""
        account = self.get(email)
        return dict(account.certificates) if account else None

    # Authentication

    def _verified_claims(self, token: str) -> tuple[ServiceAccount, dict]:
        """Checks the JWT's signature against the key its `iss` and `kid` name."""
        try:
            header = google_jwt.decode_header(token)
            claims = google_jwt.decode(token, verify=False)
        except (ValueError, TypeError, google_exceptions.GoogleAuthError) as exc:
            raise ServiceAccountAuthError("not a JWT") from exc
        account = self.get(claims.get("iss") if isinstance(claims.get("iss"), str) else None)
        if account is None:
            raise ServiceAccountAuthError("unknown service account")
        if header.get("alg") != "RS256":
            raise ServiceAccountAuthError("the JWT must be signed with RS256")
        kid = header.get("kid")
        if kid is not None and kid not in account.public_keys:
            raise ServiceAccountAuthError("unknown key id")
        try:
            # Times are checked below with Google's own rules, so the library skips them.
            google_jwt.decode(token, certs=dict(account.public_keys), clock_skew_in_seconds=10**10)
        except (ValueError, google_exceptions.GoogleAuthError) as exc:
            raise ServiceAccountAuthError("bad signature") from exc
        return account, claims

    @staticmethod
    def _check_times(claims: dict) -> None:
        iat, exp = claims.get("iat"), claims.get("exp")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (iat, exp)):
            raise ServiceAccountAuthError("`iat` and `exp` are required")
        now = time.time()
        if iat > now + CLOCK_SKEW or exp <= now or exp - iat > MAX_JWT_LIFETIME:
            raise ServiceAccountAuthError("expired, not yet valid, or valid for more than one hour")

    def verify_self_signed_jwt(self, token: str, audience: str) -> ServiceAccount:
        """The account a self-signed JWT for `audience` authenticates. Raises ServiceAccountAuthError."""
        account, claims = self._verified_claims(token)
        if claims.get("sub") != account.email:
            raise ServiceAccountAuthError("`sub` must equal `iss`, the service account's email")
        if claims.get("aud") != audience:
            raise ServiceAccountAuthError(f"`aud` must be {audience}")
        self._check_times(claims)
        return account

    def verified_assertion(self, assertion: str, audiences: set[str]) -> tuple[ServiceAccount, dict]:
        """The account and claims of a JWT-bearer assertion checked as Google's token endpoint does.

        Raises OAuthError with the token endpoint's answer for a bad assertion.
        """
        try:
            account, claims = self._verified_claims(assertion)
        except ServiceAccountAuthError as exc:
            raise OAuthError(400, "invalid_grant", BAD_SIGNATURE) from exc
        if claims.get("sub") not in (None, account.email):
            # Domain-wide delegation (acting as a user) is not modelled.
            raise OAuthError(400, "unauthorized_client",
                             "Client is unauthorized to retrieve access tokens using this method, "
                             "or client not authorized for any of the scopes requested.")
        if claims.get("aud") not in audiences:
            raise OAuthError(400, "invalid_grant", BAD_AUDIENCE)
        try:
            self._check_times(claims)
        except ServiceAccountAuthError as exc:
            raise OAuthError(400, "invalid_grant", BAD_TIMES) from exc
        return account, claims

    def exchange_assertion(self, assertion: str, audiences: set[str]) -> tuple[ServiceAccountToken, int]:
        """The JWT-bearer grant: an access token for the assertion's scopes, and its `expires_in`.

        Raises OAuthError with the token endpoint's answer for a bad assertion.
        """
        account, claims = self.verified_assertion(assertion, audiences)
        scope = claims.get("scope")
        scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
        if not scopes:
            raise OAuthError(400, "invalid_scope", NO_SCOPE)
        record = ServiceAccountToken(
            "ya29.c.c0" + secrets.token_urlsafe(96), account.email, scopes,
            self.clock.now() + ACCESS_TOKEN_LIFETIME,
        )
        with self._lock:
            self._tokens[record.token] = record
        return record, ACCESS_TOKEN_LIFETIME - 1

    def id_token_claims(self, assertion: str, audiences: set[str]) -> dict | None:
        """The claims of the ID token Google issues for an assertion with `target_audience`
        (what `google.oauth2.id_token.fetch_id_token` asks for with a key file), or None when
        the assertion asks for an access token instead.

        Raises OAuthError with the token endpoint's answer for a bad assertion.
        """
        account, claims = self.verified_assertion(assertion, audiences)
        audience = claims.get("target_audience")
        if audience is None:
            return None
        if not isinstance(audience, str) or not audience:
            raise OAuthError(400, "invalid_scope", NO_SCOPE)
        now = int(time.time())  # verified by google-auth against the real clock, like ID tokens
        return {"aud": audience, "azp": account.unique_id, "email": account.email,
                "email_verified": True, "sub": account.unique_id, "iat": now,
                "exp": now + ID_TOKEN_LIFETIME}

    def access_token(self, token: str) -> ServiceAccountToken | None:
        """The live service-account access token, or None."""
        record = self._tokens.get(token)
        if record is None or self.clock.now() >= record.expires_at:
            return None
        return record
