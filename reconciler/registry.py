"""The registry shell: what does a reference point to right now?

One pooled HTTP/1.1 client per registry host (httpcore, the layer beneath httpx: the hot path
spends a third less CPU per request without httpx's request/response models). A tag whose image
the lock already holds costs one ``HEAD``; a cold tag costs one manifest ``GET`` (its sha256
checked) plus whatever is not cached by digest yet (config blob, platform manifest). Everything
fetched by digest is cached for the client's lifetime, since digests are immutable.

Around that: Basic and Bearer auth from the registry's own ``WWW-Authenticate`` (tokens cached
per registry and scope until they expire), retries with stamina (``Retry-After`` honoured on 429
and 5xx, else jittered exponential backoff; connection errors too; bounded in attempts, in retry
time and per attempt), per-registry concurrency and request rate, mirrors tried in order, and
``allowedRegistries``. Credentials go only to the registry's origin and its token realm.

Nothing from httpcore escapes: failures become :mod:`reconciler.errors`, and :meth:`resolve`
turns those into :class:`~reconciler.image.ImportFailure` values.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import os
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, urlencode, urljoin, urlsplit

import httpcore
import stamina
import structlog

from reconciler import status
from reconciler.config import Config, RegistryConfig
from reconciler.credentials import Credential, CredentialStore, expand_path, normalize_key
from reconciler.errors import (
    AuthError,
    DigestMismatch,
    InputError,
    ManifestUnknown,
    RateLimited,
    RegistryError,
    RegistryUnavailable,
    StreamlockError,
    UnsupportedManifest,
)
from reconciler.image import (
    PRESERVE_ORIGINAL,
    Image,
    ImportFailure,
    ImportRequest,
    Observation,
)
from reconciler.manifest import (
    ACCEPT,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    ImageConfig,
    ImageManifest,
    Manifest,
    Platform,
    load_json,
    parse_config,
    parse_manifest,
    verify_digest,
)
from reconciler.reference import ImageReference, redact
from reconciler.transport import AsyncioBackend, OriginPool

log = structlog.get_logger("streamlock.registry")

USER_AGENT = "streamlock/0.1"
USER_AGENT_BYTES = USER_AGENT.encode()
ACCEPT_BYTES = ACCEPT.encode()
DEFAULT_CONCURRENCY = 8
DEFAULT_TOKEN_TTL = 60.0
TOKEN_MARGIN = 5.0
MAX_REDIRECTS = 5
KEEPALIVE_EXPIRY = 30.0
MAX_TAG_PAGES = 1000
MAX_TAG_LIST_BYTES = 8 * 1024 * 1024  # a page of 10,000 long tag names fits several times
MAX_ERROR_BODY = 64 * 1024
MAX_ERROR_TEXT = 300  # of a registry's error message, in ours
MAX_TOKEN_BODY = 1024 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HEADER_TOKEN = re.compile(r"[\x21-\x7e]+\Z")  # visible ASCII: safe in an Authorization header

Observer = Callable[[str, int, float], None]
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


# --- pure helpers -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: ``basic`` or ``bearer`` with its parameters."""

    scheme: str
    params: Mapping[str, str]


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_CHALLENGE_PART = re.compile(
    rf'\s*(?:(?P<key>{_TOKEN})\s*=\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^\s,]*))'
    rf"|(?P<scheme>{_TOKEN})(?:\s+|$|(?=,)))\s*,?"
)


def parse_www_authenticate(header: str) -> tuple[Challenge, ...]:
    """Parse challenges as ``key="value"`` pairs; scopes hold commas, so never split on ``,``."""
    challenges: list[tuple[str, dict[str, str]]] = []
    position = 0
    header = header.strip()
    while position < len(header):
        match = _CHALLENGE_PART.match(header, position)
        if match is None or match.end() == position:
            break
        position = match.end()
        if match.group("scheme") is not None:
            challenges.append((match.group("scheme").lower(), {}))
        elif challenges:
            quoted = match.group("quoted")
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else match.group("bare")
            challenges[-1][1][match.group("key").lower()] = value
    return tuple(Challenge(scheme, params) for scheme, params in challenges)


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


def mirror_location(mirror: str, repository: str) -> tuple[str, str]:
    """``mirror.example.com/quay`` + ``ns/app`` -> (``mirror.example.com``, ``quay/ns/app``)."""
    host, _, prefix = mirror.strip("/").partition("/")
    return host, f"{prefix}/{repository}" if prefix else repository


def default_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def _split_host(host: str) -> tuple[str, int | None]:
    if host.startswith("["):
        end = host.index("]")
        rest = host[end + 1 :]
        return host[1:end], int(rest[1:]) if rest.startswith(":") else None
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        return name, int(port)
    return host, None


# --- transport internals ----------------------------------------------------------------------
class RetryableResponse(Exception):
    """A response worth another attempt (429, 5xx); carries the server's Retry-After (s)."""

    def __init__(self, status_code: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.retry_after = retry_after


class _TooLarge(Exception):
    pass


_NETWORK_ERRORS = (
    httpcore.NetworkError,
    httpcore.TimeoutException,
    httpcore.RemoteProtocolError,
)
_TRANSPORT_ERRORS = (
    *_NETWORK_ERRORS,
    httpcore.LocalProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
    OSError,
)


_FAILURES = (RetryableResponse, _TooLarge, *_TRANSPORT_ERRORS)


class _Response:
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


class _Endpoint:
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
        hostname, port = _split_host(host)
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


# --- the client -------------------------------------------------------------------------------
class RegistryClient:
    """Resolves image references against registries; ``async with`` it for one pass or longer."""

    def __init__(
        self,
        config: Config,
        *,
        credentials: CredentialStore | None = None,
        env: Mapping[str, str] | None = None,
        base_dir: Path | None = None,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        observer: Observer | None = None,
        max_inflight: int = 64,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        """``clock`` and ``sleep`` pace tokens and the request rate; ``network_backend`` opens
        connections (tests give one that maps a host name to a loopback address)."""
        self._config = config
        self._credentials = credentials or CredentialStore(config, env=env, base_dir=base_dir)
        self._env = os.environ if env is None else env  # HOME, for ~ in caFile and certFile
        self._base_dir = base_dir
        self._retry = retry or RetryPolicy()
        t = timeouts or Timeouts()
        self._extensions = {
            "timeout": {"connect": t.connect, "read": t.read, "write": t.write, "pool": t.pool}
        }
        self._observer = observer
        self._connect_timeout = t.connect
        self._attempt_timeout = t.attempt
        self._max_inflight = max(1, max_inflight)
        self._tag_budget = config.timeouts.tag
        self._pass_budget = config.timeouts.pass_
        self._clock = clock
        self._sleep = sleep
        self._endpoints: dict[str, _Endpoint] = {}
        self._manifests: dict[str, Manifest] = {}
        self._configs: dict[str, ImageConfig] = {}
        self._inflight: dict[str, asyncio.Future[ImageConfig]] = {}  # config blobs
        self._warned_insecure: set[str] = set()
        self._closed = False
        self._network_backend = network_backend or AsyncioBackend()
        self._references: dict[str, ImageReference] = {}

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        endpoints, self._endpoints = list(self._endpoints.values()), {}
        for endpoint in endpoints:
            await endpoint.aclose()
        self._closed = True

    # --- public API ---------------------------------------------------------------------------
    async def resolve(self, request: ImportRequest) -> Observation:
        """What ``request.reference`` points to now, within the per-tag budget.

        Registry problems, a budget run out included, become ImportFailure values.
        """
        return await self._resolve_within(request, self._tag_budget, pass_deadline=False)

    async def resolve_all(
        self, requests: Iterable[ImportRequest]
    ) -> dict[tuple[str, str, str], Observation]:
        """Resolve many; identical references (also by canonical name) are resolved once.

        Each reference gets the per-tag budget, all of them together the pass deadline; a
        reference out of time fails alone and every other one still gets its observation.
        """
        groups: dict[tuple[str, str, str], list[ImportRequest]] = {}
        for request in requests:
            groups.setdefault(self._dedupe_key(request), []).append(request)
        pending = iter(groups.values())
        results: dict[tuple[str, str, str], Observation] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._pass_budget

        async def worker() -> None:
            for group in pending:
                remaining = deadline - loop.time()
                budget = min(self._tag_budget, remaining)
                request = _best_request(group)
                if remaining <= 0:
                    observation: Observation = self._out_of_time(request, pass_deadline=True)
                else:
                    observation = await self._resolve_within(
                        request, budget, pass_deadline=remaining < self._tag_budget
                    )
                for each in group:
                    results[each.key] = observation

        workers = min(len(groups), self._max_inflight)
        if workers:
            await asyncio.gather(*(worker() for _ in range(workers)))
        return results

    async def _resolve_within(
        self, request: ImportRequest, budget: float, *, pass_deadline: bool
    ) -> Observation:
        """One resolution, every request and retry of it, cut off after ``budget`` seconds."""
        try:
            async with asyncio.timeout(budget):
                return await self._resolve_once(request)
        except TimeoutError:  # only ours: _resolve_once turns every other failure into a value
            return self._out_of_time(request, pass_deadline=pass_deadline)

    def _out_of_time(self, request: ImportRequest, *, pass_deadline: bool) -> ImportFailure:
        if pass_deadline:
            error = RegistryUnavailable(
                f"{redact(request.reference)}: not resolved within the pass deadline of "
                f"{self._pass_budget:g} s (timeouts.pass in streamlock.yaml)"
            )
        else:
            error = RegistryUnavailable(
                f"{redact(request.reference)}: no complete answer within the per-tag budget of "
                f"{self._tag_budget:g} s (timeouts.tag in streamlock.yaml)"
            )
        return ImportFailure(error.reason, str(error), error.transient)

    async def _resolve_once(self, request: ImportRequest) -> Observation:
        try:
            return await self._resolve(request)
        except StreamlockError as exc:  # InputError, RegistryError: reasons from status.py
            return ImportFailure(exc.reason, str(exc), exc.transient)
        except Exception as exc:  # a bug or an answer nobody foresaw: this tag's failure only
            log.error(
                "resolving failed unexpectedly",
                reference=redact(request.reference),
                error=_describe(exc),
            )
            return ImportFailure(
                status.IMPORT_FAILED,
                f"{redact(request.reference)}: unexpected error: {_describe(exc)}",
                transient=True,
            )

    async def list_tags(self, reference: str, page_size: int = 100) -> list[str]:
        """Every tag of the reference's repository, following ``Link`` pagination as given.

        Pages stay on the registry's origin (a link elsewhere is an error, not a silent partial
        list) and a page asked for twice is a loop, reported at once.
        """
        ref = ImageReference.parse(reference)
        refusal = self._refusal(ref)
        if refusal is not None:
            raise InputError(refusal)
        endpoint = self._endpoint(ref.registry_host, ref.registry)
        repository = ref.repository
        what = f"{ref.name} tags"
        target: str | None = f"/v2/{repository}/tags/list?n={int(page_size)}"
        seen: set[str] = set()
        tags: list[str] = []
        while target is not None:
            if target in seen:
                raise UnsupportedManifest(f"{what}: the registry's pages link in a loop")
            if len(seen) >= MAX_TAG_PAGES:
                raise UnsupportedManifest(f"{what}: more than {MAX_TAG_PAGES} pages of tags")
            seen.add(target)
            response = await self._send(
                endpoint, b"GET", target, repository, accept=False, limit=MAX_TAG_LIST_BYTES
            )
            self._raise_for_status(response, what)
            tags.extend(parse_tag_list(response.body, what))
            target = next_link(response.header(b"link"), response.url, endpoint.origin, what)
        return tags

    # --- resolution -----------------------------------------------------------------------------
    def _parse(self, reference: str) -> ImageReference:
        ref = self._references.get(reference)
        if ref is None:
            ref = self._references[reference] = ImageReference.parse(reference)
        return ref

    def _dedupe_key(self, request: ImportRequest) -> tuple[str, str, str]:
        try:
            name = self._parse(request.reference).canonical
        except InputError:
            name = request.reference
        return (name, request.import_mode, request.platform)

    async def _resolve(self, request: ImportRequest) -> Observation:
        ref = self._parse(request.reference)
        refusal = self._refusal(ref)
        if refusal is not None:
            return ImportFailure(status.ACCESS_DENIED, refusal, transient=False)
        try:
            wanted = Platform.parse(request.platform)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        source = self._registry_config(ref.registry)
        insecure = source is not None and source.insecure
        if request.insecure and not insecure and ref.registry not in self._warned_insecure:
            self._warned_insecure.add(ref.registry)
            log.warning(
                "importPolicy.insecure ignored: registry not marked insecure in streamlock.yaml",
                registry=ref.registry,
            )
        for mirror in source.mirrors if source is not None else ():
            host, repository = mirror_location(mirror, ref.repository)
            try:
                return await self._resolve_at(
                    self._endpoint(host, host), repository, ref, request, wanted
                )
            except RegistryError as exc:
                log.info("mirror failed, trying the next source", mirror=mirror, error=str(exc))
        endpoint = self._endpoint(ref.registry_host, ref.registry)
        return await self._resolve_at(endpoint, ref.repository, ref, request, wanted)

    async def _resolve_at(
        self,
        endpoint: _Endpoint,
        repository: str,
        ref: ImageReference,
        request: ImportRequest,
        wanted: Platform,
    ) -> Image:
        target = ref.digest or ref.tag or "latest"
        what = str(ref)
        known = request.known
        top: str | None = None
        manifest: Manifest | None = None
        if known is not None:
            served = await self._head(endpoint, repository, target, what)
            if served is not None and ref.digest is not None and served != ref.digest:
                # What a digest names never changes: another digest is a lie, never a new pin.
                raise DigestMismatch(f"{what}: the registry claims digest {served} for it")
            if served is not None and served == known.top_digest:
                return known
            if served is not None:
                top, manifest = served, self._manifests.get(served)
        elif ref.digest is not None:
            top, manifest = ref.digest, self._manifests.get(ref.digest)
        if manifest is None or top is None:
            top, manifest = await self._get_manifest(endpoint, repository, target, ref.digest, what)
            if known is not None and top == known.top_digest:  # the HEAD had no digest header
                return known
        return await self._image(endpoint, repository, top, manifest, request, wanted, what)

    async def _image(
        self,
        endpoint: _Endpoint,
        repository: str,
        top: str,
        manifest: Manifest,
        request: ImportRequest,
        wanted: Platform,
        what: str,
    ) -> Image:
        preserve = request.import_mode == PRESERVE_ORIGINAL
        if isinstance(manifest, ImageManifest):
            config = await self._config_blob(endpoint, repository, manifest.config_digest, what)
            platforms = None
            if preserve:
                platforms = {config.platform: top} if config.platform else {}
            return Image(
                digest=top,
                created=config.created,
                platform=config.platform,
                labels=dict(config.labels or {}),
                platforms=platforms,
            )
        entry = manifest.select(wanted)
        if preserve:
            if entry is None:  # created and labels from the first runnable platform instead
                entry = next(
                    (e for e in manifest.entries if e.platform and e.platform.os != "unknown"),
                    None,
                )
            config = ImageConfig()
            if entry is not None:
                config = await self._child_config(endpoint, repository, entry.digest, what)
            return Image(
                digest=top,
                created=config.created,
                labels=dict(config.labels or {}),
                platforms=manifest.platform_digests(),
            )
        if entry is None:
            raise ManifestUnknown(
                f"{what}: no manifest for {wanted} in the index "
                f"(it has {manifest.describe_platforms()})",
                hint="set platform in streamlock.yaml or use importMode: PreserveOriginal",
            )
        known = request.known
        if known is not None and known.digest == entry.digest:
            return replace(known, index_digest=top)
        config = await self._child_config(endpoint, repository, entry.digest, what)
        return Image(
            digest=entry.digest,
            created=config.created,
            platform=config.platform,
            labels=dict(config.labels or {}),
            index_digest=top,
        )

    async def _child_config(
        self, endpoint: _Endpoint, repository: str, digest: str, what: str
    ) -> ImageConfig:
        child = self._manifests.get(digest)
        if child is None:
            _, child = await self._get_manifest(endpoint, repository, digest, digest, what)
        if not isinstance(child, ImageManifest):
            raise UnsupportedManifest(f"{what}: an index inside an index is not supported")
        return await self._config_blob(endpoint, repository, child.config_digest, what)

    # --- fetching ---------------------------------------------------------------------------
    async def _head(
        self, endpoint: _Endpoint, repository: str, target: str, what: str
    ) -> str | None:
        """The digest the registry serves for a tag or digest (None without the header)."""
        response = await self._send(
            endpoint, b"HEAD", f"/v2/{repository}/manifests/{target}", repository, accept=True
        )
        self._raise_for_status(response, what)
        return response.header(b"docker-content-digest")

    async def _get_manifest(
        self,
        endpoint: _Endpoint,
        repository: str,
        target: str,
        expected: str | None,
        what: str,
    ) -> tuple[str, Manifest]:
        response = await self._send(
            endpoint,
            b"GET",
            f"/v2/{repository}/manifests/{target}",
            repository,
            accept=True,
            limit=MAX_MANIFEST_BYTES,
        )
        self._raise_for_status(response, what)
        claimed = response.header(b"docker-content-digest")
        digest = verify_digest(response.body, claimed, what)
        if expected is not None:
            verify_digest(response.body, expected, what)
        manifest = parse_manifest(response.body, response.header(b"content-type"), what)
        self._manifests[digest] = manifest
        return digest, manifest

    async def _config_blob(
        self, endpoint: _Endpoint, repository: str, digest: str, what: str
    ) -> ImageConfig:
        cached = self._configs.get(digest)
        if cached is not None:
            return cached

        async def fetch() -> ImageConfig:
            response = await self._send(
                endpoint,
                b"GET",
                f"/v2/{repository}/blobs/{digest}",
                repository,
                accept=False,
                limit=MAX_CONFIG_BYTES,
            )
            self._raise_for_status(response, f"{what} config {digest[:19]}")
            verify_digest(response.body, digest, f"{what} config")
            config = self._configs[digest] = parse_config(response.body, what)
            return config

        return await _shared(self._inflight, digest, fetch)

    def _raise_for_status(self, response: _Response, what: str) -> None:
        code = response.status
        if 200 <= code < 300:
            return
        suffix = _detail(response)
        if code == 404:
            raise ManifestUnknown(f"{what}: not found{suffix}")
        if code in (401, 403):
            raise AuthError(f"{what}: access denied (HTTP {code}){suffix}")
        raise RegistryUnavailable(f"{what}: HTTP {code}{suffix}")

    # --- one logical request: auth, redirects, retries ------------------------------------------
    async def _send(
        self,
        endpoint: _Endpoint,
        method: bytes,
        target: str,
        repository: str,
        *,
        accept: bool,
        limit: int = MAX_ERROR_BODY,
    ) -> _Response:
        headers = endpoint.manifest_headers if accept else endpoint.plain_headers
        authorization = None
        if endpoint.auth_scheme is not None:
            authorization = await self._authorization(endpoint, repository)
        response = await self._exchange(endpoint, method, target, headers, authorization, limit)
        # Only the registry's own challenge is answered: a redirect target's 401 could name any
        # token realm, and the realm gets our credentials.
        if response.status == 401 and response.url.startswith(endpoint.origin + "/"):
            challenges = parse_www_authenticate(response.header(b"www-authenticate") or "")
            if authorization is not None:
                self._forget(endpoint, repository)
            authorization = await self._answer_challenge(endpoint, repository, challenges)
            response = await self._exchange(endpoint, method, target, headers, authorization, limit)
            if response.status == 401:
                self._forget(endpoint, repository)
                raise AuthError(
                    f"{endpoint.host}/{repository}: the registry refused our credentials "
                    f"(HTTP 401){_detail(response)}",
                    hint=f"looked in: {self._credentials.describe_sources(endpoint.cred_key)}",
                )
        return response

    async def _exchange(
        self,
        endpoint: _Endpoint,
        method: bytes,
        target: str,
        headers: list[tuple[bytes, bytes]],
        authorization: bytes | None,
        limit: int,
    ) -> _Response:
        """One request with retries, then its redirects (no credentials to other origins)."""
        request_headers = (
            headers if authorization is None else [*headers, (b"Authorization", authorization)]
        )
        response = await self._retrying(endpoint, method, target, request_headers, limit)
        for _ in range(MAX_REDIRECTS):
            if response.status not in _REDIRECTS:
                return response
            location = response.header(b"location")
            if not location:
                return response
            absolute = urljoin(response.url, location)
            parts = urlsplit(absolute)
            if f"{parts.scheme}://{parts.netloc}" == endpoint.origin:
                path = absolute[len(endpoint.origin) :] or "/"
                response = await self._retrying(endpoint, method, path, request_headers, limit)
                continue
            # The same headers (Accept too) but another Host and never the Authorization.
            host = parts.netloc.rpartition("@")[2].encode("ascii")
            redirect_headers = [(b"Host", host), *(h for h in headers if h[0] != b"Host")]
            response = await self._retrying(endpoint, method, absolute, redirect_headers, limit)
        return response

    async def _retrying(
        self,
        endpoint: _Endpoint,
        method: bytes,
        target: str,
        headers: list[tuple[bytes, bytes]],
        limit: int,
        content: bytes | None = None,
    ) -> _Response:
        """The first attempt runs bare (no retry machinery on the hot path); stamina the rest."""
        try:
            return await self._attempt(endpoint, method, target, headers, limit, content)
        except _FAILURES as exc:
            first: BaseException | None = exc
            if self._backoff(exc) is False:
                raise self._translate(endpoint, exc) from exc
        policy = self._retry
        result: _Response | None = None
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
        except _FAILURES as exc:
            raise self._translate(endpoint, exc, attempts) from exc
        assert result is not None
        return result

    def _backoff(self, exc: BaseException) -> bool | float:
        return backoff(exc, self._retry)

    def _translate(
        self, endpoint: _Endpoint, exc: BaseException, attempts: int = 1
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
        if isinstance(exc, _TooLarge):
            return UnsupportedManifest(f"{endpoint.host}: {exc}")
        if _is_certificate_error(exc):
            return RegistryUnavailable(
                f"{endpoint.host}: TLS certificate not trusted ({_describe(exc)})",
                hint="set caFile for this registry in streamlock.yaml",
            )
        return RegistryUnavailable(f"{endpoint.host}: {_describe(exc)}")

    async def _attempt(
        self,
        endpoint: _Endpoint,
        method: bytes,
        target: str,
        headers: list[tuple[bytes, bytes]],
        limit: int,
        content: bytes | None = None,
    ) -> _Response:
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
        response = _Response(
            code, response_headers, body, endpoint.origin + target if own else target
        )
        if code == 429 or code >= 500:
            retry_after = parse_retry_after(response.header(b"retry-after"), datetime.now(UTC))
            raise RetryableResponse(code, retry_after)
        return response

    async def _exchange_own(
        self,
        endpoint: _Endpoint,
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
            response = await connection.handle_async_request(
                httpcore.Request(
                    method, endpoint.url(target), headers=headers, extensions=self._extensions
                )
            )
            body = await _read_body(response, limit, target)
        finally:
            await pool.release(connection)
        return response.status, response.headers, body

    async def _exchange_other(
        self,
        endpoint: _Endpoint,
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
        return response.status, response.headers, await _read_body(response, limit, url)

    # --- auth ---------------------------------------------------------------------------------
    async def _authorization(self, endpoint: _Endpoint, repository: str) -> bytes | None:
        """What to send before being asked, once the registry told us how it authenticates."""
        if endpoint.auth_scheme == "basic":
            header = endpoint.basic.get(repository)
            if header is None:
                credential = await self._credential(endpoint, repository)
                basic = credential.basic_header() if credential is not None else None
                if basic is None:
                    return None
                header = endpoint.basic[repository] = basic.encode()
            return header
        if endpoint.auth_scheme == "bearer":
            scope = default_scope(repository)
            cached = endpoint.tokens.get(scope)
            if cached is not None and cached[1] > self._clock():
                return cached[0]
            return await self._token(endpoint, repository, scope)
        return None

    def _forget(self, endpoint: _Endpoint, repository: str) -> None:
        endpoint.tokens.pop(default_scope(repository), None)
        endpoint.basic.pop(repository, None)

    async def _answer_challenge(
        self, endpoint: _Endpoint, repository: str, challenges: Sequence[Challenge]
    ) -> bytes:
        by_scheme = {c.scheme: c for c in challenges}
        bearer = by_scheme.get("bearer")
        if bearer is not None and bearer.params.get("realm"):
            endpoint.auth_scheme = "bearer"
            endpoint.realm = bearer.params["realm"]
            endpoint.service = bearer.params.get("service")
            scope = bearer.params.get("scope") or default_scope(repository)
            return await self._token(endpoint, repository, scope)
        if "basic" in by_scheme:
            endpoint.auth_scheme = "basic"
            credential = await self._credential(endpoint, repository)
            basic = credential.basic_header() if credential is not None else None
            if basic is None:
                raise AuthError(
                    f"{endpoint.host}/{repository} requires credentials and none were found",
                    hint=f"looked in: {self._credentials.describe_sources(endpoint.cred_key)}",
                )
            header = endpoint.basic[repository] = basic.encode()
            return header
        raise AuthError(f"{endpoint.host}/{repository}: unsupported authentication challenge")

    async def _credential(self, endpoint: _Endpoint, repository: str) -> Credential | None:
        return await self._credentials.get(endpoint.cred_key, repository)

    async def _token(self, endpoint: _Endpoint, repository: str, scope: str) -> bytes:
        """A bearer token for ``scope``, cached until it expires; askers share one request."""
        key = default_scope(repository)

        async def fetch() -> bytes:
            header, ttl = await self._fetch_token(endpoint, repository, scope)
            expiry = self._clock() + max(0.0, ttl - min(TOKEN_MARGIN, ttl / 10))
            endpoint.tokens[key] = (header, expiry)
            return header

        return await _shared(endpoint.token_inflight, key, fetch)

    async def _fetch_token(
        self, endpoint: _Endpoint, repository: str, scope: str
    ) -> tuple[bytes, float]:
        realm = endpoint.realm or ""
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AuthError(
                f"{endpoint.host}: token realm {_safe_url(realm)!r} is not an http(s) URL"
            )
        credential = await self._credential(endpoint, repository)
        params = {"scope": scope}
        if endpoint.service:
            params["service"] = endpoint.service
        headers = [(b"Host", parts.netloc.encode("ascii")), (b"User-Agent", USER_AGENT_BYTES)]
        if credential is not None and credential.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": credential.identity_token,
                "client_id": "streamlock",
                **params,
            }
            body = urlencode(form).encode()
            headers += [
                (b"Content-Type", b"application/x-www-form-urlencoded"),
                (b"Content-Length", str(len(body)).encode()),
            ]
            response = await self._retrying(
                endpoint, b"POST", realm, headers, MAX_TOKEN_BODY, content=body
            )
        else:
            basic = credential.basic_header() if credential is not None else None
            if basic is not None:
                headers.append((b"Authorization", basic.encode()))
            separator = "&" if parts.query else "?"
            query = urlencode(sorted(params.items()), quote_via=quote)
            response = await self._retrying(
                endpoint, b"GET", f"{realm}{separator}{query}", headers, MAX_TOKEN_BODY
            )
        if response.status != 200:
            who = f"credentials from {credential.source}" if credential else "anonymous access"
            raise AuthError(
                f"{endpoint.host}/{repository}: token server refused {who} "
                f"(HTTP {response.status})",
                hint=None
                if credential
                else f"looked in: {self._credentials.describe_sources(endpoint.cred_key)}",
            )
        data = load_json(
            response.body,
            f"{endpoint.host}: the token server's answer",
            limit=MAX_TOKEN_BODY,
            error=AuthError,
        )
        try:
            token = data.get("token") or data.get("access_token")
            ttl = float(data.get("expires_in") or DEFAULT_TOKEN_TTL)
        except (ValueError, AttributeError, TypeError, OverflowError) as exc:
            raise AuthError(f"{endpoint.host}: the token server's answer is not usable") from exc
        if not isinstance(token, str) or not _HEADER_TOKEN.match(token):
            # Never echo it: a token is a secret even when it is unusable.
            raise AuthError(f"{endpoint.host}: the token server's answer holds no usable token")
        return f"Bearer {token}".encode(), ttl

    # --- endpoints ----------------------------------------------------------------------------
    def _refusal(self, ref: ImageReference) -> str | None:
        """Why ``allowedRegistries`` forbids asking the reference's registry, or None."""
        if self._config.registry_allowed(ref.registry):
            return None
        return f"{ref.registry} is not in allowedRegistries of streamlock.yaml"

    def _endpoint(self, host: str, cred_key: str) -> _Endpoint:
        """The pooled client for a registry host, made on first use from its config entry."""
        endpoint = self._endpoints.get(host)
        if endpoint is not None:
            return endpoint
        if self._closed:
            raise RuntimeError("registry client is closed")
        config = self._registry_config(cred_key) or self._registry_config(host)
        insecure = config is not None and config.insecure
        scheme, fallback = choose_scheme(host, config)
        endpoint = _Endpoint(
            host,
            cred_key,
            scheme,
            config,
            ssl_factory=functools.partial(self._ssl_context, config, verify=not insecure),
            backend=self._network_backend,
            http_fallback=fallback,
            limiter=functools.partial(RateLimiter, clock=self._clock, sleep=self._sleep),
        )
        self._endpoints[host] = endpoint
        return endpoint

    def _registry_config(self, name: str) -> RegistryConfig | None:
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
                f"registry {config.host}: cannot load TLS files: {_describe(exc)}"
            ) from exc
        return context

    def _path(self, text: str) -> Path:
        return expand_path(text, self._env, self._base_dir)


def backoff(exc: BaseException, policy: RetryPolicy) -> bool | float:
    """stamina's hook: retry or not, and how long the server asked us to wait (capped)."""
    if isinstance(exc, RetryableResponse):
        if exc.retry_after is not None:
            return min(exc.retry_after, policy.max_retry_after)
        return True
    if isinstance(exc, _NETWORK_ERRORS):
        return not _is_certificate_error(exc)
    return False


# --- small functions ------------------------------------------------------------------------
async def _read_body(response: httpcore.Response, limit: int, what: str) -> bytes:
    """The whole body, refusing more than ``limit`` bytes; the response is closed after."""
    try:
        chunks = []
        size = 0
        async for chunk in response.stream:  # type: ignore[union-attr]
            size += len(chunk)
            if size > limit:
                # No query: a signed storage URL's query is a credential of its own.
                raise _TooLarge(f"response to {_safe_url(what)} larger than {limit} bytes")
            chunks.append(chunk)
    finally:
        await response.aclose()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _Abandoned(Exception):
    """The asker doing a shared fetch ran out of its own time; a waiter asks again itself."""


async def _shared(
    inflight: dict[str, asyncio.Future[_T]], key: str, fetch: Callable[[], Awaitable[_T]]
) -> _T:
    """One ``fetch`` per key at a time: concurrent askers await the first asker's result.

    If the first asker is cancelled (its tag's budget ran out), the waiters are not: the next one
    fetches in its place.
    """
    while (pending := inflight.get(key)) is not None:
        try:
            return await asyncio.shield(pending)
        except _Abandoned:
            continue
    future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
    inflight[key] = future
    try:
        result = await fetch()
    except asyncio.CancelledError:
        future.set_exception(_Abandoned())
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


def _best_request(group: Sequence[ImportRequest]) -> ImportRequest:
    """The request to resolve for a group: one with a known image allows a HEAD-only check."""
    return next((r for r in group if r.known is not None), group[0])


def next_link(header: str | None, current_url: str, origin: str, what: str = "tags") -> str | None:
    """The ``rel="next"`` target of a ``Link`` header, as given (queries kept verbatim).

    A link to another origin is an error: our credentials stay with the registry, and stopping
    there would silently return part of the list.
    """
    if not header:
        return None
    for part in re.finditer(r"<([^>]*)>\s*((?:;\s*[^,;]+)*)", header):
        if re.search(r'rel\s*=\s*"?next"?', part.group(2)):
            target = urljoin(current_url, part.group(1))
            if target.startswith(origin + "/"):
                return target[len(origin) :]
            raise UnsupportedManifest(
                f"{what}: the next page is on another origin ({_safe_url(target)})"
            )
    return None


def parse_tag_list(body: bytes, what: str) -> list[str]:
    """The ``tags`` of one ``tags/list`` page; anything else is this listing's error."""
    page = load_json(body, f"{what}: the tag list", limit=MAX_TAG_LIST_BYTES)
    names = page.get("tags") if isinstance(page, dict) else None
    if names is None and isinstance(page, dict):
        return []  # distribution answers {"tags": null} for a repository without tags
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise UnsupportedManifest(f"{what}: the tag list is not a list of names")
    return names


def _safe_url(url: str) -> str:
    """A URL for messages: no userinfo and no query (a signed URL's query is a credential)."""
    parts = urlsplit(url.partition("?")[0])
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else redact(parts.path)


def _detail(response: _Response) -> str:
    text = response.error_text()
    return f" ({text})" if text else ""


def _is_certificate_error(exc: BaseException) -> bool:
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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpcore.LocalProtocolError):
        # Its text quotes the offending request header, which may be the Authorization header.
        return "the request could not be sent (invalid header)"
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."
