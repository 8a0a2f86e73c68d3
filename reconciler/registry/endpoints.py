"""Registry endpoints: scheme and TLS per host, pooled connections, concurrency and rate.

Registries on loopback addresses speak plain HTTP by default, as Docker does; every other registry
is asked over verified TLS unless the config marks it insecure (then TLS without verification,
falling back to plain HTTP once if TLS cannot connect).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import httpcore
import structlog

from reconciler.config import Config, RegistryConfig
from reconciler.credentials import expand_path, normalize_key
from reconciler.errors import InputError
from reconciler.manifest import ACCEPT
from reconciler.reference import ImageReference
from reconciler.registry.exchange import USER_AGENT_BYTES, describe
from reconciler.transport import OriginPool

log = structlog.get_logger("streamlock.registry")

ACCEPT_BYTES = ACCEPT.encode()
DEFAULT_CONCURRENCY = 8
KEEPALIVE_EXPIRY = 30.0


def choose_scheme(host: str, config: RegistryConfig | None) -> tuple[str, bool]:
    """``(scheme, may fall back to plain HTTP)`` for a registry host.

    TLS unless the host is loopback (``localhost``, 127/8, ``::1``) with no TLS files configured,
    as Docker does; an ``insecure`` registry tries TLS (unverified) and may fall back to HTTP.
    A name is judged as written, never by what it resolves to.
    """
    if config is not None and config.insecure:
        return "https", True
    has_tls_files = config is not None and bool(config.ca_file or config.cert_file)
    if ImageReference(host, "x").is_loopback and not has_tls_files:
        return "http", False
    return "https", False


def split_host(host: str) -> tuple[str, int | None]:
    if host.startswith("["):
        end = host.index("]")
        rest = host[end + 1 :]
        return host[1:end], int(rest[1:]) if rest.startswith(":") else None
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        return name, int(port)
    return host, None


class RateLimiter:
    """Spaces requests ``1/rate`` seconds apart (a token bucket of one), per registry."""

    __slots__ = ("_clock", "_interval", "_next", "_sleep")

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._interval = 1.0 / rate
        self._next = float("-inf")
        self._clock = clock
        self._sleep = sleep

    def reserve(self, now: float) -> float:
        """Take the next slot; how long to wait for it from ``now``."""
        slot = max(now, self._next)
        self._next = slot + self._interval
        return slot - now

    async def wait(self) -> None:
        delay = self.reserve(self._clock())
        if delay > 0:
            await self._sleep(delay)


class Endpoint:
    """One registry host: its connections, limits, scheme and what we learned about its auth."""

    __slots__ = (
        "auth_scheme",
        "backend",
        "basic",
        "concurrency",
        "connections",
        "cred_key",
        "host",
        "hostname",
        "http_fallback",
        "limiter",
        "manifest_headers",
        "origin",
        "others",
        "plain_headers",
        "port",
        "realm",
        "scheme",
        "semaphore",
        "service",
        "ssl_context",
        "ssl_factory",
        "token_inflight",
        "tokens",
    )

    def __init__(
        self,
        host: str,
        cred_key: str,
        scheme: str,
        config: RegistryConfig | None,
        *,
        ssl_factory: Callable[[], ssl.SSLContext],
        backend: httpcore.AsyncNetworkBackend,
        http_fallback: bool,
        limiter: Callable[[float], RateLimiter] = RateLimiter,
    ) -> None:
        self.host = host
        self.cred_key = cred_key
        self.ssl_factory = ssl_factory
        self.ssl_context: ssl.SSLContext | None = None
        self.backend = backend
        self.http_fallback = http_fallback  # insecure: plain HTTP if TLS cannot connect
        hostname, port = split_host(host)
        self.hostname = hostname.encode("ascii") if hostname.isascii() else hostname.encode("idna")
        self.port = port
        self.plain_headers = [(b"Host", host.encode("ascii")), (b"User-Agent", USER_AGENT_BYTES)]
        self.manifest_headers = [*self.plain_headers, (b"Accept", ACCEPT_BYTES)]
        self.concurrency = max(1, config.concurrency if config is not None else DEFAULT_CONCURRENCY)
        self.semaphore = asyncio.Semaphore(self.concurrency)
        rate = config.requests_per_second if config is not None else None
        self.limiter = limiter(rate) if rate else None
        self.scheme, self.origin, self.connections = self._origin_pool(scheme)
        # Redirect targets (blob storage) and token realms on other origins.
        self.others: httpcore.AsyncConnectionPool | None = None
        self.auth_scheme: str | None = None  # learned from the first 401
        self.realm: str | None = None
        self.service: str | None = None
        self.basic: dict[str, bytes] = {}
        self.tokens: dict[str, tuple[bytes, float]] = {}
        self.token_inflight: dict[str, asyncio.Future[bytes]] = {}

    def _origin_pool(self, scheme: str) -> tuple[bytes, str, OriginPool]:
        port = self.port if self.port is not None else (443 if scheme == "https" else 80)
        pool = OriginPool(
            httpcore.Origin(scheme.encode("ascii"), self.hostname, port),
            ssl_context=self.tls() if scheme == "https" else None,
            backend=self.backend,
            keepalive_expiry=KEEPALIVE_EXPIRY,
            max_idle=self.concurrency,
        )
        return scheme.encode("ascii"), f"{scheme}://{self.host}", pool

    async def fall_back_to_http(self) -> bool:
        """An insecure registry that does not speak TLS: plain HTTP from now on (only once)."""
        if not self.http_fallback:
            return False
        self.http_fallback = False
        old = self.connections
        self.scheme, self.origin, self.connections = self._origin_pool("http")
        await old.aclose()
        log.info("insecure registry answers plain HTTP", registry=self.host)
        return True

    def other_origins(self) -> httpcore.AsyncConnectionPool:
        if self.others is None:
            self.others = httpcore.AsyncConnectionPool(
                ssl_context=self.tls(),
                max_connections=self.concurrency,
                keepalive_expiry=KEEPALIVE_EXPIRY,
                network_backend=self.backend,
            )
        return self.others

    def tls(self) -> ssl.SSLContext:
        """The TLS settings for this registry, built on first use (plain HTTP needs none)."""
        if self.ssl_context is None:
            self.ssl_context = self.ssl_factory()
        return self.ssl_context

    def url(self, target: str) -> httpcore.URL:
        return httpcore.URL(
            scheme=self.scheme, host=self.hostname, port=self.port, target=target.encode()
        )

    async def aclose(self) -> None:
        await self.connections.aclose()
        if self.others is not None:
            await self.others.aclose()


class Endpoints:
    """The endpoint of every registry host asked so far, made on first use from the config."""

    def __init__(
        self,
        config: Config,
        *,
        env: Mapping[str, str],
        base_dir: Path | None,
        backend: httpcore.AsyncNetworkBackend,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._config = config
        self._env = env  # HOME, for ~ in caFile and certFile
        self._base_dir = base_dir
        self._network_backend = backend
        self._clock = clock
        self._sleep = sleep
        self._by_host: dict[str, Endpoint] = {}
        self._closed = False

    async def aclose(self) -> None:
        endpoints, self._by_host = list(self._by_host.values()), {}
        self._closed = True
        for endpoint in endpoints:
            await endpoint.aclose()

    def get(self, host: str, cred_key: str) -> Endpoint:
        """The pooled client for a registry host, made on first use from its config entry."""
        endpoint = self._by_host.get(host)
        if endpoint is not None:
            return endpoint
        if self._closed:
            raise RuntimeError("registry client is closed")
        config = self.config_for(cred_key) or self.config_for(host)
        insecure = config is not None and config.insecure
        scheme, fallback = choose_scheme(host, config)
        endpoint = Endpoint(
            host,
            cred_key,
            scheme,
            config,
            ssl_factory=functools.partial(self._ssl_context, config, verify=not insecure),
            backend=self._network_backend,
            http_fallback=fallback,
            limiter=functools.partial(RateLimiter, clock=self._clock, sleep=self._sleep),
        )
        self._by_host[host] = endpoint
        return endpoint

    def config_for(self, name: str) -> RegistryConfig | None:
        """The config entry for a registry; Docker Hub's spellings all find ``docker.io``."""
        key = normalize_key(name)
        for candidate in self._config.registries:
            if normalize_key(candidate.host) == key:
                return candidate
        return None

    def _ssl_context(self, config: RegistryConfig | None, *, verify: bool) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if config is None:
            return context
        try:
            if config.ca_file and verify:
                context.load_verify_locations(cafile=str(self._path(config.ca_file)))
            if config.cert_file:
                key = self._path(config.key_file) if config.key_file else None
                context.load_cert_chain(
                    str(self._path(config.cert_file)), None if key is None else str(key)
                )
        except (OSError, ssl.SSLError) as exc:
            raise InputError(
                f"registry {config.host}: cannot load TLS files: {describe(exc)}"
            ) from exc
        return context

    def _path(self, text: str) -> Path:
        return expand_path(text, self._env, self._base_dir)
