"""One worker "instance" of the scale-out benchmark, fed by the emulator through streaming pull.

The Pub/Sub emulator pushes at most two requests at a time per subscription (measured here:
60 messages to an endpoint that answers after 1 s took 30 s, never more than 2 in flight),
so pushing cannot feed four worker processes. This process stands in for one Cloud Run
instance instead: the real subscriber client pulls from the work subscription with flow control
(`--messages` outstanding, as `worker_messages_per_instance`), and hands each message to the
same `Worker.handle` the push adapter calls, acknowledging it on success and nacking it on a
failure, as a 2xx or an error answer would. The emulator spreads the messages over the
processes pulling.

    python -m bench.pull_worker SUBSCRIPTION --messages 4   (environment: the worker's)
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

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

    def handle(message) -> None:
        delivery = PushDelivery(message_id=message.message_id, data=message.data,
                                attributes=dict(message.attributes), subscription=args.subscription,
                                delivery_attempt=message.delivery_attempt)
        try:
            worker.handle(delivery)
        except OfflineAccessError:
            message.nack()
            return
        message.ack()

    subscriber = pubsub_v1.SubscriberClient()
    flow = pubsub_v1.types.FlowControl(max_messages=args.messages)
    # As many messages at once as an instance serves deliveries (worker_messages_per_instance).
    scheduler = pubsub_v1.subscriber.scheduler.ThreadScheduler(ThreadPoolExecutor(args.messages))
    future = subscriber.subscribe(args.subscription, handle, flow_control=flow, scheduler=scheduler)
    print("ready", flush=True)
    stop = threading.Event()
    try:
        stop.wait()
    finally:
        future.cancel()
        sys.exit(0)


if __name__ == "__main__":
    main()
