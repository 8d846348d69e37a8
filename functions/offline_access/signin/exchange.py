"""Steps 5 to 7 of the flow: turn a browser's one-time code into a signed-in user.

Read the client secret, exchange the code at Google's token endpoint, verify the ID token, seal
the tokens and store them under the verified `sub`, then tell the page who is signed in and
which permissions it has (`accounts.view`: the answer of `GET /api/me`), with the document's
session generation for the session cookie that the HTTP layer sets. Everything that can fail
without spending the code (the secret, the sealing, session and log keys) is done before the
exchange.

Once Google has issued tokens, only a *final* rejection revokes them: the account's domain is
not allowed, or the ID token's signature or claims are wrong (`IdTokenRejected`). Revoking
ends the user's whole grant at Google, including a refresh token an earlier sign-in stored, so
nothing that may succeed on a retry ever does it: a certificate outage (the signature check is
then skipped, see `id_token`), Firestore unavailable, or a write whose answer was lost (it may
have been applied) answer 503 with `Retry-After` and leave the grant alone. A new user whose
first write failed leaves a grant nobody holds until their next sign-in stores one.

Reference: https://developers.google.com/identity/sign-in/web/server-side-flow
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ..accounts.sessions import CookiePolicy, SessionCodec
from ..accounts.view import account_body
from ..dependencies import SharedDependencies
from ..errors import DomainNotAllowed, IdTokenRejected
from ..googleapis.certificates import CertificateCache
from ..googleapis.token_endpoint import TokenResponse, exchange_code, revoke
from ..scopes import missing_scopes
from ..store.users import PROFILE_FIELDS, SignInRecord, session_generation
from .id_token import verify_id_token
from .prefetch import ColdStartPrefetch
from .request_guard import SignInRequest

# The rejections after which the tokens Google issued must not live on.
FINAL_REJECTIONS = (DomainNotAllowed, IdTokenRejected)


@dataclass(kw_only=True)
class ExchangeDependencies(SharedDependencies):
    """Everything `complete_sign_in` talks to, built once per instance."""

    certificates: CertificateCache
    prefetch: ColdStartPrefetch
    sessions: SessionCodec
    cookies: CookiePolicy


@dataclass(frozen=True)
class SignInResult:
    """The answer for the page (step 7, "fully signed in"), and what the log line needs.

    `signature_checked` is False when the ID token's signature was skipped because Google's
    certificates could not be fetched (its claims were checked).
    """

    body: dict[str, Any]
    user: str
    created: bool
    sub: str = field(repr=False)
    session_generation: int = 0
    signature_checked: bool = True
    # A new refresh token's keyed identifiers (`store.refresh_token_ids`): `stored`, or
    # `skipped_key_unavailable` when their key could not be read; None when none apply.
    refresh_token_ids: str | None = None


def complete_sign_in(request: SignInRequest, deps: ExchangeDependencies) -> SignInResult:
    """Exchange the code, verify the user, and store their sealed tokens.

    Raises:
        OfflineAccessError: a subclass saying what went wrong and how to answer; `revoked` is set
            on it when tokens had been issued and were revoked because of a final rejection.
    """
    config = deps.config
    deps.prefetch.start()
    client_secret = deps.prefetch.client_secret()
    tokens = exchange_code(
        deps.http,
        deps.endpoints.token,
        client_id=config.client_id,
        client_secret=client_secret,
        code=request.code,
        redirect_uri=config.redirect_uri,
        timeout=config.http_timeout_seconds,
    )
    try:
        return _keep(tokens, deps)
    except FINAL_REJECTIONS as exc:
        exc.revoked = _revoke_new_grant(tokens, deps)
        raise


def warm_up(deps: ExchangeDependencies) -> None:
    """A new instance's first work (`ColdStartPrefetch.warm_up`)."""
    deps.prefetch.warm_up()


def _revoke_new_grant(tokens: TokenResponse, deps: ExchangeDependencies) -> bool:
    # Without a new refresh token there is no new grant to end, and revoking the access token
    # would also kill the refresh token an earlier sign-in stored.
    if tokens.refresh_token is None:
        return False
    return revoke(
        deps.http,
        deps.endpoints.revoke,
        tokens.refresh_token,
        timeout=deps.config.http_timeout_seconds,
    )


def _keep(tokens: TokenResponse, deps: ExchangeDependencies) -> SignInResult:
    config = deps.config
    assert tokens.id_token is not None  # exchange_code guarantees it
    verified = verify_id_token(
        tokens.id_token,
        deps.certificates,
        client_id=config.client_id,
        allowed_hosted_domains=config.allowed_hosted_domains,
        from_token_endpoint=True,
    )
    claims = verified.claims
    sub = claims["sub"]
    now = deps.now()
    sealed_refresh = (
        deps.sealer.seal(tokens.refresh_token, sub=sub, field="refresh_token")
        if tokens.refresh_token
        else None
    )
    refresh_expires_at = (
        now + dt.timedelta(seconds=tokens.refresh_token_expires_in)
        if tokens.refresh_token and tokens.refresh_token_expires_in is not None
        else None
    )
    token_ids = (deps.token_ids.of_token_if_available(tokens.refresh_token)
                 if tokens.refresh_token and deps.token_ids is not None else None)
    record = SignInRecord(
        sub=sub,
        profile={name: claims.get(name) for name in PROFILE_FIELDS},
        granted_scopes=tokens.scopes,
        sealed_refresh_token=sealed_refresh,
        sealed_access_token=deps.sealer.seal(tokens.access_token, sub=sub, field="access_token"),
        access_token_expires_at=now + dt.timedelta(seconds=tokens.expires_in),
        refresh_token_expires_at=refresh_expires_at,
        refresh_token_ids=token_ids,
    )
    outcome = deps.store.record_sign_in(record, now)
    if outcome.created:
        # What the create wrote: no read needed for a new user.
        stored: dict[str, Any] = {
            **record.profile, "status": outcome.status, "granted_scopes": list(tokens.scopes),
            "created_at": now, "signed_in_at": now, "next_run_at": now,
        }
    else:
        stored = deps.store.get(sub) or {}
    generation = (outcome.session_generation if outcome.session_generation is not None
                  else session_generation(stored))
    body = account_body(sub, stored, config.scopes)
    # This sign-in's own result, whatever a concurrent write may have left in the document.
    body.update(offline_access=outcome.offline_access, granted_scopes=list(tokens.scopes),
                missing_scopes=missing_scopes(config.scopes, tokens.scopes))
    return SignInResult(body=body, user=deps.user_refs.ref(sub), created=outcome.created,
                        sub=sub, session_generation=generation,
                        signature_checked=verified.signature_checked,
                        refresh_token_ids=_ids_outcome(tokens, deps, token_ids))


def _ids_outcome(tokens: TokenResponse, deps: ExchangeDependencies,
                 token_ids: dict[str, str] | None) -> str | None:
    if not tokens.refresh_token or deps.token_ids is None:
        return None
    return "stored" if token_ids is not None else "skipped_key_unavailable"
