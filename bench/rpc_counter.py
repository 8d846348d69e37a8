"""Counts the gRPC calls a process makes (Firestore's, against the emulator), by method.

Benchmark instrumentation only: `install()` wraps every channel `grpc.insecure_channel` creates
from then on with a client interceptor that counts each call, unary or streaming, by its full
method name (`/google.firestore.v1.Firestore/BatchWrite`...). The Firestore client builds its
emulator channel with `grpc.insecure_channel`, so installing before the client is built counts
every Firestore RPC the code under test makes.

`counts()` reads the counters in-process. A process that cannot report itself (a
functions-framework worker) sets `BENCH_RPC_COUNTS` to a file path: `bench/instrumented/
sitecustomize.py` installs the counter at interpreter start, and a daemon thread rewrites that
file every 0.2 s.
"""

from __future__ import annotations

import collections
import json
import os
import threading
import time
from typing import Any

import grpc

_counts: collections.Counter[str] = collections.Counter()
_lock = threading.Lock()
_installed = False


class _Counting(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    def _count(self, details: Any) -> None:
        with _lock:
            _counts[details.method] += 1

    def intercept_unary_unary(self, continuation, client_call_details, request):
        self._count(client_call_details)
        return continuation(client_call_details, request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        self._count(client_call_details)
        return continuation(client_call_details, request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        self._count(client_call_details)
        return continuation(client_call_details, request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        self._count(client_call_details)
        return continuation(client_call_details, request_iterator)


def install() -> None:
    """Count the calls of every channel created from now on."""
    global _installed
    if _installed:
        return
    _installed = True
    original = grpc.insecure_channel

    def counting_channel(*args: Any, **kwargs: Any) -> grpc.Channel:
        return grpc.intercept_channel(original(*args, **kwargs), _Counting())

    grpc.insecure_channel = counting_channel
    path = os.environ.get("BENCH_RPC_COUNTS")
    if path:
        def start_reporting() -> None:
            threading.Thread(target=_report_to, args=(path,), daemon=True).start()

        # gunicorn forks its workers from the process that imported the function: threads do
        # not survive a fork, so each worker starts its own reporter (and its own counts).
        os.register_at_fork(after_in_child=lambda: (_counts.clear(), start_reporting()))
        start_reporting()


def counts(prefix: str = "/google.firestore.") -> dict[str, int]:
    """Calls so far, by method, of the services whose names start with `prefix`."""
    with _lock:
        return {m: n for m, n in _counts.items() if m.startswith(prefix)}


def total(prefix: str = "/google.firestore.") -> int:
    return sum(counts(prefix).values())


def _report_to(path: str) -> None:
    while True:
        time.sleep(0.2)
        data = json.dumps({"pid": os.getpid(), "counts": counts()})
        with open(f"{path}.{os.getpid()}.tmp", "w") as handle:
            handle.write(data)
        os.replace(f"{path}.{os.getpid()}.tmp", f"{path}.{os.getpid()}")


def read_reports(path: str) -> dict[str, int]:
    """The counts every process reporting to `path` wrote last, summed by method."""
    directory, name = os.path.split(path)
    summed: collections.Counter[str] = collections.Counter()
    for entry in os.listdir(directory or "."):
        if entry.startswith(name + ".") and not entry.endswith(".tmp"):
            with open(os.path.join(directory, entry)) as handle:
                summed.update(json.load(handle)["counts"])
    return dict(summed)
