"""Starting and stopping the local stack's processes, for `make dev`, tests and benchmarks.

Each component is a real server on a real port: the official Firestore emulator (Java, from
the Google Cloud CLI), functions-framework serving `functions/main.py`, and the Python servers
of this folder. Every process is started in its own session and stopped with its whole process
group, so nothing is left behind (the emulator's launcher script does not `exec` Java).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import requests

REPO = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = REPO / "functions"
_EMULATOR_RELATIVE = Path("platform/cloud-firestore-emulator/cloud_firestore_emulator")
_PUBSUB_RELATIVE = Path("platform/pubsub-emulator/bin/cloud-pubsub-emulator")
PUBSUB_INSTALL_HINT = (
    "The Pub/Sub emulator was not found. Install the Google Cloud CLI and its emulator "
    "(`gcloud components install pubsub-emulator`, or the Debian package "
    "`google-cloud-cli-pubsub-emulator`) and Java 11+, or set PUBSUB_EMULATOR_HOST to a "
    "running emulator."
)
INSTALL_HINT = (
    "The Firestore emulator was not found. Install the Google Cloud CLI and its emulator "
    "(`gcloud components install cloud-firestore-emulator`, or the Debian package "
    "`google-cloud-cli-firestore-emulator`) and Java 11+, or set FIRESTORE_EMULATOR_HOST "
    "to a running emulator."
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(url: str, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    """Poll `url` until it answers (any HTTP status), or fail with a clear message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with code {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def _find_in_cloud_sdk(relative: Path, override_variable: str, hint: str) -> Path:
    """A launcher of the Google Cloud CLI's emulators, or a RuntimeError saying how to get it."""
    override = os.environ.get(override_variable)
    if override:
        return Path(override)
    roots = [Path("/usr/lib/google-cloud-sdk"), Path("/usr/share/google-cloud-sdk"),
             Path.home() / "google-cloud-sdk"]
    gcloud = shutil.which("gcloud")
    if gcloud:
        roots.insert(0, Path(gcloud).resolve().parent.parent)
    for root in roots:
        candidate = root / relative
        if candidate.exists():
            return candidate
    raise RuntimeError(hint)


def find_firestore_emulator() -> Path:
    """The Firestore emulator's launcher from the Google Cloud CLI."""
    return _find_in_cloud_sdk(_EMULATOR_RELATIVE, "FIRESTORE_EMULATOR_BIN", INSTALL_HINT)


def find_pubsub_emulator() -> Path:
    """The Pub/Sub emulator's launcher from the Google Cloud CLI."""
    return _find_in_cloud_sdk(_PUBSUB_RELATIVE, "PUBSUB_EMULATOR_BIN", PUBSUB_INSTALL_HINT)


class Process:
    """A child process in its own process group, stopped with everything it started."""

    def __init__(self, name: str, argv: list[str], *, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None, output: IO | None = None) -> None:
        self.name = name
        self.popen = subprocess.Popen(
            argv,
            env=dict(env) if env is not None else None,
            cwd=str(cwd) if cwd else None,
            stdout=output if output is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if output is not None else subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self, timeout: float = 5.0) -> None:
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        except ProcessLookupError:
            pass


class FirestoreEmulator(Process):
    """The official Firestore emulator on `host:port`, optionally loaded from an export."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1",
                 output: IO | None = None, import_data: Path | None = None) -> None:
        self.host_port = f"{host}:{port or free_port()}"
        launcher = find_firestore_emulator()
        if not shutil.which("java"):
            raise RuntimeError("Java is needed by the Firestore emulator. " + INSTALL_HINT)
        _, _, bound_port = self.host_port.rpartition(":")
        argv = [str(launcher), "start", f"--host={host}", f"--port={bound_port}"]
        if import_data is not None:
            argv.append(f"--import-data={import_data}")  # an export's .overall_export_metadata
        super().__init__("firestore", argv, output=output)
        try:
            wait_until_ready(f"http://{self.host_port}/", timeout=60, process=self.popen)
        except Exception:
            self.stop()
            raise

    def export(self, project: str, directory: Path) -> Path:
        """Export every document of `project` into `directory` (new or empty); its metadata file,
        which `import_data` takes.

        The emulator's own `--export-on-exit` does not run when it is stopped with a signal, so
        `make dev` exports through the emulator's REST API instead.
        """
        directory.mkdir(parents=True, exist_ok=True)
        requests.post(
            f"http://{self.host_port}/emulator/v1/projects/{project}:export",
            json={"database": f"projects/{project}/databases/(default)",
                  "export_directory": str(directory)},
            timeout=60,
        ).raise_for_status()
        return next(directory.glob("*/*.overall_export_metadata"))

    def reset(self, project: str) -> None:
        """Delete every document of `project` (about 0.3 s)."""
        self.reset_host(self.host_port, project)

    @staticmethod
    def reset_host(host_port: str, project: str) -> None:
        """Delete every document of `project` in the emulator at `host_port`."""
        requests.delete(
            f"http://{host_port}/emulator/v1/projects/{project}/databases/(default)/documents",
            timeout=10,
        ).raise_for_status()


class PubSubEmulator(Process):
    """The official Pub/Sub emulator on `host:port` (clients find it by `PUBSUB_EMULATOR_HOST`).

    It keeps topics and subscriptions in memory, per project, until it stops; it pushes to HTTP
    endpoints (without the OIDC token the real service adds) but neither redelivers a refused
    push nor dead-letters (measured: /work/shared/reference/platform-notes.md).
    """

    def __init__(self, port: int | None = None, host: str = "127.0.0.1",
                 output: IO | None = None) -> None:
        self.host_port = f"{host}:{port or free_port()}"
        launcher = find_pubsub_emulator()
        if not shutil.which("java"):
            raise RuntimeError("Java is needed by the Pub/Sub emulator. " + PUBSUB_INSTALL_HINT)
        _, _, bound_port = self.host_port.rpartition(":")
        super().__init__("pubsub", [str(launcher), f"--host={host}", f"--port={bound_port}"],
                         output=output)
        try:
            wait_until_ready(f"http://{self.host_port}/", timeout=60, process=self.popen)
        except Exception:
            self.stop()
            raise


class FunctionServer(Process):
    """functions-framework serving one target of `functions/main.py`."""

    def __init__(self, target: str, env: Mapping[str, str], port: int | None = None,
                 output: IO | None = None, host: str = "127.0.0.1", wait: bool = True) -> None:
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        argv = [sys.executable, "-m", "functions_framework", "--target", target,
                "--source", str(FUNCTIONS_DIR / "main.py"), "--host", host,
                "--port", str(self.port)]
        full_env = dict(os.environ)
        full_env.update(env)
        full_env["PYTHONPATH"] = str(FUNCTIONS_DIR)
        full_env["FUNCTION_TARGET"] = target  # as Cloud Run functions sets it at launch
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        super().__init__(target, argv, env=full_env, cwd=FUNCTIONS_DIR, output=output)
        if not wait:  # the caller times the start itself
            return
        try:
            wait_until_ready(self.url + "/", timeout=30, process=self.popen)
        except Exception:
            self.stop()
            raise
