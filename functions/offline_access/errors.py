"""The exceptions the flow raises, and how each maps to an HTTP answer.

Each error carries a machine `code`, a sentence a person understands, and the HTTP status the
entry point answers with. Messages never contain codes, tokens, secrets or keys: they are shown
to clients and written to logs as they are.
"""

from __future__ import annotations


class FlowError(Exception):
    """Base class: something the entry point answers with a JSON error body."""

    status = 500
    code = "internal_error"
    retry_after: int | None = None
    revoked = False  # set when tokens issued by Google were revoked because they could not be kept

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


class ClientError(FlowError):
    """The request itself is wrong: 4xx, nothing was changed."""

    status = 400
    code = "invalid_request"


class CodeRejected(ClientError):
    """Google refused the one-time code (`invalid_grant`): the page must start sign-in again."""

    code = "code_rejected"


class Unavailable(FlowError):
    """A dependency (Secret Manager, Firestore, Google) failed or timed out: retry later."""

    status = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: int = 5, dependency: str = ""):
        super().__init__(message)
        self.retry_after = retry_after
        self.dependency = dependency


class UpstreamInvalid(FlowError):
    """Google answered with something we must not trust or cannot use."""

    status = 502
    code = "upstream_invalid"


class Misconfigured(FlowError):
    """The deployment is wrong (client id/secret, redirect URI, secret names): an operator must act.

    `message` is what the client sees; `fix` is the operator-facing sentence logged at ERROR.
    """

    status = 500
    code = "server_misconfigured"

    def __init__(self, fix: str):
        super().__init__("The server is misconfigured. The operator has been told what to fix.")
        self.fix = fix


class GrantRevoked(Exception):
    """A refresh token is dead (`invalid_grant`): the user must sign in again."""

    def __init__(self, reason: str, description: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.description = description


class TransientUpstreamError(Exception):
    """Google answered 429/5xx or timed out: retry with backoff."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after
