"""Cloud Functions entry points: adapt HTTP to the plain modules of `offline_access`."""

import flask
import functions_framework

from offline_access import http_adapter, wiring
from offline_access.accounts import api as account
from offline_access.risc import receiver as risc
from offline_access.signin import exchange
from offline_access.structured_log import configure_python_logging
from offline_access.tokenapi import api as tokens

configure_python_logging()
_exchange = wiring.Lazy(wiring.build_exchange_dependencies)
wiring.warm_up_in_each_worker("exchange_code", _exchange, exchange.warm_up)


@functions_framework.http
def exchange_code(request: flask.Request) -> flask.Response:
    """Receive a one-time code from the sign-in page and keep the user's tokens."""
    return http_adapter.handle_exchange(request, _exchange.get)


_job = wiring.Lazy(wiring.build_job_dependencies)


@functions_framework.http
def run_offline_job(request: flask.Request) -> flask.Response:
    """Called by Cloud Scheduler: process every due user with their offline access."""
    return http_adapter.handle_offline_job(request, _job.get)


_accounts = wiring.Lazy(wiring.build_account_dependencies)
wiring.warm_up_in_each_worker("account_api", _accounts, account.warm_up)


@functions_framework.http
def account_api(request: flask.Request) -> flask.Response:
    """The account API on the page's origin: /api/me, sign-in attempts, sign-out, disconnect."""
    return http_adapter.handle_account_api(request, _accounts.get)


_disconnect = wiring.Lazy(wiring.build_disconnect_dependencies)


@functions_framework.http
def disconnect_user(request: flask.Request) -> flask.Response:
    """Internal (IAM): revoke a user's grant at Google and delete every record of them."""
    return http_adapter.handle_disconnect_user(request, _disconnect.get)


_worker = wiring.Lazy(wiring.build_worker)


@functions_framework.http
def run_offline_worker(request: flask.Request) -> flask.Response:
    """Called by the work topic's push subscription: process one message's users."""
    return http_adapter.handle_worker_push(request, _worker.get)


_risc = wiring.Lazy(wiring.build_risc_dependencies)
wiring.warm_up_in_each_worker("risc_receiver", _risc, risc.warm_up)


@functions_framework.http
def risc_receiver(request: flask.Request) -> flask.Response:
    """Public: Google's Cross-Account Protection pushes security event tokens here."""
    return http_adapter.handle_risc_receiver(request, _risc.get)


_tokens = wiring.Lazy(wiring.build_token_api_dependencies)
wiring.warm_up_in_each_worker("token_api", _tokens, tokens.warm_up)


@functions_framework.http
def token_api(request: flask.Request) -> flask.Response:
    """For the app's backend (IAM): a user's access token now, and who a session cookie is."""
    return http_adapter.handle_token_api(request, _tokens.get)
