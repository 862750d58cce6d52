"""The socket side of the sandbox: HTTP/1.1 keep-alive, a Content-Length on every answer.

It knows nothing of Ortto: each request's method, path, headers and body go to a
`Responder` (the `Sandbox`), whose answer is written back, or the connection dropped.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# An answer: HTTP status and JSON body, or None for a connection closed without a response.
Answer = tuple[int, Any] | None
Responder = Callable[[str, str, Any, bytes], Answer]


class Listener(ThreadingHTTPServer):
    """Thread per connection; tracks open connections so stop() can close idle keep-alives."""

    daemon_threads = False
    block_on_close = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], answer: Responder) -> None:
        self.answer = answer
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, is_open: bool) -> None:
        with self._open_lock:
            (self._open.add if is_open else self._open.discard)(connection)

    def close_connections(self) -> None:
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client disconnects are routine for a server; only print real bugs."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, asks the Sandbox for the answer, writes it (or drops the connection)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no delayed-ACK stall
    server: Listener

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, *args: Any) -> None:
        """Quiet: the sandbox reports traffic through Sandbox.requests instead."""

    def _handle(self) -> None:
        length = self.headers.get("Content-Length") or "0"
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower() or (
            not length.isdigit()
        ):
            self.close_connection = True
            self._send(400, {"code": 400, "error": "send a JSON body with a Content-Length"})
            return
        raw = self.rfile.read(int(length))
        if len(raw) < int(length):  # the client went away mid-body: nothing to answer
            self.close_connection = True
            return
        answer = self.server.answer(self.command, self.path, self.headers, raw)
        if answer is None:
            self.close_connection = True
            return
        self._send(*answer)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
