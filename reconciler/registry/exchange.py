"""One HTTP exchange with a registry: attempts, retries, limits, and what a response is.

Retries with stamina: ``Retry-After`` honoured on 429 and 5xx (capped), else jittered exponential
backoff; connection errors too; bounded in attempts, in retry time and per attempt. Nothing from
httpcore leaves this module untranslated: :meth:`Exchanger.retrying` raises RegistryError.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

import httpcore
import stamina

from reconciler.errors import (
    MalformedAnswer,
    RateLimited,
    RegistryError,
    RegistryUnavailable,
)
from reconciler.manifest import load_json
from reconciler.reference import redact
from reconciler.transport import BodyTooLarge

if TYPE_CHECKING:
    from reconciler.registry.endpoints import Endpoint

USER_AGENT = "streamlock/0.1"
USER_AGENT_BYTES = USER_AGENT.encode()
MAX_ERROR_BODY = 64 * 1024
MAX_ERROR_TEXT = 300  # of a registry's error message, in ours

Observer = Callable[[str, int, float], None]
# The loop time by which the current tag's resolution must end; the client sets it per tag.
DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "streamlock_registry_deadline", default=None
)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try one request. Tests pass zero waits; production keeps the defaults."""

    attempts: int = 5
    timeout: float = 60.0  # seconds for all attempts of one request
    wait_initial: float = 0.2
    wait_max: float = 10.0
    wait_jitter: float = 1.0
    max_retry_after: float = 60.0  # a longer Retry-After is cut to this


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds per step of one attempt; ``attempt`` bounds it all, so a trickle cannot stall."""

    connect: float = 10.0
    read: float = 30.0  # between two reads
    write: float = 30.0
    pool: float = 120.0
    attempt: float = 120.0  # from connecting to the last byte of the body


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date; None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class RetryableResponse(Exception):
    """A response worth another attempt (429, 5xx); carries the server's Retry-After (s)."""

    def __init__(self, status_code: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.retry_after = retry_after


class TooLarge(Exception):
    pass


NETWORK_ERRORS = (
    httpcore.NetworkError,
    httpcore.TimeoutException,
    httpcore.RemoteProtocolError,
)
TRANSPORT_ERRORS = (
    *NETWORK_ERRORS,
    httpcore.LocalProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
    OSError,
)


FAILURES = (RetryableResponse, TooLarge, *TRANSPORT_ERRORS)


class Response:
    __slots__ = ("body", "headers", "status", "url")

    def __init__(
        self, status_code: int, headers: list[tuple[bytes, bytes]], body: bytes, url: str
    ) -> None:
        self.status = status_code
        self.headers = headers
        self.body = body
        self.url = url

    def header(self, name: bytes) -> str | None:
        """First value of a header; ``name`` in lower case."""
        for key, value in self.headers:
            if key.lower() == name:
                return value.decode("latin-1")
        return None

    def error_text(self) -> str:
        """The registry's own error code and message, for the failure message."""
        try:
            data = load_json(self.body, "the error body", limit=MAX_ERROR_BODY)
            first = data["errors"][0]
            text = f"{first.get('code', '')}: {first.get('message', '')}".strip(": ")
        except (RegistryError, KeyError, IndexError, TypeError, AttributeError):
            return ""
        return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 3] + "..."


class Exchanger:
    """Sends one request to a registry endpoint: under its concurrency and rate limits, within
    the attempt timeout, retried with stamina, failures translated to RegistryError."""

    def __init__(self, retry: RetryPolicy, timeouts: Timeouts, observer: Observer | None) -> None:
        self._retry = retry
        self._extensions = {
            "timeout": {
                "connect": timeouts.connect,
                "read": timeouts.read,
                "write": timeouts.write,
                "pool": timeouts.pool,
            }
        }
        self._observer = observer
        self._read_timeout = timeouts.read
        self._write_timeout = timeouts.write
        self._connect_timeout = timeouts.connect
        self._attempt_timeout = timeouts.attempt

    async def retrying(
        self,
        endpoint: Endpoint,
        method: bytes,
        target: str,
        headers: list[tuple[bytes, bytes]],
        limit: int,
        content: bytes | None = None,
    ) -> Response:
        """The first attempt runs bare (no retry machinery on the hot path); stamina the rest."""
        try:
            return await self._attempt(endpoint, method, target, headers, limit, content)
        except FAILURES as exc:
            first: BaseException | None = exc
            if self._backoff(exc) is False:
                raise self._translate(endpoint, exc) from exc
        policy = self._retry
        result: Response | None = None
        attempts = 1
        try:
            async for attempt in stamina.retry_context(
                on=self._backoff,
                attempts=max(1, policy.attempts),
                timeout=policy.timeout or None,
                wait_initial=policy.wait_initial,
                wait_max=policy.wait_max,
                wait_jitter=policy.wait_jitter,
            ):
                with attempt:
                    attempts = attempt.num  # the first one is the bare attempt's failure
                    if first is not None:
                        failure, first = first, None
                        raise failure
                    result = await self._attempt(endpoint, method, target, headers, limit, content)
        except FAILURES as exc:
            raise self._translate(endpoint, exc, attempts) from exc
        assert result is not None
        return result

    def _backoff(self, exc: BaseException) -> bool | float:
        decision = backoff(exc, self._retry)
        deadline = DEADLINE.get()
        if isinstance(decision, bool) or deadline is None:
            return decision
        if asyncio.get_running_loop().time() + decision > deadline:
            return False  # the server's wait outlasts the tag's budget: fail now, saying so
        return decision

    def _translate(
        self, endpoint: Endpoint, exc: BaseException, attempts: int = 1
    ) -> RegistryError:
        if isinstance(exc, RegistryError):
            return exc
        if isinstance(exc, RetryableResponse):
            if exc.status_code == 429:
                return RateLimited(
                    f"{endpoint.host}: rate limited (HTTP 429) after {attempts} attempts",
                    retry_after=exc.retry_after,
                )
            return RegistryUnavailable(
                f"{endpoint.host}: HTTP {exc.status_code} after {attempts} attempts"
            )
        if isinstance(exc, TooLarge):
            return MalformedAnswer(f"{endpoint.host}: {exc}")
        if is_certificate_error(exc):
            return RegistryUnavailable(
                f"{endpoint.host}: TLS certificate not trusted ({describe(exc)})",
                hint="set caFile for this registry in streamlock.yaml",
            )
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return RegistryUnavailable(f"{endpoint.host}: {describe(exc)}{tries}")

    async def _attempt(
        self,
        endpoint: Endpoint,
        method: bytes,
        target: str,
        headers: list[tuple[bytes, bytes]],
        limit: int,
        content: bytes | None = None,
    ) -> Response:
        """One HTTP exchange under the registry's concurrency and rate limits."""
        own = target.startswith("/")  # else an absolute URL on another origin
        async with endpoint.semaphore:
            if endpoint.limiter is not None:
                await endpoint.limiter.wait()
            started = time.perf_counter() if self._observer is not None else 0.0
            try:
                async with asyncio.timeout(self._attempt_timeout):
                    if own:
                        code, response_headers, body = await self._exchange_own(
                            endpoint, method, target, headers, limit
                        )
                    else:
                        code, response_headers, body = await self._exchange_other(
                            endpoint, method, target, headers, limit, content
                        )
            except TimeoutError as exc:
                raise httpcore.ReadTimeout(
                    f"no complete answer within {self._attempt_timeout:g} s"
                ) from exc
        if self._observer is not None:
            self._observer(endpoint.host, code, time.perf_counter() - started)
        response = Response(
            code, response_headers, body, endpoint.origin + target if own else target
        )
        if code == 429 or code >= 500:
            retry_after = parse_retry_after(response.header(b"retry-after"), datetime.now(UTC))
            raise RetryableResponse(code, retry_after)
        return response

    async def _exchange_own(
        self,
        endpoint: Endpoint,
        method: bytes,
        target: str,
        headers: list[tuple[bytes, bytes]],
        limit: int,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The hot path: a request to the registry's own origin on a kept-alive connection."""
        pool = endpoint.connections
        try:
            connection = await pool.acquire(self._connect_timeout)
        except httpcore.ConnectError:
            # Unless another request already switched it, only an insecure endpoint may retry.
            if pool is endpoint.connections and not await endpoint.fall_back_to_http():
                raise
            pool = endpoint.connections
            connection = await pool.acquire(self._connect_timeout)
        try:
            return await connection.exchange(
                method,
                target.encode(),
                headers,
                limit,
                read_timeout=self._read_timeout,
                write_timeout=self._write_timeout,
            )
        except BodyTooLarge as exc:
            # No query: a signed storage URL's query is a credential of its own.
            raise TooLarge(f"response to {safe_url(target)} larger than {limit} bytes") from exc
        finally:
            await pool.release(connection)

    async def _exchange_other(
        self,
        endpoint: Endpoint,
        method: bytes,
        url: str,
        headers: list[tuple[bytes, bytes]],
        limit: int,
        content: bytes | None = None,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """A request to another origin: a redirect target or the token realm."""
        response = await endpoint.other_origins().handle_async_request(
            httpcore.Request(
                method,
                httpcore.URL(url),
                headers=headers,
                content=content,
                extensions=self._extensions,
            )
        )
        return response.status, response.headers, await read_body(response, limit, url)


def backoff(exc: BaseException, policy: RetryPolicy) -> bool | float:
    """stamina's hook: retry or not, and how long the server asked us to wait (capped)."""
    if isinstance(exc, RetryableResponse):
        if exc.retry_after is not None:
            return min(exc.retry_after, policy.max_retry_after)
        return True
    if isinstance(exc, NETWORK_ERRORS):
        return not is_certificate_error(exc)
    return False


async def read_body(response: httpcore.Response, limit: int, what: str) -> bytes:
    """The whole body, refusing more than ``limit`` bytes; the response is closed after."""
    try:
        chunks = []
        size = 0
        async for chunk in response.stream:  # type: ignore[union-attr]
            size += len(chunk)
            if size > limit:
                # No query: a signed storage URL's query is a credential of its own.
                raise TooLarge(f"response to {safe_url(what)} larger than {limit} bytes")
            chunks.append(chunk)
    finally:
        await response.aclose()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class Abandoned(Exception):
    """The asker doing a shared fetch ran out of its own time; a waiter asks again itself."""


async def shared(
    inflight: dict[str, asyncio.Future[_T]], key: str, fetch: Callable[[], Awaitable[_T]]
) -> _T:
    """One ``fetch`` per key at a time: concurrent askers await the first asker's result.

    If the first asker is cancelled (its tag's budget ran out), the waiters are not: the next one
    fetches in its place.
    """
    while (pending := inflight.get(key)) is not None:
        try:
            return await asyncio.shield(pending)
        except Abandoned:
            continue
    future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
    inflight[key] = future
    try:
        result = await fetch()
    except asyncio.CancelledError:
        future.set_exception(Abandoned())
        future.exception()  # retrieved: waiters that care re-raise it
        raise
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: the waiters re-raise it, nobody else must
        raise
    finally:
        del inflight[key]
    future.set_result(result)
    return result


def safe_url(url: str) -> str:
    """A URL for messages: no userinfo and no query (a signed URL's query is a credential)."""
    parts = urlsplit(url.partition("?")[0])
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else redact(parts.path)


def detail(response: Response) -> str:
    text = response.error_text()
    return f" ({text})" if text else ""


def is_certificate_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def describe(exc: BaseException) -> str:
    if isinstance(exc, httpcore.LocalProtocolError):
        # Its text quotes the offending request header, which may be the Authorization header.
        return "the request could not be sent (invalid header)"
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."
