"""A local Secret Manager: a gRPC server speaking the real API to the real client library.

There is no official Secret Manager emulator. This server implements the calls the project
uses, with the request and response messages shipped in `google-cloud-secret-manager`:
`AccessSecretVersion` (the functions read secrets with it), and `CreateSecret`,
`AddSecretVersion`, `DisableSecretVersion` (`make dev` and tests seed secrets with them). The
functions reach it through `SECRET_MANAGER_EMULATOR_HOST=host:port`.

For tests it also counts accesses per version and can inject gRPC failures.

    python -m localdev.local_secret_manager --port 8091 \
        --secret projects/P/secrets/NAME=VALUE ...
"""

from __future__ import annotations

import argparse
import signal
import threading
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from google.cloud.secretmanager_v1 import types
from google.protobuf import timestamp_pb2

_SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"


def crc32c(data: bytes) -> int:
    """CRC32C, bit by bit (independent of the functions' table-driven one, which tests compare)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


@dataclass
class _Version:
    data: bytes
    enabled: bool = True


@dataclass
class _Fault:
    code: grpc.StatusCode
    times: int  # -1: until cleared
    corrupt_crc: bool = False


@dataclass
class _State:
    secrets: dict[str, list[_Version]] = field(default_factory=dict)
    accesses: dict[str, int] = field(default_factory=dict)
    faults: list[_Fault] = field(default_factory=list)


class LocalSecretManager:
    """The server. `start()` binds a real port; `host_port` is what the emulator variable takes."""

    def __init__(self) -> None:
        self._state = _State()
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self.host_port = ""

    # -- Seeding and inspection (tests, `make dev`) --

    def add_version(self, secret: str, data: bytes) -> str:
        """Add a version to `projects/P/secrets/S` (created if needed); returns its full name."""
        with self._lock:
            versions = self._state.secrets.setdefault(secret, [])
            versions.append(_Version(data))
            return f"{secret}/versions/{len(versions)}"

    def set_enabled(self, version_name: str, enabled: bool) -> None:
        secret, number = version_name.rsplit("/versions/", 1)
        with self._lock:
            self._state.secrets[secret][int(number) - 1].enabled = enabled

    def accesses(self, version_name: str | None = None) -> int:
        """How many AccessSecretVersion calls named `version_name` (or any, when None)."""
        with self._lock:
            if version_name is None:
                return sum(self._state.accesses.values())
            return self._state.accesses.get(version_name, 0)

    def fail_next(self, code: grpc.StatusCode, times: int = 1, corrupt_crc: bool = False) -> None:
        """Answer the next `times` accesses with `code` (-1: until `clear_faults`)."""
        with self._lock:
            self._state.faults.append(_Fault(code, times, corrupt_crc))

    def clear_faults(self) -> None:
        with self._lock:
            self._state.faults.clear()

    def reset_counters(self) -> None:
        with self._lock:
            self._state.accesses.clear()

    # -- gRPC methods --

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            for fault in self._state.faults:
                if fault.times != 0:
                    if fault.times > 0:
                        fault.times -= 1
                    return fault
        return None

    def _access(self, request: types.AccessSecretVersionRequest, context: grpc.ServicerContext):
        name = request.name
        with self._lock:
            self._state.accesses[name] = self._state.accesses.get(name, 0) + 1
        fault = self._take_fault()
        if fault is not None and not fault.corrupt_crc:
            context.abort(fault.code, "injected fault")
        secret, _, version = name.rpartition("/versions/")
        with self._lock:
            versions = self._state.secrets.get(secret)
            if not versions:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Secret [{secret}] not found or has no versions.")
            if version == "latest":
                enabled = [i for i, v in enumerate(versions) if v.enabled]
                if not enabled:
                    context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{secret} has no enabled versions.")
                index = enabled[-1]
            elif version.isdigit() and 1 <= int(version) <= len(versions):
                index = int(version) - 1
            else:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{name}] not found.")
            entry = versions[index]
        if not entry.enabled:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"Secret Version [{name}] is in DISABLED state.")
        checksum = crc32c(entry.data) ^ (1 if fault is not None and fault.corrupt_crc else 0)
        return types.AccessSecretVersionResponse(
            name=f"{secret}/versions/{index + 1}",
            payload=types.SecretPayload(data=entry.data, data_crc32c=checksum),
        )

    def _create_secret(self, request: types.CreateSecretRequest, context):
        name = f"{request.parent}/secrets/{request.secret_id}"
        with self._lock:
            if name in self._state.secrets:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"Secret [{name}] already exists.")
            self._state.secrets[name] = []
        return types.Secret(name=name, replication=request.secret.replication)

    def _add_secret_version(self, request: types.AddSecretVersionRequest, context):
        with self._lock:
            if request.parent not in self._state.secrets:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Secret [{request.parent}] not found.")
        name = self.add_version(request.parent, bytes(request.payload.data))
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        return types.SecretVersion(name=name, state=types.SecretVersion.State.ENABLED, create_time=now)

    def _disable_secret_version(self, request: types.DisableSecretVersionRequest, context):
        try:
            self.set_enabled(request.name, False)
        except (KeyError, IndexError, ValueError):
            context.abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{request.name}] not found.")
        return types.SecretVersion(name=request.name, state=types.SecretVersion.State.DISABLED)

    def _handlers(self) -> grpc.GenericRpcHandler:
        def unary(method, request_type, response_type):
            return grpc.unary_unary_rpc_method_handler(
                method,
                request_deserializer=request_type.deserialize,
                response_serializer=response_type.serialize,
            )

        return grpc.method_handlers_generic_handler(
            _SERVICE,
            {
                "AccessSecretVersion": unary(
                    self._access, types.AccessSecretVersionRequest, types.AccessSecretVersionResponse
                ),
                "CreateSecret": unary(self._create_secret, types.CreateSecretRequest, types.Secret),
                "AddSecretVersion": unary(
                    self._add_secret_version, types.AddSecretVersionRequest, types.SecretVersion
                ),
                "DisableSecretVersion": unary(
                    self._disable_secret_version, types.DisableSecretVersionRequest, types.SecretVersion
                ),
            },
        )

    # -- Lifecycle --

    def start(self, host: str = "127.0.0.1", port: int = 0) -> LocalSecretManager:
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        self._server.add_generic_rpc_handlers((self._handlers(),))
        bound = self._server.add_insecure_port(f"{host}:{port}")
        if bound == 0:
            raise OSError(f"cannot bind {host}:{port}")
        self._server.start()
        self.host_port = f"{host}:{bound}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=0.5).wait()
            self._server = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="projects/P/secrets/NAME=VALUE",
        help="seed a secret version (repeatable; the value is read from the file when it starts with @)",
    )
    args = parser.parse_args()
    server = LocalSecretManager()
    for item in args.secret:
        name, _, value = item.partition("=")
        data = open(value[1:], "rb").read() if value.startswith("@") else value.encode()
        server.add_version(name, data)
    server.start(args.host, args.port)
    print(f"local Secret Manager listening on {server.host_port}", flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    server.stop()


if __name__ == "__main__":
    main()
