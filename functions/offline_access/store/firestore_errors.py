"""How a Firestore failure reaches the flows: one mapping, applied to every public store method.

Inside a store method, the client library's own exceptions are visible, so a method can act on
the answers it expects (`AlreadyExists` of a create, `FailedPrecondition` of a write guarded by
an update time, `NotFound`). Whatever else escapes a method decorated with
`maps_firestore_errors` becomes `Unavailable(dependency="firestore")`: the flows see one error,
whose message says nothing about documents or queries.

Every call also gets the same bounded retry and timeout (`RETRY`, `TIMEOUT_SECONDS`), far
shorter than the library's default minute.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from google.api_core import exceptions as api_exceptions

from ..errors import Unavailable
from .cloud_retry import bounded_retry

TIMEOUT_SECONDS = 5.0
RETRY = bounded_retry(TIMEOUT_SECONDS)

P = ParamSpec("P")
R = TypeVar("R")


def firestore_unavailable() -> Unavailable:
    """The error a flow sees for any Firestore failure."""
    return Unavailable(
        "The server's database is unavailable. Try again shortly.", dependency="firestore"
    )


def maps_firestore_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Turn the client library's errors escaping `method` into `Unavailable`."""

    @functools.wraps(method)
    def mapped(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (api_exceptions.GoogleAPICallError, api_exceptions.RetryError) as exc:
            raise firestore_unavailable() from exc

    return mapped
