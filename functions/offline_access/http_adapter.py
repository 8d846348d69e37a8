"""The HTTP face of the functions: requests in, JSON answers and one log line out.

This is where HTTP meets the flows: preflight and CSRF checks, the capped body, Cloud
Scheduler's headers, the mapping of each `OfflineAccessError` to a status code and a JSON body
`{"error", "message"}`, `Retry-After` on 503, and the request's single structured log line. A
client's mistake never becomes a 5xx, and no answer or log line carries a code, token or secret.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import flask
from werkzeug.datastructures import Headers

from .config import MODE_PUBSUB
from .errors import ClientError, Misconfigured, OfflineAccessError, Unavailable
from .messaging.push import MAX_BODY_BYTES as MAX_PUSH_BYTES
from .messaging.push import PushDelivery
from .offline.context import JobDependencies
from .offline.dispatch import dispatch_run
from .offline.run import run_offline_job
from .offline.worker import Worker
from .signin.exchange import ExchangeDependencies, complete_sign_in
from .signin.request_guard import (
    MAX_BODY_BYTES,
    check_post_headers,
    check_preflight,
    cors_headers,
    parse_body,
)
from .structured_log import emit, trace_field

_SCHEDULE_TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{5,20}(Z|[+-][0-9]{2}:?[0-9]{2})?$")
_JOB_NAME = re.compile(r"^[A-Za-z0-9_./\-]{1,500}$")

_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Type": "application/json",
}


def json_response(status: int, body: dict[str, Any], headers: dict[str, str]) -> flask.Response:
    response = flask.Response(json.dumps(body), status=status)
    response.headers.update(_SECURITY_HEADERS)
    response.headers.update(headers)
    return response


def _error_answer(
    exc: OfflineAccessError, headers: dict[str, str], log: dict[str, Any]
) -> tuple[int, dict[str, str]]:
    """Status and body for an `OfflineAccessError`, with its `Retry-After` and log fields added."""
    log["error"] = exc.code
    if isinstance(exc, Unavailable):
        headers["Retry-After"] = str(math.ceil(exc.retry_after or 5))
        log["dependency"] = exc.dependency
    if isinstance(exc, Misconfigured):
        log["fix"] = exc.fix
    return exc.status, exc.body()


def _severity(status: int) -> str:
    # 503 is an expected, retried condition; other 5xx need an operator.
    if status >= 500 and status != 503:
        return "ERROR"
    return "WARNING" if status >= 400 else "INFO"


def _read_capped_body(request: flask.Request) -> bytes:
    # Never read more than one byte past the cap, whatever the client declares.
    return request.stream.read(MAX_BODY_BYTES + 1)


def handle_exchange(
    request: flask.Request, get_deps: Callable[[], ExchangeDependencies]
) -> flask.Response:
    """Answer one request to the `exchange_code` function.

    `get_deps` returns the instance's dependencies; building them does no I/O, so every check
    of the request still happens before any call to Secret Manager, Google or Firestore.
    """
    started = time.perf_counter()
    log: dict[str, Any] = {"event": "exchange_code", "method": request.method}
    origin = request.headers.get("Origin")
    headers: dict[str, str] = {"Vary": "Origin"}
    body: dict[str, Any] | None
    try:
        deps = get_deps()
        log.update(trace_field(deps.config.project, request.headers.get("X-Cloud-Trace-Context")))
        origins = deps.config.allowed_origins
        if request.method == "OPTIONS":
            headers = check_preflight(request.headers, origins)
            status, body = 204, None
        elif request.method != "POST":
            headers["Allow"] = "POST, OPTIONS"
            raise ClientError(
                "Use POST to send the sign-in code.", code="method_not_allowed", status=405
            )
        else:
            headers = cors_headers(origin, origins)
            check_post_headers(request.headers, origins)
            sign_in = parse_body(request.headers.get("Content-Type"), _read_capped_body(request))
            result = complete_sign_in(sign_in, deps)
            status, body = 200, result.body
            log.update(user=result.user, new_user=result.created,
                       offline_access=body["offline_access"],
                       missing_scopes=body["missing_scopes"])
    except OfflineAccessError as exc:
        status, body = _error_answer(exc, headers, log)
        log["tokens_revoked"] = exc.revoked
    log.update(status=status, duration_ms=round((time.perf_counter() - started) * 1000, 1))
    outcome = "signed in" if status == 200 else (body or {}).get("error", "preflight")
    emit(_severity(status), f"exchange_code: {outcome}", outcome=outcome, **log)
    if body is None:
        response = flask.Response(status=status)
        response.headers.update(headers)
        return response
    return json_response(status, body, headers)


def run_id_from_headers(headers: Mapping[str, str] | Headers) -> str:
    """The run id: the same for every delivery of one Cloud Scheduler schedule time.

    `X-CloudScheduler-JobName` + `@` + `X-CloudScheduler-ScheduleTime`; `schedule@<time>` without
    a job name, and `manual-<random>` without either.

    Raises:
        ClientError: the scheduler headers are present but malformed.
    """
    schedule_time = (headers.get("X-CloudScheduler-ScheduleTime") or "").strip()
    if not schedule_time:
        return "manual-" + uuid.uuid4().hex
    if not _SCHEDULE_TIME.match(schedule_time):
        raise ClientError("X-CloudScheduler-ScheduleTime is not an RFC 3339 time.")
    job_name = (headers.get("X-CloudScheduler-JobName") or "").strip()
    if job_name and not _JOB_NAME.match(job_name):
        raise ClientError("X-CloudScheduler-JobName is malformed.")
    return f"{job_name}@{schedule_time}" if job_name else f"schedule@{schedule_time}"


def handle_offline_job(
    request: flask.Request, get_deps: Callable[[], JobDependencies]
) -> flask.Response:
    """Answer one request to the `run_offline_job` function: run the job, return its summary.

    Who may call is decided before the request gets here (internal ingress, and `run.invoker`
    for Cloud Scheduler's service account only, which checks its OIDC token). The body is
    ignored; the run id comes from Cloud Scheduler's headers. The run logs its own line (and one
    per user); this function logs only requests that did not start a run.
    """
    started = time.perf_counter()
    log: dict[str, Any] = {"event": "offline_job", "method": request.method}
    headers: dict[str, str] = {}
    try:
        deps = get_deps()
        trace = trace_field(deps.config.project, request.headers.get("X-Cloud-Trace-Context"))
        log.update(trace)
        if request.method != "POST":
            headers["Allow"] = "POST"
            raise ClientError("Use POST to run the job.", code="method_not_allowed", status=405)
        run_id = run_id_from_headers(request.headers)
        if deps.config.job_mode == MODE_PUBSUB:
            dispatched = dispatch_run(deps, run_id, log_fields=trace)
            return json_response(200, dispatched.body(), headers)
        summary = run_offline_job(deps, run_id, log_fields=trace)
        return json_response(200, summary.body(), headers)
    except OfflineAccessError as exc:
        status, body = _error_answer(exc, headers, log)
    log.update(status=status, duration_ms=round((time.perf_counter() - started) * 1000, 1))
    emit(_severity(status), f"offline job: {body['error']}", outcome=body["error"], **log)
    return json_response(status, body, headers)


def handle_worker_push(request: flask.Request, get_worker: Callable[[], Worker]) -> flask.Response:
    """Answer one Pub/Sub push delivery to the `run_offline_worker` function.

    2xx acknowledges the message; any other status makes Pub/Sub redeliver it with its retry
    policy, and forward it to the dead-letter topic after the last attempt. So: 200 when the
    message was processed (users deferred included), 400 for a message that is not ours (it
    ends in the dead-letter topic, for an operator to look at), 503 or 500 when the delivery
    must be tried again. Who may push is decided before the request gets here: the push
    subscription's OIDC token, checked by Cloud Run (`run.invoker` for the push identity only).
    The worker logs the message's line; this function logs only deliveries it refused.
    """
    started = time.perf_counter()
    log: dict[str, Any] = {"event": "offline_job_message", "method": request.method}
    headers: dict[str, str] = {}
    try:
        worker = get_worker()
        trace = trace_field(worker.deps.config.project, request.headers.get("X-Cloud-Trace-Context"))
        log.update(trace)
        if request.method != "POST":
            headers["Allow"] = "POST"
            raise ClientError("Pub/Sub pushes with POST.", code="method_not_allowed", status=405)
        delivery = PushDelivery.from_body(request.stream.read(MAX_PUSH_BYTES + 1))
        log.update(message_id=delivery.message_id, delivery_attempt=delivery.delivery_attempt)
        try:
            summary = worker.handle(delivery, log_fields=trace)
        except ClientError:
            raise  # not a work message: logged below
        except OfflineAccessError as exc:
            # The worker logged the message's line; answer without a second one.
            status, body = _error_answer(exc, headers, {})
            return json_response(status, body, headers)
        return json_response(200, summary.body(), headers)
    except OfflineAccessError as exc:
        status, body = _error_answer(exc, headers, log)
    log.update(status=status, duration_ms=round((time.perf_counter() - started) * 1000, 1))
    # A message that is not ours points at a bug or a foreign publisher: an operator should look.
    severity = "ERROR" if body["error"] in ("invalid_push", "invalid_message") else _severity(status)
    emit(severity, f"offline job message refused: {body['error']}", outcome=body["error"], **log)
    return json_response(status, body, headers)
