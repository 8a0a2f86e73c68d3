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
import contextlib
import ssl
import sys
import time
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

import h11
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

    def close_now(self) -> None:
        """Close without waiting for the socket to go."""
        self._transport.close()

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


class BodyTooLarge(Exception):
    """A response body longer than the caller's limit; the connection is closed."""


_READ_SIZE = 64 * 1024  # bytes asked for per read, as httpcore asks
_MAX_HEAD = 100 * 1024  # bytes of a response's status line and headers, as httpcore allows


class HTTP11Connection:
    """One keep-alive HTTP/1.1 connection, lent by :class:`OriginPool` to one request at a time.

    h11 speaks HTTP here as it does inside httpcore; this class only drives it. httpcore's
    connection wraps each step in a trace, takes an anyio lock (which yields to the event loop)
    twice a request and builds request and response models; without them a request costs a
    fifth less CPU. Failures are httpcore's exception types, as httpcore would raise them.
    """

    def __init__(
        self, origin: httpcore.Origin, stream: AsyncioStream, *, keepalive_expiry: float | None
    ) -> None:
        self._stream = stream
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        self._keepalive_expiry = keepalive_expiry
        self._expire_at: float | None = None
        self._closed = False
        default = 443 if origin.scheme == b"https" else 80
        self._host = (
            origin.host if origin.port in (None, default) else b"%b:%d" % (origin.host, origin.port)
        )

    def is_idle(self) -> bool:
        return not self._closed and self._h11.our_state is h11.IDLE

    def is_closed(self) -> bool:
        return self._closed

    def has_expired(self) -> bool:
        """Idle too long, or the server spoke (or closed) while nobody asked."""
        if self._expire_at is not None and time.monotonic() > self._expire_at:
            return True
        return bool(self._stream.get_extra_info("is_readable"))

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._stream.aclose()

    async def exchange(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        limit: int,
        *,
        read_timeout: float | None,
        write_timeout: float | None,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Status, headers and body of one request (without a body of its own); BodyTooLarge
        past ``limit`` bytes of body. Any failure closes the connection."""
        try:
            if not any(name.lower() == b"host" for name, _ in headers):
                headers = [(b"Host", self._host), *headers]
            try:
                request = h11.Request(method=method, target=target, headers=headers)
                data = self._h11.send(request) + self._h11.send(h11.EndOfMessage())
            except h11.LocalProtocolError as exc:
                raise httpcore.LocalProtocolError(str(exc)) from exc
            # A server may answer and close before reading the request: read its answer.
            with contextlib.suppress(httpcore.WriteError):
                await self._stream.write(data, write_timeout)
            event = await self._next(read_timeout)
            while isinstance(event, h11.InformationalResponse):
                event = await self._next(read_timeout)
            if not isinstance(event, h11.Response):
                raise httpcore.RemoteProtocolError(f"expected a response, got {event!r}")
            chunks = []
            size = 0
            while not isinstance(body := await self._next(read_timeout), h11.EndOfMessage):
                if not isinstance(body, h11.Data):
                    raise httpcore.RemoteProtocolError(f"expected a body, got {body!r}")
                size += len(body.data)
                if size > limit:
                    raise BodyTooLarge
                chunks.append(body.data)
        except BaseException:
            self._close_now()
            raise
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
            if self._keepalive_expiry is not None:
                self._expire_at = time.monotonic() + self._keepalive_expiry
        else:
            self._close_now()
        return event.status_code, event.headers.raw_items(), b"".join(chunks)

    async def _next(self, read_timeout: float | None) -> Any:
        """h11's next event, reading as much as it needs."""
        try:
            while (event := self._h11.next_event()) is h11.NEED_DATA:
                data = await self._stream.read(_READ_SIZE, read_timeout)
                if not data and self._h11.their_state is h11.SEND_RESPONSE:
                    raise httpcore.RemoteProtocolError(
                        "Server disconnected without sending a response."
                    )
                self._h11.receive_data(data)
        except h11.RemoteProtocolError as exc:
            raise httpcore.RemoteProtocolError(str(exc)) from exc
        if event is h11.PAUSED:
            raise httpcore.RemoteProtocolError("the server switched protocols")
        return event

    def _close_now(self) -> None:
        """Closed without waiting (a cancelled request cannot wait): never lent again."""
        self._closed = True
        self._stream.close_now()


class OriginPool:
    """Keep-alive HTTP/1.1 connections to one origin, one request per connection at a time.

    httpcore's general pool re-examines every connection on each request (quadratic in the pool
    size) and wraps each connection in another lock; the registry client already bounds
    concurrency per registry with a semaphore, so a stack of idle HTTP/1.1 connections is all the
    pooling it needs.
    """

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
        self._idle: list[HTTP11Connection] = []
        self._closed = False

    async def acquire(self, connect_timeout: float | None) -> HTTP11Connection:
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
        return HTTP11Connection(self.origin, stream, keepalive_expiry=self._keepalive_expiry)  # type: ignore[arg-type]

    async def release(self, connection: HTTP11Connection) -> None:
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
