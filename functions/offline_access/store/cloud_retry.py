"""How calls to Secret Manager and Firestore are retried: briefly, and only when it can help.

The client libraries' default retries last up to a minute, longer than a person waits for a
sign-in. Both stores use this bounded policy instead: transient errors only, exponential from
0.1 s to 1 s, within the call's own timeout.
"""

from __future__ import annotations

from google.api_core import exceptions as api_exceptions
from google.api_core import retry as api_retry

TRANSIENT_ERRORS = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.DeadlineExceeded,
    api_exceptions.InternalServerError,
    api_exceptions.TooManyRequests,
    api_exceptions.ResourceExhausted,
    api_exceptions.Aborted,
)


def bounded_retry(timeout: float) -> api_retry.Retry:
    """A retry of transient errors that gives up after `timeout` seconds."""
    return api_retry.Retry(
        predicate=api_retry.if_exception_type(*TRANSIENT_ERRORS),
        initial=0.1,
        maximum=1.0,
        multiplier=2.0,
        timeout=timeout,
    )
