"""Lifecycle events: CloudEvents on a Pub/Sub topic, written with the change they report.

`catalog` says which changes make which events (pure); `outbox` writes them in the same atomic
write as the change and publishes them after it, through `publisher` (the Pub/Sub client).
"""
