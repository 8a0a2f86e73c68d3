"""An asyncio network backend for httpcore: sockets without the anyio layer.

httpcore speaks HTTP (h11 parses it); a *network backend* only moves bytes. Its default backend
goes through anyio, and the connection pool asks every idle connection "is the socket readable?"
on each request, which anyio answers by rebuilding a dict of socket attributes. On a registry
that answers in a millisecond that bookkeeping was a third of the client's CPU. This backend
answers from state it already holds (buffered bytes, EOF, a closed transport) and moves bytes with
a plain :class:`asyncio.Protocol`. HTTP itself stays httpcore's.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import Iterable
from typing import Any

if "httpcore" not in sys.modules and "trio" not in sys.modules:
    # httpcore looks for trio when first imported (for its trio backend), and importing trio
    # costs more than httpcore itself: a third of the registry shell's start-up where trio is
    # installed. streamlock runs on asyncio only, so trio is hidden for that one import.
    sys.modules["trio"] = None  # type: ignore[assignment]
    try:
        import httpcore
    finally:
        del sys.modules["trio"]

import httpcore

_HIGH_WATER = 1024 * 1024  # pause reading when this much is buffered and unread
_CLOSE_TIMEOUT = 2.0  # a TLS close waits for the peer's close_notify at most this long


class _Protocol(asyncio.Protocol):
    """Buffers what arrives; one reader at a time waits for more."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.drain_waiter: asyncio.Future[None] | None = None
        self.paused_reading = False
        self.paused_writing = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
            self.paused_reading = True
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self.eof = True
        if exc is not None:
            self.error = exc
        self._wake()
        self._wake_drain()

    def pause_writing(self) -> None:
        self.paused_writing = True

    def resume_writing(self) -> None:
        self.paused_writing = False
        self._wake_drain()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_drain(self) -> None:
        waiter, self.drain_waiter = self.drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _expire(waiter: asyncio.Future[None], error: type[Exception], message: str) -> None:
    if not waiter.done():
        waiter.set_exception(error(message))


async def _wait(
    waiter: asyncio.Future[None], timeout: float | None, error: type[Exception], message: str
) -> None:
    """Wait for the protocol to wake ``waiter``; ``error`` if ``timeout`` seconds pass first."""
    handle = None
    if timeout is not None:
        handle = asyncio.get_running_loop().call_later(timeout, _expire, waiter, error, message)
    try:
        await waiter
    finally:
        if handle is not None:
            handle.cancel()


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One TCP (or TLS) connection."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.buffer and not protocol.eof:
            protocol.waiter = asyncio.get_running_loop().create_future()
            await _wait(protocol.waiter, timeout, httpcore.ReadTimeout, "timed out reading")
        if protocol.buffer:
            data = bytes(protocol.buffer[:max_bytes])
            del protocol.buffer[:max_bytes]
            if protocol.paused_reading and len(protocol.buffer) < _HIGH_WATER // 2:
                protocol.paused_reading = False
                self._transport.resume_reading()
            return data
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error)) from protocol.error
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if protocol.error is not None or self._transport.is_closing():
            raise httpcore.WriteError("connection closed")
        self._transport.write(buffer)
        if protocol.paused_writing:
            protocol.drain_waiter = asyncio.get_running_loop().create_future()
            await _wait(protocol.drain_waiter, timeout, httpcore.WriteTimeout, "timed out writing")
            if protocol.error is not None:
                raise httpcore.WriteError(str(protocol.error)) from protocol.error

    async def aclose(self) -> None:
        """Close and wait until the socket is really gone (a TLS close takes a round trip)."""
        self._transport.close()
        closed = self._protocol.closed
        if closed.done():
            return
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await asyncio.shield(closed)
        except TimeoutError:
            self._transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(
                self._transport,
                self._protocol,
                ssl_context,
                server_hostname=server_hostname,
                ssl_handshake_timeout=timeout,
            )
        except TimeoutError as exc:
            self._transport.close()
            raise httpcore.ConnectTimeout(str(exc) or "TLS handshake timed out") from exc
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc)) from exc
        if transport is None:
            raise httpcore.ConnectError("TLS handshake failed")
        return AsyncioStream(transport, self._protocol)  # type: ignore[arg-type]

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            protocol = self._protocol
            return bool(protocol.buffer) or protocol.eof or self._transport.is_closing()
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """TCP connections on the running asyncio loop."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        protocol = _Protocol()
        try:
            async with asyncio.timeout(timeout):
                transport, _ = await loop.create_connection(
                    lambda: protocol,
                    host,
                    port,
                    local_addr=None if local_address is None else (local_address, 0),
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        # asyncio already sets TCP_NODELAY on TCP transports.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            for option in socket_options or ():
                sock.setsockopt(*option)
        return AsyncioStream(transport, protocol)  # type: ignore[arg-type]

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not supported")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _Unshared:
    """The lock of a connection only one request uses at a time: no lock at all."""

    async def __aenter__(self) -> _Unshared:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class HTTP11Connection(httpcore.AsyncHTTP11Connection):
    """httpcore's HTTP/1.1 connection without its state lock.

    The lock guards a connection shared by concurrent requests; :class:`OriginPool` lends a
    connection to one request at a time. On asyncio the lock is anyio's, which yields to the
    event loop on every acquisition: two more turns of the loop for each request.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state_lock = _Unshared()  # type: ignore[assignment]


class OriginPool:
    """Keep-alive HTTP/1.1 connections to one origin, one request per connection at a time.

    httpcore's general pool re-examines every connection on each request (quadratic in the pool
    size) and wraps each connection in another lock; the registry client already bounds
    concurrency per registry with a semaphore, so a stack of idle httpcore HTTP/1.1 connections is
    all the pooling it needs.
    """

    connection_class: type[httpcore.AsyncHTTP11Connection] = HTTP11Connection

    def __init__(
        self,
        origin: httpcore.Origin,
        *,
        ssl_context: ssl.SSLContext | None,
        backend: httpcore.AsyncNetworkBackend,
        keepalive_expiry: float,
        max_idle: int,
    ) -> None:
        self.origin = origin
        self._host = origin.host.decode("ascii")
        self._ssl_context = ssl_context
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["http/1.1"])
        self._backend = backend
        self._keepalive_expiry = keepalive_expiry
        self._max_idle = max_idle
        self._idle: list[httpcore.AsyncHTTP11Connection] = []
        self._closed = False

    async def acquire(self, connect_timeout: float | None) -> httpcore.AsyncHTTP11Connection:
        """A live idle connection, or a newly connected one."""
        while self._idle:
            connection = self._idle.pop()
            if connection.is_idle() and not connection.has_expired():
                return connection
            await connection.aclose()
        stream = await self._backend.connect_tcp(
            self._host, self.origin.port, timeout=connect_timeout
        )
        if self.origin.scheme == b"https":
            assert self._ssl_context is not None
            stream = await stream.start_tls(
                self._ssl_context, server_hostname=self._host, timeout=connect_timeout
            )
        return self.connection_class(self.origin, stream, keepalive_expiry=self._keepalive_expiry)

    async def release(self, connection: httpcore.AsyncHTTP11Connection) -> None:
        """Back to the stack if it can serve another request; closed otherwise."""
        if (
            not self._closed
            and connection.is_idle()
            and not connection.is_closed()
            and len(self._idle) < self._max_idle
        ):
            self._idle.append(connection)
        else:
            await connection.aclose()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.aclose()
