"""Steps 5 to 7 of the flow: turn a browser's one-time code into a signed-in user.

Read the client secret, exchange the code at Google's token endpoint, verify the ID token, seal
the tokens and store them under the verified `sub`, then tell the page who is signed in and
which permissions it has. Everything that can fail without spending the code (the secret, the
sealing key) is done before the exchange. Once Google has issued tokens, any failure to keep
them revokes the new grant, so that no grant is left that nobody holds.

Reference: https://developers.google.com/identity/sign-in/web/server-side-flow
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from .config import Config
from .errors import ClientError, FlowError
from .google_endpoints import GoogleEndpoints
from .id_token_verifier import CertificateCache, DomainNotAllowed, verify_id_token
from .request_guard import SignInRequest
from .secret_source import SecretSource
from .structured_log import user_ref
from .token_endpoint import TokenResponse, exchange_code, revoke
from .token_sealing import TokenSealer
from .user_store import PROFILE_FIELDS, SignInRecord, UserStore

_SCOPE_ALIASES = {
    "email": "https://www.googleapis.com/auth/userinfo.email",
    "profile": "https://www.googleapis.com/auth/userinfo.profile",
}


def normalize_scope(scope: str) -> str:
    """Google reports `email`/`profile` under their long names; compare scopes in that form."""
    return _SCOPE_ALIASES.get(scope, scope)


def missing_scopes(configured: tuple[str, ...], granted: tuple[str, ...]) -> list[str]:
    """The configured scopes the user did not grant (they may untick them on the consent screen)."""
    have = {normalize_scope(s) for s in granted}
    return [s for s in configured if normalize_scope(s) not in have]


@dataclass
class ExchangeDependencies:
    """Everything `complete_sign_in` talks to, built once per instance."""

    config: Config
    endpoints: GoogleEndpoints
    secrets: SecretSource
    sealer: TokenSealer
    session: requests.Session
    certificates: CertificateCache
    store: UserStore
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)
    background: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=3, thread_name_prefix="prefetch")
    )


@dataclass(frozen=True)
class SignInResult:
    """The answer for the page (step 7, "fully signed in"), and what the log line needs."""

    body: dict[str, Any]
    user: str
    created: bool


def complete_sign_in(request: SignInRequest, deps: ExchangeDependencies) -> SignInResult:
    """Exchange the code, verify the user, and store their sealed tokens.

    Raises:
        FlowError: a subclass saying what went wrong and how to answer; `revoked` is set on it
            when tokens had been issued and were revoked because they could not be kept.
    """
    config = deps.config
    _prefetch(deps)
    if deps.secrets.is_cached(config.client_secret_version):
        deps.sealer.check_ready()
        client_secret = deps.secrets.get(config.client_secret_version).data.decode()
    else:  # a cold instance: read the secret and the sealing key at the same time
        secret = deps.background.submit(deps.secrets.get, config.client_secret_version)
        deps.sealer.check_ready()
        client_secret = secret.result().data.decode()
    tokens = exchange_code(
        deps.session,
        deps.endpoints.token,
        client_id=config.client_id,
        client_secret=client_secret,
        code=request.code,
        redirect_uri=config.redirect_uri,
        timeout=config.http_timeout_seconds,
    )
    try:
        return _keep(tokens, deps)
    except FlowError as exc:
        exc.revoked = _revoke_new_grant(tokens, deps)
        raise
    except DomainNotAllowed as exc:
        error = ClientError(
            "This Google account's organisation may not sign in here. Use an allowed account.",
            code="domain_not_allowed",
            status=403,
        )
        error.revoked = _revoke_new_grant(tokens, deps)
        raise error from exc


def warm_up(deps: ExchangeDependencies) -> None:
    """A new instance's first work, done before its first sign-in needs it.

    Raises whatever a step raises (`FlowError`s): the sign-in repeats the step and answers it.
    """
    _prefetch(deps)
    deps.secrets.get(deps.config.client_secret_version)
    deps.sealer.check_ready()


def _prefetch(deps: ExchangeDependencies) -> None:
    """Start what the request will need later while Google works on the code.

    On a cold instance this overlaps the certificate download and the database connection with
    the token exchange. Failures are ignored here: the step that needs the result retries it and
    reports the error properly.
    """
    if deps.certificates.stale():
        deps.background.submit(deps.certificates.certs_for, None)
    if not deps.store.connect_attempted:
        deps.store.connect_attempted = True  # before submitting: concurrent requests race here
        deps.background.submit(deps.store.connect)


def _revoke_new_grant(tokens: TokenResponse, deps: ExchangeDependencies) -> bool:
    # Without a new refresh token there is no new grant to orphan, and revoking the access token
    # would also kill the refresh token an earlier sign-in stored.
    if tokens.refresh_token is None:
        return False
    return revoke(
        deps.session,
        deps.endpoints.revoke,
        tokens.refresh_token,
        timeout=deps.config.http_timeout_seconds,
    )


def _keep(tokens: TokenResponse, deps: ExchangeDependencies) -> SignInResult:
    config = deps.config
    assert tokens.id_token is not None  # exchange_code guarantees it
    claims = verify_id_token(
        tokens.id_token,
        deps.certificates,
        client_id=config.client_id,
        allowed_hosted_domains=config.allowed_hosted_domains,
    )
    sub = claims["sub"]
    now = deps.now()
    sealed_refresh = (
        deps.sealer.seal(tokens.refresh_token, sub=sub, field="refresh_token")
        if tokens.refresh_token
        else None
    )
    record = SignInRecord(
        sub=sub,
        profile={name: claims.get(name) for name in PROFILE_FIELDS},
        granted_scopes=tokens.scopes,
        sealed_refresh_token=sealed_refresh,
        sealed_access_token=deps.sealer.seal(tokens.access_token, sub=sub, field="access_token"),
        access_token_expires_at=now + dt.timedelta(seconds=tokens.expires_in),
    )
    outcome = deps.store.record_sign_in(record, now)
    user = {"sub": sub}
    user.update({name: claims.get(name) for name in PROFILE_FIELDS})
    body = {
        "status": "signed_in",
        "user": user,
        "offline_access": outcome.offline_access,
        "granted_scopes": list(tokens.scopes),
        "missing_scopes": missing_scopes(config.scopes, tokens.scopes),
    }
    return SignInResult(body=body, user=user_ref(sub), created=outcome.created)
