"""The error tree: one root, and the attributes that replace `isinstance` ladders."""

import pytest

from offline_access import errors


def all_classes(root=errors.OfflineAccessError):
    found = [root]
    for sub in root.__subclasses__():
        found.extend(all_classes(sub))
    return found


def test_every_error_of_the_module_descends_from_the_one_root():
    module_errors = [obj for obj in vars(errors).values()
                     if isinstance(obj, type) and issubclass(obj, Exception)]
    assert set(module_errors) == set(all_classes())


def test_the_docstring_draws_every_class():
    for cls in all_classes():
        assert cls.__name__ in errors.__doc__


@pytest.mark.parametrize("error,retryable,outage,reason,status", [
    (errors.Unavailable("x", dependency="firestore"), True, True, "firestore_unavailable", 503),
    (errors.GoogleUnavailable("x", retry_after=3), True, True, "google_unavailable", 503),
    (errors.Misconfigured("fix"), False, True, "misconfigured", 500),
    (errors.ConfigError("Set X."), False, True, "misconfigured", 500),
    (errors.UpstreamInvalid("x"), False, False, "upstream_invalid", 502),
    (errors.ApiRefused(403, "forbidden"), False, False, "http_403", 502),
    (errors.GrantRevoked("invalid_grant"), False, False, "needs_reauth", 409),
    (errors.SealError("x"), False, False, "needs_reauth", 409),
    (errors.CodeRejected("x"), False, False, "code_rejected", 400),
    (errors.DomainNotAllowed(), False, False, "domain_not_allowed", 403),
    # Per-user failures are never outages: they never count toward the job's breaker.
    (errors.IdTokenRejected("x"), False, False, "upstream_invalid", 502),
    (errors.RefreshRefused("invalid_request", 400), False, False, "refresh_refused", 502),
    (errors.InvalidScope(), False, False, "refresh_refused", 502),
    (errors.SealingKeyGone(), False, False, "needs_reauth", 409),
    (errors.DeadlineReached(), True, False, "deadline_reached", 503),
    (errors.SecretVersionGone("fix"), False, True, "misconfigured", 500),
])
def test_attributes(error, retryable, outage, reason, status):
    assert (error.retryable, error.outage, error.reason, error.status) == \
        (retryable, outage, reason, status)
    assert set(error.body()) == {"error", "message"}


def test_domain_not_allowed_is_a_client_error():
    assert isinstance(errors.DomainNotAllowed(), errors.ClientError)


def test_a_misconfiguration_shows_clients_nothing_of_the_fix():
    error = errors.Misconfigured("Grant roles/secretmanager.secretAccessor on projects/p/secrets/s.")
    assert "projects/p" not in error.message and "projects/p" not in str(error)
    assert "projects/p" in error.fix


def test_a_refused_security_event_token_speaks_rfc_8935_too():
    error = errors.SecurityEventRejected("The token names no key.", code="no_key_id", err="invalid_key")
    assert isinstance(error, errors.ClientError) and error.status == 400 and not error.outage
    assert error.body() == {"error": "no_key_id", "message": "The token names no key.",
                            "err": "invalid_key", "description": "The token names no key."}
