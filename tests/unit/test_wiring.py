"""Builders: one value per instance, the warm-up registered only for the served function."""

import datetime as dt
import os
import threading

from offline_access import wiring
from offline_access.dependencies import SharedDependencies


def test_now_is_timezone_aware():
    now = SharedDependencies.__dataclass_fields__["now"].default()
    assert now.tzinfo is dt.timezone.utc


def test_only_the_served_function_registers_a_warm_up(monkeypatch):
    registered = []
    monkeypatch.setattr(os, "register_at_fork", lambda **hooks: registered.append(hooks))
    lazy = wiring.Lazy(lambda: None)

    def warm(deps):
        return None

    assert not wiring.warm_up_in_each_worker("exchange_code", lazy, warm, environ={})
    assert not wiring.warm_up_in_each_worker(
        "exchange_code", lazy, warm, environ={"FUNCTION_TARGET": "run_offline_job"})
    assert registered == []
    assert wiring.warm_up_in_each_worker(
        "exchange_code", lazy, warm, environ={"FUNCTION_TARGET": "exchange_code"})
    assert list(registered[0]) == ["after_in_child"]


def test_lazy_builds_once_even_when_first_callers_arrive_together():
    built = []
    gate = threading.Barrier(8)

    def build():
        built.append(1)
        return object()

    lazy = wiring.Lazy(build)
    values = []

    def get():
        gate.wait()
        values.append(lazy.get())

    threads = [threading.Thread(target=get) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1 and len({id(v) for v in values}) == 1
