"""werkzeug's threaded WSGI server, with HTTP/1.1 keep-alive that werkzeug itself disables.

werkzeug 2.1+ answers every request with `Connection: close` and then waits 10 ms for stray
request bytes; under a benchmark that means a new TCP connection and 10 ms per call. This
handler buffers the (always small) response, sets `Content-Length`, drains any unread request
body and keeps the connection open unless the client asked to close it. The server tracks open
connections so `close_connections()` can end idle keep-alive sockets at shutdown.
"""

from __future__ import annotations

import socket
import sys
import threading
import traceback

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

# An unread request body bigger than this is not drained: the connection is closed instead.
MAX_DRAIN = 1024 * 1024
# Set in the WSGI environ by an app whose answer must go out as it is produced (a stalled
# answer): headers first, then each chunk flushed, then the connection closed.
STREAM_ENVIRON_KEY = "local_google.stream"
_DROPPED = (ConnectionError, socket.timeout)


class _CountingInput:
    """Wraps `wsgi.input` to know whether the app read the whole request body."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size) if size is not None and size >= 0 else self._stream.read()
        self.count += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self._stream.readline(size)
        self.count += len(data)
        return data

    def readinto(self, buffer) -> int:
        n = self._stream.readinto(buffer) or 0
        self.count += n
        return n

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line


class KeepAliveHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections close after this many seconds.
    timeout = 120

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; Nagle + delayed ACK would add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        super().finish()

    def log(self, type: str, message: str, *args) -> None:
        if getattr(self.server, "verbose", False):
            super().log(type, message, *args)

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.environ = self.make_environ()
        body_input = _CountingInput(environ["wsgi.input"])
        environ["wsgi.input"] = body_input
        chunked = bool(environ.get("wsgi.input_terminated"))
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length, self.close_connection = 0, True

        started: list = []
        chunks: list[bytes] = []

        def start_response(status, headers, exc_info=None):
            if exc_info and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return chunks.append

        try:
            result = self.server.app(environ, start_response)
            if environ.get(STREAM_ENVIRON_KEY):
                self._drain(body_input, length, chunked)
                self._stream(started[0], started[1], result)
                return
            try:
                chunks.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        except _DROPPED:
            self.close_connection = True
            return
        except Exception:
            print(f"local Google: error on request\n{traceback.format_exc()}", file=sys.stderr)
            started[:] = ["500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")]]
            chunks[:] = [b"Internal Server Error"]
            self.close_connection = True

        try:
            self._drain(body_input, length, chunked)
            self._respond(started[0], started[1], b"".join(chunks))
        except _DROPPED:
            self.close_connection = True

    def _stream(self, status: str, headers: list[tuple[str, str]], result) -> None:
        """Sends the headers as given (with the full Content-Length), then each chunk as the
        app yields it, then closes the connection, complete or not."""
        self.close_connection = True
        code_text, _, reason = status.partition(" ")
        try:
            self.send_response(int(code_text), reason)
            for key, value in headers:
                if key.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                    self.send_header(key, value)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.flush()
            for chunk in result:
                if chunk:
                    self.wfile.write(chunk)
                    self.wfile.flush()
        except _DROPPED:
            pass
        finally:
            if hasattr(result, "close"):
                result.close()

    def _drain(self, body_input: _CountingInput, length: int, chunked: bool) -> None:
        if chunked:
            drained = 0
            while drained <= MAX_DRAIN:
                data = body_input.read(65536)
                if not data:
                    return
                drained += len(data)
            self.close_connection = True
            return
        remaining = length - body_input.count
        if remaining <= 0:
            return
        if remaining > MAX_DRAIN:
            self.close_connection = True
            return
        while remaining > 0:
            data = body_input.read(min(remaining, 65536))
            if not data:
                self.close_connection = True
                return
            remaining -= len(data)

    def _respond(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        code_text, _, reason = status.partition(" ")
        code = int(code_text)
        self.send_response(code, reason)
        declared_length = None
        for key, value in headers:
            lowered = key.lower()
            if lowered == "content-length":
                declared_length = value
                continue
            if lowered in ("connection", "transfer-encoding", "keep-alive"):
                continue
            self.send_header(key, value)
        has_body = self.command != "HEAD" and not (100 <= code < 200 or code in (204, 304))
        if self.command == "HEAD" and declared_length is not None:
            self.send_header("Content-Length", declared_length)
        elif has_body:
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if has_body and body:
            self.wfile.write(body)
        self.wfile.flush()


class KeepAliveServer(ThreadedWSGIServer):
    """One thread per connection; remembers connections so shutdown can close idle ones."""

    verbose = False

    def __init__(self, host: str, port: int, app) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(host, port, app, handler=KeepAliveHandler)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
