"""Ending the grant of a user the job may no longer serve: revoke at Google, then delete.

The job disconnects a user whose Workspace domain (`hd`) has been removed from
`ALLOWED_HOSTED_DOMAINS` since they signed in (`decision.domain_allowed`). Revoking comes
first and deleting second (`JobStore.finish` deletes when the decision says `disconnect`), so a
grant is never left alive at Google with no document that knows of it:

- revoked, or Google says the token is already dead: the user is disconnected;
- the token cannot be opened (its key is gone, or it is damaged): nothing here can revoke it,
  and the document is deleted anyway; the log line says `grant_revoked: false`;
- Google or Secret Manager unavailable: the error is the attempt's, so the user is deferred
  and the next run tries again.

This is the job's stand-in for the account lifecycle's one revoke-and-delete primitive
(`accounts/`), which replaces `end_grant` when it lands.
"""

from __future__ import annotations

from typing import Any

from ..errors import OfflineAccessError, UnreadableToken
from ..googleapis.token_endpoint import revoke_grant
from ..store.job_claims import DueUser
from .backoff import Retrier
from .context import JobDependencies
from .decision import Attempt


def end_grant(deps: JobDependencies, user: DueUser, retrier: Retrier, log: dict[str, Any]) -> Attempt:
    """Revoke the user's grant; an `Attempt` that says the document may now be deleted.

    Never raises: a failure becomes the attempt's error.
    """
    try:
        token = deps.sealer.open(user.data.get("refresh_token"), sub=user.sub, field="refresh_token")
    except UnreadableToken:
        log["grant_revoked"] = False
        return Attempt(disconnected=True)
    except OfflineAccessError as exc:
        return Attempt(error=exc)
    try:
        revoked = retrier.call(lambda: revoke_grant(
            deps.session, deps.endpoints.revoke, token,
            timeout=retrier.timeout(deps.config.http_timeout_seconds)))
    except OfflineAccessError as exc:
        return Attempt(error=exc)
    # False: Google already considered the token dead; either way no grant is left.
    log["grant_revoked"] = revoked
    return Attempt(disconnected=True)
