"""The HTTP face of the functions: requests in, JSON answers and one log line out.

This is where HTTP meets the flows: preflight and CSRF checks, the capped body read within a
deadline, Cloud Scheduler's headers, the `__session` cookie (read, and set by the exchange and the
account API), the mapping of each `OfflineAccessError` to a status code and a JSON body
`{"error", "message"}`, `Retry-After` on 503, and the request's single structured log line. A
client's mistake never becomes a 5xx, and no answer or log line carries a code, token, secret,
key or cookie.

Reading the body is bounded: a body shorter than its `Content-Length`, or one that stalls,
answers 408 once `REQUEST_BODY_TIMEOUT_SECONDS` have passed (the socket's timeout is set for the
read, so the worker thread is freed), and a malformed chunked body answers 400; after either, the
connection is read no further, so the server closes it once the answer is sent. An unexpected
exception (a bug) answers 500 JSON, never the server's HTML page.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec

import flask
from werkzeug.datastructures import Headers

from .accounts import api as account_api
from .accounts import lifecycle
from .accounts.sessions import COOKIE_NAME, CookieState, Session, bind_state
from .config import MODE_PUBSUB
from .dependencies import SharedDependencies
from .errors import (
    ClientError,
    GrantError,
    Misconfigured,
    OfflineAccessError,
    SecurityEventRejected,
    Unavailable,
)
from .messaging.push import MAX_BODY_BYTES as MAX_PUSH_BYTES
from .messaging.push import PushDelivery
from .offline.context import JobDependencies
from .offline.dispatch import dispatch_run
from .offline.run import run_offline_job, run_one_user
from .offline.worker import Worker
from .risc import receiver as risc_receiver
from .signin.exchange import ExchangeDependencies, complete_sign_in
from .signin.request_guard import (
    MAX_BODY_BYTES,
    check_post_headers,
    check_preflight,
    cors_headers,
    parse_body,
)
from .structured_log import emit, trace_field
from .tokenapi import api as token_api

_SCHEDULE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{5,20}(Z|[+-][0-9]{2}:?[0-9]{2})?")
_JOB_NAME = re.compile(r"[A-Za-z0-9_./\-]{1,500}")
_SUB = re.compile(r"[A-Za-z0-9_.\-]{1,255}")
# The request's socket, under the servers functions-framework runs on (gunicorn, Werkzeug's).
_SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")
_READ_CHUNK = 1024

# A security event token is about 1 KB; Google sends one event per token.
RISC_MAX_BODY_BYTES = 16 * 1024
# The receiver's outcomes that changed an account: logged at NOTICE, like the disconnect's audit.
_RISC_CHANGES = frozenset({"sessions_ended", "tokens_deleted", "token_deleted", "disconnect_requested",
                           "suspended", "restored", "notice_set"})

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


P = ParamSpec("P")
INTERNAL_ERROR = {"error": "internal_error",
                  "message": "Something went wrong on the server. Try again later."}


def answers_json_on_bugs(event: str) -> Callable[[Callable[P, flask.Response]], Callable[P, flask.Response]]:
    """A handler's unexpected exception (a bug) answers 500 JSON, never the server's HTML page,
    and logs one line with the exception's type only (its message may quote request data)."""

    def decorate(handler: Callable[P, flask.Response]) -> Callable[P, flask.Response]:
        @functools.wraps(handler)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> flask.Response:
            try:
                return handler(*args, **kwargs)
            except Exception as exc:
                logging.getLogger(__name__).exception("%s failed unexpectedly", event)
                emit("ERROR", f"{event}: internal_error", event=event, status=500,
                     outcome="internal_error", exception_type=type(exc).__name__)
                return json_response(500, dict(INTERNAL_ERROR), {})
        return guarded
    return decorate


def _severity(status: int) -> str:
    # 503 is an expected, retried condition; other 5xx need an operator.
    if status >= 500 and status != 503:
        return "ERROR"
    return "WARNING" if status >= 400 else "INFO"


class _BodySocket:
    """The request's socket as the body read needs it: a timeout per read, and an end to reading.

    Under an in-process server (Flask's test client) there is no socket, and nothing can stall.
    """

    def __init__(self, request: flask.Request) -> None:
        self._sock = next((request.environ[k] for k in _SOCKET_KEYS
                           if isinstance(request.environ.get(k), socket.socket)), None)
        self._previous = self._sock.gettimeout() if self._sock is not None else None

    def set_timeout(self, seconds: float) -> None:
        if self._sock is not None:
            self._sock.settimeout(max(seconds, 0.001))

    def restore(self) -> None:
        if self._sock is not None:
            try:
                self._sock.settimeout(self._previous)
            except OSError:
                pass  # already closed

    def stop_reading(self) -> None:
        """Read nothing more from this connection: the server sees its end and closes it after
        the answer, instead of waiting on (or parsing) the rest of a body we gave up on."""
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass


def _read_capped_body(request: flask.Request, timeout: float, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, at most one byte past `limit` whatever the client declares, within `timeout`.

    Raises:
        ClientError: 408 when the body did not arrive in time, 400 when it is malformed (a
            broken chunked encoding, or the client went away before sending all of it).
    """
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    body_socket = _BodySocket(request)
    try:
        while size <= limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            body_socket.set_timeout(remaining)
            chunk = request.stream.read(min(_READ_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except TimeoutError:
        body_socket.stop_reading()
        raise ClientError(f"The request body did not arrive within {timeout:g} seconds.",
                          code="request_timeout", status=408) from None
    except Exception:  # gunicorn's and Werkzeug's parse errors share no base class but Exception
        body_socket.stop_reading()
        raise ClientError("The request body is malformed or incomplete.",
                          code="malformed_body") from None
    finally:
        body_socket.restore()
    return b"".join(chunks)


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
            raw = _read_capped_body(request, deps.config.request_body_timeout_seconds)
            sign_in = parse_body(request.headers.get("Content-Type"), raw)
            # The state is checked against this browser's attempts before the code is spent.
            cookie, log["state"] = bind_state(
                deps.sessions.open(request.cookies.get(COOKIE_NAME)), sign_in.state)
            result = complete_sign_in(sign_in, deps)
            status, body = 200, result.body
            headers["Set-Cookie"] = _session_cookie(deps.sessions, deps.cookies, cookie, result.sub,
                                                    result.session_generation)
            log.update(user=result.user, new_user=result.created,
                       offline_access=body["offline_access"],
                       missing_scopes=body["missing_scopes"])
            if not result.signature_checked:
                log["id_token_signature"] = "skipped_certificates_unavailable"
            if result.refresh_token_ids is not None:
                log["refresh_token_ids"] = result.refresh_token_ids
    except OfflineAccessError as exc:
        status, body = _error_answer(exc, headers, log)
        log["tokens_revoked"] = exc.revoked
    except Exception as exc:  # a bug: the JSON contract holds, and the log says what broke
        logging.getLogger(__name__).exception("exchange_code failed unexpectedly")
        status, body = 500, dict(INTERNAL_ERROR)
        log.update(error="internal_error", exception_type=type(exc).__name__)
    log.update(status=status, duration_ms=round((time.perf_counter() - started) * 1000, 1))
    outcome = "signed in" if status == 200 else (body or {}).get("error", "preflight")
    severity = _severity(status)
    if status == 200 and "id_token_signature" in log:
        severity = "WARNING"  # Google's certificates were down: the ID token's claims were checked
    if status == 200 and log.get("refresh_token_ids") == "skipped_key_unavailable":
        severity = "WARNING"  # stored without the identifiers a token-revoked event matches
    emit(severity, f"exchange_code: {outcome}", outcome=outcome, **log)
    if body is None:
        response = flask.Response(status=status)
        response.headers.update(headers)
        return response
    return json_response(status, body, headers)


def _session_cookie(sessions: Any, cookies: Any, cookie: CookieState, sub: str,
                    generation: int) -> str:
    """`Set-Cookie` for the session a sign-in starts; the browser's other attempts are kept."""
    now = sessions.now()
    state = CookieState(Session(sub, generation, now + cookies.session_lifetime), cookie.attempts)
    return str(cookies.header(sessions.seal(state), cookies.max_age(state, now)))


_ACCOUNT_HANDLERS: dict[str, Callable[[account_api.AccountDependencies, str | None], account_api.Answer]] = {
    account_api.ME: account_api.me,
    account_api.SIGN_IN_ATTEMPTS: account_api.sign_in_attempt,
    account_api.SIGN_OUT: account_api.sign_out,
    account_api.SIGN_OUT_EVERYWHERE: account_api.sign_out_everywhere,
    account_api.DISCONNECT: account_api.disconnect,
}


@answers_json_on_bugs("account_api")
def handle_account_api(
    request: flask.Request, get_deps: Callable[[], account_api.AccountDependencies]
) -> flask.Response:
    """Answer one request to the `account_api` function (`accounts.api`'s routes under `/api/`).

    The routes serve the page's own origin only (Firebase Hosting rewrites `/api/**` here): no
    answer carries CORS headers, so no other origin can read one, and every POST needs
    `X-Requested-With` (which a cross-site form cannot send, and a cross-origin script only
    after a preflight this function refuses) and, when present, an allowlisted `Origin`.
    """
    started = time.perf_counter()
    path = request.path.rstrip("/") or "/"
    log: dict[str, Any] = {"event": "account_api", "method": request.method, "route": path}
    headers: dict[str, str] = {"Vary": "Origin"}
    try:
        deps = get_deps()
        log.update(trace_field(deps.config.project, request.headers.get("X-Cloud-Trace-Context")))
        method = account_api.ROUTES.get(path)
        if method is None:
            log["route"] = "unknown"
            raise ClientError("There is no such account route.", code="not_found", status=404)
        if request.method != method and not (method == "GET" and request.method == "HEAD"):
            headers["Allow"] = method
            raise ClientError(f"Use {method} for {path}.", code="method_not_allowed", status=405)
        if method == "POST":
            check_post_headers(request.headers, deps.config.allowed_origins)
        answer = _ACCOUNT_HANDLERS[path](deps, request.cookies.get(COOKIE_NAME))
        status, body = answer.status, answer.body
        if answer.cookie is not None:
            headers["Set-Cookie"] = answer.cookie
        if answer.user:
            log["user"] = answer.user
        log["outcome"] = body.get("status") or body.get("error") or "ok"
    except OfflineAccessError as exc:
        status, body = _error_answer(exc, headers, log)
        log["outcome"] = exc.code
    log.update(status=status, duration_ms=round((time.perf_counter() - started) * 1000, 1))
    emit(_severity(status) if status != 401 else "INFO", f"account api {path}: {log['outcome']}",
         **log)
    return json_response(status, body, headers)


@answers_json_on_bugs("disconnect_user")
def handle_disconnect_user(
    request: flask.Request, get_deps: Callable[[], SharedDependencies]
) -> flask.Response:
    """Answer one request to the internal `disconnect_user` function: revoke and delete a user.

    Who may call is decided before the request gets here: Cloud Run IAM admits only the service
    accounts of the account API and the RISC receiver (`run.invoker`), which send an ID token
    for this function's URL.
    Body: JSON `{"sub": ..., "requested_by"?: "user" | "operator" | "security_event"}`. 200 when nothing of the
    user is left, 202 when the disconnect is still pending (the next job run finishes it), with
    `lifecycle.DisconnectResult.body()`.
    """
    started = time.perf_counter()
    log: dict[str, Any] = {"event": "disconnect_user", "method": request.method}
    headers: dict[str, str] = {}
    try:
        deps = get_deps()
        log.update(trace_field(deps.config.project, request.headers.get("X-Cloud-Trace-Context")))
        if request.method != "POST":
            headers["Allow"] = "POST"
            raise ClientError("Use POST to disconnect a user.", code="method_not_allowed", status=405)
        sub, requested_by = _disconnect_request(request, deps.config.request_body_timeout_seconds)
        log["user"] = deps.user_refs.ref(sub)
        result = lifecycle.revoke_and_delete(deps, sub, requested_by=requested_by)
        status, body = (200 if result.finished else 202), result.body()
        log.update(outcome=result.outcome, revoked=result.revoked, error=result.error)
    except OfflineAccessError as exc:
        status, body = _error_answer(exc, headers, log)
        log["outcome"] = exc.code
    log.update(status=status, duration_ms=round((time.perf_counter() - started) * 1000, 1))
    emit(_severity(status), f"disconnect_user: {log['outcome']}", **log)
    return json_response(status, body, headers)


def _disconnect_request(request: flask.Request, timeout: float) -> tuple[str, str]:
    """The `sub` and who asked, from a JSON body.

    Raises:
        ClientError: 400 for anything else, 413 when too large.
    """
    try:
        document = _json_object(request, timeout)
    except ClientError as exc:
        if exc.status != 400:
            raise
        document = {}
    sub = document.get("sub")
    if not isinstance(sub, str) or not _SUB.fullmatch(sub):
        raise ClientError("Send a JSON object with the user's 'sub'.")
    requested_by = document.get("requested_by")
    if requested_by not in (None, lifecycle.REQUESTED_BY_USER, lifecycle.REQUESTED_BY_OPERATOR,
                            lifecycle.REQUESTED_BY_SECURITY_EVENT):
        raise ClientError("'requested_by' must be 'user', 'operator' or 'security_event'.")
    return sub, requested_by or lifecycle.REQUESTED_BY_USER


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
    if not _SCHEDULE_TIME.fullmatch(schedule_time):
        raise ClientError("X-CloudScheduler-ScheduleTime is not an RFC 3339 time.")
    job_name = (headers.get("X-CloudScheduler-JobName") or "").strip()
    if job_name and not _JOB_NAME.fullmatch(job_name):
        raise ClientError("X-CloudScheduler-JobName is malformed.")
    return f"{job_name}@{schedule_time}" if job_name else f"schedule@{schedule_time}"


def job_request(request: flask.Request, timeout: float) -> tuple[str | None, bool]:
    """What a run is asked to do, from the JSON body: `{}` (Cloud Scheduler: the due users),
    `{"user": SUB}` (that user now, due or not) or `{"all": true}` (every active user now).

    Raises:
        ClientError: 400 for a body that is not one of these (an empty body counts as `{}`).
    """
    raw = _read_capped_body(request, timeout)
    if len(raw) > MAX_BODY_BYTES:
        raise ClientError("The request body is too large.", code="payload_too_large", status=413)
    if not raw.strip():
        return None, False
    try:
        document = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        document = None
    if not isinstance(document, dict) or set(document) - {"user", "all"}:
        raise ClientError('The body must be {}, {"user": "<sub>"} or {"all": true}.')
    sub, everyone = document.get("user"), document.get("all", False)
    if (sub is not None and (not isinstance(sub, str) or not _SUB.fullmatch(sub))) \
            or not isinstance(everyone, bool) or (sub is not None and everyone):
        raise ClientError('The body must be {}, {"user": "<sub>"} or {"all": true}.')
    return sub, everyone


@answers_json_on_bugs("offline_job")
def handle_offline_job(
    request: flask.Request, get_deps: Callable[[], JobDependencies]
) -> flask.Response:
    """Answer one request to the `run_offline_job` function: run the job, return its summary.

    Who may call is decided before the request gets here (internal ingress, and `run.invoker`
    for Cloud Scheduler's service account only, which checks its OIDC token). The run id comes
    from Cloud Scheduler's headers; the body (`job_request`) may ask for one user or for every
    active user ahead of schedule. The run logs its own line (and one per user); this function
    logs only requests that did not start a run.
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
        sub, everyone = job_request(request, deps.config.request_body_timeout_seconds)
        run_id = run_id_from_headers(request.headers)
        if sub is not None:
            summary = run_one_user(deps, sub, run_id, log_fields=trace)
        elif deps.config.job_mode == MODE_PUBSUB and not everyone:
            # The scheduled run publishes the due users for the workers instead of doing them.
            dispatched = dispatch_run(deps, run_id, log_fields=trace)
            return json_response(200, dispatched.body(), headers)
        else:
            summary = run_offline_job(deps, run_id, log_fields=trace, everyone=everyone)
        return json_response(200, summary.body(), headers)
    except OfflineAccessError as exc:
        status, body = _error_answer(exc, headers, log)
    log.update(status=status, duration_ms=round((time.perf_counter() - started) * 1000, 1))
    emit(_severity(status), f"offline job: {body['error']}", outcome=body["error"], **log)
    return json_response(status, body, headers)


@answers_json_on_bugs("offline_job_message")
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


def handle_risc_receiver(
    request: flask.Request, get_deps: Callable[[], risc_receiver.RiscDependencies]
) -> flask.Response:
    """Answer one push of Google's Cross-Account Protection (RISC) transmitter.

    `POST` whose body is a security event token (`Content-Type: application/secevent+jwt`,
    not required). 202 `{"status": "accepted"}` once every event of it was acted on, or found
    acted on already (a redelivery); 400 `{"error", "message", "err", "description"}` for a
    token that is malformed, forged, not ours or too large, with RFC 8935's `err`; 503 when
    Google's keys or Firestore are unavailable, so that Google delivers it again; 405 for other
    methods. Public (Google calls it without credentials); it holds no key that opens tokens.
    Each event logs one line (`risc_receiver.receive`); a refused request logs one.
    """
    started = time.perf_counter()
    log: dict[str, Any] = {"event": "risc_receiver", "method": request.method}
    headers: dict[str, str] = {}
    lines: list[dict[str, Any]] = []
    trace: dict[str, str] = {}
    try:
        deps = get_deps()
        trace = trace_field(deps.config.project, request.headers.get("X-Cloud-Trace-Context"))
        log.update(trace)
        if request.method != "POST":
            headers["Allow"] = "POST"
            raise ClientError("Deliver security event tokens with POST.", code="method_not_allowed",
                              status=405)
        raw = _read_capped_body(request, deps.config.request_body_timeout_seconds,
                                limit=RISC_MAX_BODY_BYTES)
        if len(raw) > RISC_MAX_BODY_BYTES:
            raise SecurityEventRejected("The body is larger than any security event token.",
                                        code="payload_too_large")
        lines = risc_receiver.receive(deps, raw)
        status, body = 202, {"status": "accepted"}
    except OfflineAccessError as exc:
        status, body = _error_answer(exc, headers, log)
    except Exception as exc:  # a bug: the JSON contract holds, and the log says what broke
        logging.getLogger(__name__).exception("risc_receiver failed unexpectedly")
        status, body = 500, {"error": "internal_error",
                             "message": "Something went wrong on the server. Try again later."}
        log.update(error="internal_error", exception_type=type(exc).__name__)
    duration = round((time.perf_counter() - started) * 1000, 1)
    if status == 202:
        for line in lines:
            severity = "NOTICE" if line.get("outcome") in _RISC_CHANGES else "INFO"
            if line.get("disconnect") == "left_to_the_job":
                severity = "WARNING"
            emit(severity, f"risc event {line['event_type']}: {line['outcome']}",
                 **{**trace, **line}, status=status, duration_ms=duration)
    else:
        log.update(status=status, duration_ms=duration)
        emit(_severity(status), f"risc receiver: {body['error']}", outcome=body["error"], **log)
    return json_response(status, body, headers)


def handle_token_api(
    request: flask.Request, get_deps: Callable[[], token_api.TokenApiDependencies]
) -> flask.Response:
    """Answer one request to the `token_api` function (`tokenapi.api`'s routes).

    Only the app's backend calls it: Cloud Run IAM admits the service accounts given
    `run.invoker`, and the caller's Google ID token is checked here again before anything else
    (`tokenapi.callers`). Bodies are JSON; every answer is JSON with `Cache-Control: no-store`,
    and the log line names the caller's service account and the user's reference, never a
    token.
    """
    started = time.perf_counter()
    path = request.path.rstrip("/") or "/"
    log: dict[str, Any] = {"event": "token_api", "method": request.method, "route": path}
    headers: dict[str, str] = {}
    try:
        deps = get_deps()
        log.update(trace_field(deps.config.project, request.headers.get("X-Cloud-Trace-Context")))
        log["caller"] = deps.callers.verify(request.headers.get("Authorization"))
        handler = token_api.HANDLERS.get(path)
        if handler is None:
            log["route"] = "unknown"
            raise ClientError("There is no such route: use POST /token or POST /session.",
                              code="not_found", status=404)
        if request.method != "POST":
            headers["Allow"] = "POST"
            raise ClientError(f"Use POST for {path}.", code="method_not_allowed", status=405)
        document = _json_object(request, deps.config.request_body_timeout_seconds)
        if isinstance(document.get("sub"), str):
            log["user"] = deps.user_refs.ref(document["sub"])
        answer = handler(deps, document)
        status, body = 200, answer.body
        log.update(answer.log)
        if answer.user:
            log["user"] = answer.user
        log["outcome"] = "ok"
    except OfflineAccessError as exc:
        status, body = _error_answer(exc, headers, log)
        log["outcome"] = exc.code
        if isinstance(exc, GrantError) and isinstance(body.get("reason"), str):
            log["reason"] = body["reason"]
    except Exception as exc:  # a bug: the JSON contract holds, and the log says what broke
        logging.getLogger(__name__).exception("token_api failed unexpectedly")
        status, body = 500, {"error": "internal_error",
                             "message": "Something went wrong on the server. Try again later."}
        log.update(outcome="internal_error", exception_type=type(exc).__name__)
    log.update(status=status, duration_ms=round((time.perf_counter() - started) * 1000, 1))
    emit(_severity(status) if status not in (404, 409) else "INFO",
         f"token api {path}: {log['outcome']}", **log)
    return json_response(status, body, headers)


def _json_object(request: flask.Request, timeout: float) -> dict[str, Any]:
    """The request's JSON object body.

    Raises:
        ClientError: 400 for anything else, 413 when too large, 408 when it does not arrive.
    """
    raw = _read_capped_body(request, timeout)
    if len(raw) > MAX_BODY_BYTES:
        raise ClientError("The request body is too large.", code="payload_too_large", status=413)
    try:
        document = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        document = None
    if not isinstance(document, dict):
        raise ClientError("Send a JSON object.")
    return document
