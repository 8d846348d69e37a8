"""A cold instance's first downloads, overlapped with the sign-in that needs them.

On a new instance the first sign-in would otherwise wait, one after the other, for the client
secret, the sealing public key, the session key, the log key, Google's certificates and the
Firestore channel. `ColdStartPrefetch` owns a small thread pool and starts them side by side: the
certificates and the channel while Google works on the code, the client secret and the other
`checks` (the session key, the log key) while the public key is read. Its failures are
ignored here: the step that needs the result repeats it and reports the error properly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..googleapis.certificates import CertificateCache
from ..store.sealing import TokenSealer
from ..store.secrets import SecretSource
from ..store.users import UserStore


class ColdStartPrefetch:
    """Starts the downloads a sign-in needs, once each, and reads the secrets side by side."""

    def __init__(
        self,
        *,
        secrets: SecretSource,
        client_secret_version: str,
        sealer: TokenSealer,
        certificates: CertificateCache,
        store: UserStore,
        checks: tuple[Callable[[], object], ...] = (),
    ) -> None:
        self._secrets = secrets
        self._client_secret_version = client_secret_version
        self._sealer = sealer
        self._certificates = certificates
        self._store = store
        self._checks = checks
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="prefetch")
        self._connect_started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start downloading stale certificates, and the Firestore connection once per instance."""
        if self._certificates.stale():
            self._pool.submit(self._certificates.certs_for, None)
        with self._lock:
            connect, self._connect_started = not self._connect_started, True
        if connect:
            self._pool.submit(self._store.connect)


    def client_secret(self) -> str:
        """The OAuth client secret, once the sealing key and the `checks` are known to work too.

        All are read before the code is spent, so a missing key fails before Google issues
        tokens. On a cold instance the reads run side by side.

        Raises:
            Unavailable, Misconfigured: from Secret Manager or a key's format.
        """
        if self._secrets.is_cached(self._client_secret_version):
            self._sealer.check_ready()
            for check in self._checks:  # served from memory once read
                check()
            return self._secrets.get(self._client_secret_version).data.decode()
        secret = self._pool.submit(self._secrets.get, self._client_secret_version)
        pending = [self._pool.submit(check) for check in self._checks]
        self._sealer.check_ready()
        for future in pending:
            future.result()
        return secret.result().data.decode()

    def warm_up(self) -> None:
        """A new instance's first work, done before its first sign-in needs it.

        Raises whatever a step raises: the sign-in repeats the step and answers it.
        """
        self.start()
        self._secrets.get(self._client_secret_version)
        self._sealer.check_ready()
        for check in self._checks:
            check()
