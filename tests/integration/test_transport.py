"""The registry's own-origin connections: kept alive, closed when they must be, bounded bodies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpcore
import pytest

from reconciler.transport import AsyncioBackend, BodyTooLarge, OriginPool

Answer = Callable[[int], bytes]  # request number on its connection -> raw response


class Server:
    """A loopback HTTP/1.1 server that reads each request's head and writes a canned answer."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            for number in range(10):
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                self.requests.append(head)
                writer.write(self.answer(number))
                await writer.drain()
                if b"connection: close" in self.answer(number).lower():
                    break
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Answer], asyncio.Future[Server]]]:
    servers: list[Server] = []

    async def start(answer: Answer) -> Server:
        server = Server(answer)
        server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0)
        servers.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in servers:
        assert server.server is not None
        server.server.close()
        await server.server.wait_closed()


def ok(body: bytes = b"{}", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%b\r\n%b" % (len(body), extra, body)


def pool(port: int) -> OriginPool:
    return OriginPool(
        httpcore.Origin(b"http", b"127.0.0.1", port),
        ssl_context=None,
        backend=AsyncioBackend(),
        keepalive_expiry=30.0,
        max_idle=4,
    )


async def get(origins: OriginPool, limit: int = 1024) -> tuple[int, bytes]:
    connection = await origins.acquire(5.0)
    try:
        status, _, body = await connection.exchange(
            b"GET", b"/v2/", [(b"Accept", b"*/*")], limit, read_timeout=5.0, write_timeout=5.0
        )
    finally:
        await origins.release(connection)
    return status, body


async def test_requests_in_a_row_share_one_kept_alive_connection(serve) -> None:
    """Requests one after another travel on one kept-alive connection."""
    server = await serve(lambda number: ok(b'{"n": %d}' % number))
    origins = pool(server.port)
    answers = [await get(origins) for _ in range(3)]
    await origins.aclose()
    assert answers == [(200, b'{"n": 0}'), (200, b'{"n": 1}'), (200, b'{"n": 2}')]
    assert server.connections == 1
    assert all(b"\r\nHost: 127.0.0.1:" in head for head in server.requests)


async def test_a_connection_the_server_closes_is_not_lent_again(serve) -> None:
    """After an answer with ``Connection: close`` the next request opens a new connection."""
    server = await serve(lambda number: ok(extra=b"Connection: close\r\n"))
    origins = pool(server.port)
    answers = [await get(origins) for _ in range(2)]
    await origins.aclose()
    assert answers == [(200, b"{}"), (200, b"{}")]
    assert server.connections == 2


async def test_a_body_over_the_limit_is_refused_and_its_connection_closed(serve) -> None:
    """A body longer than the limit raises BodyTooLarge, and its connection is not reused."""
    server = await serve(lambda number: ok(b"x" * 5000))
    origins = pool(server.port)
    with pytest.raises(BodyTooLarge):
        await get(origins, limit=4096)
    assert await get(origins, limit=8192) == (200, b"x" * 5000)
    await origins.aclose()
    assert server.connections == 2


async def test_a_server_that_hangs_up_before_answering_is_a_protocol_error(serve) -> None:
    """A connection closed before any answer is httpcore's RemoteProtocolError (retried)."""
    server = await serve(lambda number: b"HTTP/1.1 200 OK\r\nConnection: close\r\n")  # cut short
    origins = pool(server.port)
    with pytest.raises(httpcore.RemoteProtocolError):
        await get(origins)
    await origins.aclose()


async def test_a_malformed_answer_is_a_protocol_error(serve) -> None:
    """An answer h11 cannot read is httpcore's RemoteProtocolError (retried, then reported)."""
    server = await serve(lambda number: b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n")
    origins = pool(server.port)
    with pytest.raises(httpcore.RemoteProtocolError):
        await get(origins)
    await origins.aclose()
