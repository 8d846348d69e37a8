"""A local Secret Manager: a gRPC server speaking the real API to the real client library.

There is no official Secret Manager emulator. This server implements the calls the project
uses, with the request and response messages shipped in `google-cloud-secret-manager`:
`AccessSecretVersion` (the functions read secrets with it), `CreateSecret`, `AddSecretVersion`
(`make dev` and tests seed secrets with them), and `ListSecretVersions`,
`DisableSecretVersion`, `EnableSecretVersion`, `DestroySecretVersion` (the key operations of
`offline_access.store.sealing_keys`). The functions reach it through
`SECRET_MANAGER_EMULATOR_HOST=host:port`. As at Google, accessing a disabled or destroyed
version is `FAILED_PRECONDITION` and a version that never existed `NOT_FOUND`.

For tests it also counts accesses per version and can inject gRPC failures.

    python -m localdev.local_secret_manager --port 8091 \
        --secret projects/P/secrets/NAME=VALUE ...
"""

from __future__ import annotations

import argparse
import base64
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
    destroyed: bool = False
    created: timestamp_pb2.Timestamp = field(default_factory=lambda: _now())


def _now() -> timestamp_pb2.Timestamp:
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    return now


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

    def create_secret(self, secret: str) -> None:
        """Create `projects/P/secrets/S` with no versions (as Terraform does); no-op if it exists."""
        with self._lock:
            self._state.secrets.setdefault(secret, [])

    def add_version(self, secret: str, data: bytes) -> str:
        """Add a version to `projects/P/secrets/S` (created if needed); returns its full name."""
        with self._lock:
            versions = self._state.secrets.setdefault(secret, [])
            versions.append(_Version(data))
            return f"{secret}/versions/{len(versions)}"

    def set_enabled(self, version_name: str, enabled: bool) -> None:
        with self._lock:
            version = self._version_locked(version_name)
            if enabled and version.destroyed:
                raise ValueError("a destroyed version cannot be enabled")
            version.enabled = enabled

    def destroy(self, version_name: str) -> None:
        """Destroy a version: its data is gone for good."""
        with self._lock:
            version = self._version_locked(version_name)
            version.destroyed, version.enabled, version.data = True, False, b""

    def _version_locked(self, version_name: str) -> _Version:
        secret, number = version_name.rsplit("/versions/", 1)
        if not number.isdigit() or int(number) < 1:
            raise KeyError(version_name)
        return self._state.secrets[secret][int(number) - 1]

    def snapshot(self) -> dict[str, list[dict]]:
        """Every secret and version (data base64, state), for `restore` after a restart."""
        with self._lock:
            return {name: [{"data": base64.b64encode(v.data).decode(), "enabled": v.enabled,
                            "destroyed": v.destroyed} for v in versions]
                    for name, versions in self._state.secrets.items()}

    def restore(self, snapshot: dict[str, list[dict]]) -> None:
        """Put back what `snapshot` returned (version numbers included)."""
        with self._lock:
            self._state.secrets = {
                name: [_Version(base64.b64decode(v["data"]), bool(v["enabled"]), bool(v["destroyed"]))
                       for v in versions]
                for name, versions in snapshot.items()}

    def payload(self, version_name: str) -> bytes:
        """A version's data as stored (tests: what a key operation wrote)."""
        with self._lock:
            return self._version_locked(version_name).data

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
            state = "DESTROYED" if entry.destroyed else "DISABLED"
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"Secret Version [{name}] is in {state} state.")
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
        return self._describe(name)

    def _describe(self, name: str) -> types.SecretVersion:
        with self._lock:
            version = self._version_locked(name)
            state = (types.SecretVersion.State.DESTROYED if version.destroyed
                     else types.SecretVersion.State.ENABLED if version.enabled
                     else types.SecretVersion.State.DISABLED)
            return types.SecretVersion(name=name, state=state, create_time=version.created)

    def _list_secret_versions(self, request: types.ListSecretVersionsRequest, context):
        with self._lock:
            versions = self._state.secrets.get(request.parent)
            if versions is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Secret [{request.parent}] not found.")
            count = len(versions)
        # Newest first, as Secret Manager lists them; one page.
        described = [self._describe(f"{request.parent}/versions/{n}") for n in range(count, 0, -1)]
        return types.ListSecretVersionsResponse(versions=described, total_size=count)

    def _change_version(self, name: str, context, change) -> types.SecretVersion:
        try:
            change(name)
        except (KeyError, IndexError):
            context.abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{name}] not found.")
        except ValueError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return self._describe(name)

    def _disable_secret_version(self, request: types.DisableSecretVersionRequest, context):
        return self._change_version(request.name, context, lambda n: self.set_enabled(n, False))

    def _enable_secret_version(self, request: types.EnableSecretVersionRequest, context):
        return self._change_version(request.name, context, lambda n: self.set_enabled(n, True))

    def _destroy_secret_version(self, request: types.DestroySecretVersionRequest, context):
        return self._change_version(request.name, context, self.destroy)

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
                "EnableSecretVersion": unary(
                    self._enable_secret_version, types.EnableSecretVersionRequest, types.SecretVersion
                ),
                "DestroySecretVersion": unary(
                    self._destroy_secret_version, types.DestroySecretVersionRequest, types.SecretVersion
                ),
                "ListSecretVersions": unary(
                    self._list_secret_versions, types.ListSecretVersionsRequest,
                    types.ListSecretVersionsResponse
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
