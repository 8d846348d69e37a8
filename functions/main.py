"""Cloud Functions entry points: adapt HTTP to the plain modules of `offline_access`."""

import functions_framework

from offline_access import code_exchange, http_api, runtime
from offline_access.structured_log import configure_python_logging

configure_python_logging()
_exchange = runtime.Lazy(runtime.build_exchange_dependencies)
runtime.warm_up_in_each_worker("exchange_code", _exchange, code_exchange.warm_up)


@functions_framework.http
def exchange_code(request):
    """Receive a one-time code from the sign-in page and keep the user's tokens."""
    return http_api.handle_exchange(request, _exchange.get)


_job = runtime.Lazy(runtime.build_job_dependencies)


@functions_framework.http
def run_offline_job(request):
    """Called by Cloud Scheduler: process every due user with their offline access."""
    return http_api.handle_offline_job(request, _job.get)
