"""A registry that misbehaves on purpose, on 127.0.0.1: what the fault proxy cannot script.

Repositories by name: ``endless/*`` answers a manifest with a body that never ends, ``loop/*``
redirects a manifest to itself forever, ``unauth/*`` challenges for a token and rejects every
token it issued, ``mismatch/*`` serves a valid manifest under a ``Docker-Content-Digest`` of other
bytes. Every answer is bounded: an endless body stops after ``ENDLESS_LIMIT`` bytes or
``ENDLESS_SECONDS``, whichever comes first, so a client that never gives up cannot hold it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fixtures.images import OCI_MANIFEST, build_image

ENDLESS_LIMIT = 256 * 1024 * 1024
ENDLESS_SECONDS = 60.0


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/v2/", "/v2"):
            self._send(200, {"Content-Type": "application/json"}, b"{}")
        elif path.startswith("/token"):
            body = json.dumps({"token": "rejected-token", "expires_in": 300}).encode()
            self._send(200, {"Content-Type": "application/json"}, body)
        elif path.startswith("/v2/unauth/"):
            realm = f"http://{self.headers.get('Host')}/token"
            challenge = f'Bearer realm="{realm}",service="hostile",scope="repository:x:pull"'
            self._send(401, {"WWW-Authenticate": challenge, "Content-Type": "application/json"},
                       b'{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}')  # fmt: skip
        elif path.startswith("/v2/loop/"):
            self._send(302, {"Location": self.path})
        elif path.startswith("/v2/mismatch/"):
            manifest = self.server.manifest
            wrong = "sha256:" + hashlib.sha256(manifest + b"x").hexdigest()
            headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": wrong}
            self._send(200, headers, manifest)
        elif path.startswith("/v2/endless/"):
            self._endless()
        else:
            self._send(404, {"Content-Type": "application/json"},
                       b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}')  # fmt: skip

    def _endless(self) -> None:
        digest = "sha256:" + hashlib.sha256(b"endless").hexdigest()
        self.send_response(200)
        self.send_header("Content-Type", OCI_MANIFEST)
        self.send_header("Docker-Content-Digest", digest)
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        chunk = b'{"schemaVersion": 2, "padding": "' + b"x" * 65536
        sent, started = 0, time.monotonic()
        with contextlib.suppress(OSError):
            while sent < ENDLESS_LIMIT and time.monotonic() - started < ENDLESS_SECONDS:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                chunk = b"x" * 65536
            self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    manifest: bytes = b""


class HostileRegistry:
    """start()/stop() or a context manager; ``host`` is ``127.0.0.1:PORT``."""

    def __init__(self) -> None:
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        assert self._server is not None, "not started"
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> HostileRegistry:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.manifest, _, _ = build_image(salt="hostile-mismatch")
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="hostile", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HostileRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
