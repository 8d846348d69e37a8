"""Push delivery of SETs to a project's receiver, redelivered with backoff until a 2xx.

`Transmitter.submit` decides at once whether a SET goes out: not without a stream
(`no_stream`), not while the stream is disabled (`stream_disabled`: Google neither sends nor
buffers), not for an event type the stream did not request (`not_requested`). Otherwise the
SET is `pending` and one worker thread POSTs it (`Content-Type: application/secevent+jwt`) to
the stream's current URL. Any 2xx acknowledges it (`acked`); anything else, or no answer
within the timeout, is retried with the same body, so the same `jti`, after the settings'
backoff, until `max_attempts` (`gave_up`). A stream disabled or removed before a retry ends the
delivery (`dropped`).

Every delivery is recorded by id (its `jti`, or `raw-N` for a body that has none) with its
attempts and answers, and `wait` blocks until one reaches a final state.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass, field

import requests

from .risc_stream import RiscSettings, StreamRegistry

SET_CONTENT_TYPE = "application/secevent+jwt"
FINAL = ("acked", "gave_up", "dropped", "no_stream", "stream_disabled", "not_requested")


@dataclass
class Delivery:
    id: str
    jti: str | None
    project_id: str
    event_type: str | None
    token: str
    status: str = "pending"
    attempts: int = 0
    # One entry per attempt: the HTTP status, or the exception class when there was no answer.
    answers: list[int | str] = field(default_factory=list)
    url: str | None = None
    submitted_at: float = field(default_factory=time.time)
    acked_at: float | None = None

    @property
    def acked(self) -> bool:
        return self.status == "acked"

    def public(self) -> dict:
        return {
            "id": self.id,
            "jti": self.jti,
            "project_id": self.project_id,
            "event_type": self.event_type,
            "status": self.status,
            "acked": self.acked,
            "attempts": self.attempts,
            "answers": list(self.answers),
            "last_answer": self.answers[-1] if self.answers else None,
            "url": self.url,
            "submitted_at": self.submitted_at,
            "acked_at": self.acked_at,
            "token": self.token,
        }


class Transmitter:
    """Queues SETs and delivers them from one background thread."""

    def __init__(self, streams: StreamRegistry, settings: RiscSettings) -> None:
        self.streams = streams
        self.settings = settings
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, Delivery]] = []
        self._deliveries: dict[str, Delivery] = {}
        self._order = itertools.count()
        self._raw_ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._in_flight: Delivery | None = None
        self._session = requests.Session()

    # Lifecycle

    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="local-google-risc", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout=self.settings.timeout_seconds + 2)

    def reset(self) -> None:
        """Forgets every delivery, after waiting (bounded by the attempt timeout) for a POST in
        flight, so nothing submitted before a reset reaches a receiver after it."""
        with self._cond:
            self._queue.clear()
            self._deliveries.clear()
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._in_flight is None, self.settings.timeout_seconds + 1)

    # Submitting

    def submit(self, project_id: str, token: str, jti: str | None, event_type: str | None) -> Delivery:
        """Records the SET and queues it if the project's stream takes it (see module doc).

        `event_type` None (a raw SET) skips the requested-types filter.
        """
        return self._submit(Delivery(jti or f"raw-{next(self._raw_ids)}", jti, project_id, event_type, token))

    def _submit(self, delivery: Delivery) -> Delivery:
        event_type = delivery.event_type
        stream = self.streams.get(delivery.project_id)
        if stream is None:
            delivery.status = "no_stream"
        elif stream.status != "enabled":
            delivery.status = "stream_disabled"
        elif event_type is not None and event_type not in stream.events_requested:
            delivery.status = "not_requested"
        with self._cond:
            if delivery.id in self._deliveries:
                raise ValueError(f"a SET with jti {delivery.id!r} was already submitted")
            self._deliveries[delivery.id] = delivery
            if delivery.status == "pending":
                heapq.heappush(self._queue, (time.monotonic(), next(self._order), delivery))
            self._cond.notify_all()
        return delivery

    def resend(self, delivery_id: str) -> Delivery:
        """Submits an earlier delivery's exact SET again (same `jti`), as Google may when it
        believes an event was not delivered: the receiver must de-duplicate it."""
        with self._cond:
            earlier = self._deliveries.get(delivery_id)
            if earlier is None:
                raise KeyError(delivery_id)
            copies = sum(1 for d in self._deliveries.values() if d.token == earlier.token)
        copy_id = f"{earlier.jti or earlier.id}~{copies + 1}"
        return self._submit(Delivery(copy_id, earlier.jti, earlier.project_id, earlier.event_type,
                                     earlier.token))

    # Reading

    def deliveries(self) -> list[dict]:
        with self._cond:
            return [d.public() for d in self._deliveries.values()]

    def delivery(self, delivery_id: str) -> dict | None:
        with self._cond:
            found = self._deliveries.get(delivery_id)
            return found.public() if found else None

    def wait(self, delivery_id: str, timeout: float) -> dict | None:
        """Blocks until the delivery is final or `timeout` passes; None if it is unknown."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self._deliveries.get(delivery_id)
                if found is None or found.status in FINAL:
                    return found.public() if found else None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return found.public()
                self._cond.wait(remaining)

    # The worker

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._queue or self._queue[0][0] > time.monotonic()):
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                _, _, delivery = heapq.heappop(self._queue)
                if self._deliveries.get(delivery.id) is not delivery:
                    continue  # forgotten by a reset
                self._in_flight = delivery
            try:
                self._attempt(delivery)
            finally:
                with self._cond:
                    self._in_flight = None
                    self._cond.notify_all()

    def _attempt(self, delivery: Delivery) -> None:
        stream = self.streams.get(delivery.project_id)
        if stream is None or stream.status != "enabled":
            self._finish(delivery, "dropped")
            return
        settings = self.settings
        try:
            response = self._session.post(
                stream.url,
                data=delivery.token.encode("utf-8"),
                headers={"Content-Type": SET_CONTENT_TYPE, "Accept": "application/json",
                         "User-Agent": "local-google-risc-transmitter"},
                timeout=settings.timeout_seconds,
                allow_redirects=False,
            )
            answer: int | str = response.status_code
            response.close()
        except requests.RequestException as exc:
            answer = type(exc).__name__
        with self._cond:
            delivery.attempts += 1
            delivery.answers.append(answer)
            delivery.url = stream.url
            if isinstance(answer, int) and 200 <= answer < 300:
                delivery.status, delivery.acked_at = "acked", time.time()
            elif delivery.attempts >= settings.max_attempts:
                delivery.status = "gave_up"
            elif self._deliveries.get(delivery.id) is delivery and not self._stopping:
                due = time.monotonic() + settings.backoff(delivery.attempts)
                heapq.heappush(self._queue, (due, next(self._order), delivery))
            self._cond.notify_all()

    def _finish(self, delivery: Delivery, status: str) -> None:
        with self._cond:
            delivery.status = status
            self._cond.notify_all()
