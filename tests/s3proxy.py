"""A tiny HTTP proxy in front of moto that can misbehave the way real stores do.

moto does not enforce IAM nor throttle, so the proxy answers in its place: every request with
403 AccessDenied (`deny`), or the next `throttle` requests with 503 SlowDown (-1: all of them),
and forwards everything else to moto unchanged (moto does not check signatures, so the Host
header the client signed for does not matter).
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}


def error_document(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>proxy</RequestId></Error>"
    ).encode()


class S3Proxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.deny = False
        self.throttle = 0
        self.answered: Counter[int] = Counter()  # status codes sent, by the proxy or moto
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def _verdict(self) -> tuple[int, bytes] | None:
        with self._lock:
            if self.deny:
                return 403, error_document("AccessDenied", "Access Denied")
            if self.throttle:
                if self.throttle > 0:
                    self.throttle -= 1
                return 503, error_document("SlowDown", "Please reduce your request rate.")
            return None

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        connection = http.client.HTTPConnection(
            self.upstream.hostname, self.upstream.port, timeout=30
        )
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test's output is the assertions, not an access log

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                body = self._body()
                verdict = proxy._verdict()
                if verdict is not None:
                    status, document = verdict
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(document)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(document)
                    proxy.answered[status] += 1
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                if body:
                    headers["Content-Length"] = str(len(body))
                status, answer_headers, answer = proxy._forward(
                    self.command, self.path, headers, body
                )
                self.send_response(status)
                for name, value in answer_headers:
                    if name.lower() not in HOP_BY_HOP | {"content-length", "server", "date"}:
                        self.send_header(name, value)
                length = {k.lower(): v for k, v in answer_headers}.get("content-length")
                if self.command != "HEAD" or not length:
                    length = str(len(answer))
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer)
                proxy.answered[status] += 1

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        return Handler

    @contextmanager
    def running(self) -> Iterator[S3Proxy]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join()


def add_profile(monkeypatch: Any, name: str, **profile: Any) -> None:
    """Add a storage profile to the `s3` fixture's FILEORG_PROFILES (same credentials)."""
    import json
    import os

    from storage.settings import get_settings

    profiles = json.loads(os.environ["FILEORG_PROFILES"])
    profiles[name] = {**profiles["s3"], **profile}
    monkeypatch.setenv("FILEORG_PROFILES", json.dumps(profiles))
    get_settings.cache_clear()
