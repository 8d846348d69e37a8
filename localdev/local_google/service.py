"""`LocalGoogle`: builds the backend and serves it on a real port from a background thread.

Used in-process by tests and by the CLI (`__main__.py`). `stop()` also closes idle
keep-alive connections and wakes requests held open by `timeout` faults.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from .backend import DEFAULT_CERTS_MAX_AGE, Backend
from .control import GoogleControl
from .directory import Client
from .http_server import KeepAliveServer
from .oauth_state import DEFAULT_CODE_TTL
from .server import create_app

DEFAULT_CLIENT_ID = "local-dev-client.apps.googleusercontent.com"
DEFAULT_CLIENT_SECRET = "local-dev-secret"
DEFAULT_ORIGINS = ("http://localhost:8080",)


class LocalGoogle:
    """A local Google (OAuth server, certs, userinfo, Drive appData, GIS script, consent page).

    Example:
        google = LocalGoogle(client_id="cid.apps.googleusercontent.com", client_secret="s3cret")
        google.start(host="127.0.0.1", port=0)
        ... google.url, google.host_port, google.control.mint_code(...) ...
        google.stop()
    """

    def __init__(
        self,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        javascript_origins: Iterable[str] = DEFAULT_ORIGINS,
        *,
        refresh_token_mode: str = "first_consent",  # noqa: S107 (a mode name, not a secret)
        testing_mode: bool = False,
        latency_ms: int = 0,
        code_ttl: int = DEFAULT_CODE_TTL,
        certs_max_age: int = DEFAULT_CERTS_MAX_AGE,
        project_id: str | None = None,
        verbose: bool = False,
    ) -> None:
        self.backend = Backend.create(
            latency_ms=latency_ms, code_ttl=code_ttl, certs_max_age=certs_max_age
        )
        self.backend.directory.put_client(
            Client(
                client_id=client_id,
                client_secret=client_secret,
                javascript_origins=[o.rstrip("/") for o in javascript_origins],
                testing_mode=testing_mode,
                refresh_token_mode=refresh_token_mode,
                project_id=project_id or "",
            )
        )
        self.client_id = client_id
        self.client_secret = client_secret
        self.verbose = verbose
        self.app = create_app(self.backend)
        self._server: KeepAliveServer | None = None
        self._thread: threading.Thread | None = None
        self._control: GoogleControl | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> LocalGoogle:
        """Binds (port 0 = a free port) and serves from a daemon thread. Returns self."""
        if self._server is not None:
            raise RuntimeError("already started")
        self.backend.stopping.clear()
        server = KeepAliveServer(host, port, self.app)
        server.verbose = self.verbose
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1},
            name="local-google", daemon=True,
        )
        self._thread.start()
        self.backend.transmitter.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes open connections. Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        self.backend.stopping.set()
        self.backend.transmitter.stop()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("not started")
        return self._server.server_address[1]

    @property
    def host_port(self) -> str:
        """`host:port`, the value `GOOGLE_EMULATOR_HOST` takes."""
        if self._server is None:
            raise RuntimeError("not started")
        host = self._server.server_address[0]
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host_port}"

    def service_account_key(self, email: str, project_id: str = "local-project") -> dict:
        """A new key file for the service account `email`, its `token_uri` this server's `/token`.

        Written to a file named by `GOOGLE_APPLICATION_CREDENTIALS`, it lets google-auth's
        `id_token.fetch_id_token` get ID tokens for that account from this server.
        """
        _, _, key_file = self.backend.service_accounts.register(
            email, project_id, roles=[], public_key_pem=None, base_url=self.url)
        assert key_file is not None  # a generated key comes with its file
        return key_file

    @property
    def control(self) -> GoogleControl:
        """A control-API client for this server (one per server, keeps its connection)."""
        if self._control is None or self._control.base_url != self.url:
            self._control = GoogleControl(self.url)
        return self._control

    def __enter__(self) -> LocalGoogle:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
