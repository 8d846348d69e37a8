"""One worker "instance" of the scale-out benchmark, fed by the emulator through streaming pull.

The Pub/Sub emulator pushes at most two requests at a time per subscription (measured here:
60 messages to an endpoint that answers after 1 s took 30 s, never more than 2 in flight),
so pushing cannot feed four worker processes. This process stands in for one Cloud Run
instance instead: `--messages` threads (as `worker_messages_per_instance`) each pull one message
with the real subscriber client when free, hand it to the same `Worker.handle` the push adapter
calls, and acknowledge it on success or hand it back on a failure, as a 2xx or an error answer
would. Pulling one message only when free spreads the messages evenly, as pushes to free
instances do (streaming pull let the first process lease most of them).

    python -m bench.pull_worker SUBSCRIPTION --messages 4   (environment: the worker's)
"""

from __future__ import annotations

import argparse
import os
import threading

from google.cloud import pubsub_v1

from bench import rpc_counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("subscription")
    parser.add_argument("--messages", type=int, default=4)
    args = parser.parse_args()
    rpc_counter.install()
    from offline_access import wiring
    from offline_access.errors import OfflineAccessError
    from offline_access.messaging.push import PushDelivery

    worker = wiring.build_worker(os.environ)
    worker.deps.log_stream = open(os.devnull, "w")  # noqa: SIM115 - the lines are still built
    worker.deps.secrets.get(worker.deps.config.client_secret_version)
    worker.deps.sealer.check_ready()

    subscriber = pubsub_v1.SubscriberClient()

    def serve() -> None:
        """One message at a time, asked for only when free: as a push to a free slot."""
        while True:
            answer = subscriber.pull(subscription=args.subscription, max_messages=1, timeout=30)
            for item in answer.received_messages:
                message = item.message
                delivery = PushDelivery(message_id=message.message_id, data=bytes(message.data),
                                        attributes=dict(message.attributes),
                                        subscription=args.subscription,
                                        delivery_attempt=item.delivery_attempt or None)
                try:
                    worker.handle(delivery)
                except OfflineAccessError:
                    subscriber.modify_ack_deadline(subscription=args.subscription,
                                                   ack_ids=[item.ack_id], ack_deadline_seconds=0)
                    continue
                subscriber.acknowledge(subscription=args.subscription, ack_ids=[item.ack_id])

    # As many messages at once as an instance serves deliveries (worker_messages_per_instance).
    for _ in range(args.messages):
        threading.Thread(target=serve, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
