"""Put on PYTHONPATH by the benchmark for the function processes it starts: counts their gRPC calls
(bench/rpc_counter.py) when BENCH_RPC_COUNTS names a file to report to. Does nothing otherwise."""

import os

if os.environ.get("BENCH_RPC_COUNTS"):
    from bench import rpc_counter

    rpc_counter.install()
