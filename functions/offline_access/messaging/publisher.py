"""Publishing to a Pub/Sub topic with the official client, and its failures as one error.

The client batches the messages published from any thread into few `Publish` requests (Pub/Sub
bills each request at least 1,000 bytes, so batching small messages also costs less) and
retries transient failures itself. `publish` returns at once; `wait` collects the outcomes, and
turns a failure into `Unavailable(dependency="pubsub")`. The client reads
`PUBSUB_EMULATOR_HOST` itself, so `make dev` and the tests publish to the emulator with the
same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from google.api_core import exceptions as api_exceptions

from ..errors import Unavailable

# A batch leaves after 100 messages, 1 MB or 20 ms, whichever comes first.
BATCH = {"max_messages": 100, "max_bytes": 1_000_000, "max_latency": 0.02}
WAIT_SECONDS = 30.0


def pubsub_unavailable() -> Unavailable:
    return Unavailable("The message queue is unavailable. Try again shortly.", dependency="pubsub")


class Publisher:
    """Publishes messages to one topic."""

    def __init__(self, topic: str, client: Any = None) -> None:
        self.topic = topic
        if client is None:
            # Imported here: only the dispatcher publishes, and the library takes a tenth of a
            # second to import, which every other function's cold start would pay.
            from google.cloud.pubsub_v1 import PublisherClient
            from google.cloud.pubsub_v1.types import BatchSettings

            client = PublisherClient(batch_settings=BatchSettings(**BATCH))
        self._client = client

    def publish(self, data: bytes, attributes: dict[str, str]) -> Future[str]:
        """Queue one message; the future gives its message id."""
        future: Future[str] = self._client.publish(self.topic, data, **attributes)
        return future

    def wait(self, futures: Sequence[Future[str]], timeout: float = WAIT_SECONDS) -> list[str]:
        """The ids of messages published, once all are sent.

        Raises:
            Unavailable: a message could not be published (the others may have been).
        """
        try:
            return [future.result(timeout=timeout) for future in futures]
        except (api_exceptions.GoogleAPIError, TimeoutError) as exc:
            raise pubsub_unavailable() from exc
