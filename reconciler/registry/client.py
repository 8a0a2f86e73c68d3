"""The registry client: what does a reference point to right now?

A tag whose image the lock already holds costs one ``HEAD``; a cold tag costs one manifest ``GET``
(its sha256 checked) plus whatever is not cached by digest yet (config blob, platform manifest).
Everything fetched by digest is cached for the client's lifetime, since digests are immutable.
Mirrors are tried in order, ``allowedRegistries`` is enforced before any request, and every tag
has a time budget (the pass a deadline) that covers all its requests and retries.

Nothing from httpcore escapes: failures become :mod:`reconciler.errors`, and :meth:`resolve`
turns those into :class:`~reconciler.image.ImportFailure` values.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpcore
import structlog

from reconciler import status
from reconciler.config import Config
from reconciler.credentials import CredentialStore
from reconciler.errors import (
    AuthError,
    DigestMismatch,
    InputError,
    MalformedAnswer,
    ManifestUnknown,
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
from reconciler.registry.auth import Authenticator, parse_www_authenticate
from reconciler.registry.endpoints import Endpoint, Endpoints
from reconciler.registry.exchange import (
    DEADLINE,
    MAX_ERROR_BODY,
    Exchanger,
    Observer,
    Response,
    RetryPolicy,
    Timeouts,
    describe,
    detail,
    safe_url,
    shared,
)
from reconciler.transport import AsyncioBackend

log = structlog.get_logger("streamlock.registry")

MAX_REDIRECTS = 5
MAX_TAG_PAGES = 1000
MAX_TAG_LIST_BYTES = 8 * 1024 * 1024  # a page of 10,000 long tag names fits several times
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def mirror_location(mirror: str, repository: str) -> tuple[str, str]:
    """``mirror.example.com/quay`` + ``ns/app`` -> (``mirror.example.com``, ``quay/ns/app``)."""
    host, _, prefix = mirror.strip("/").partition("/")
    return host, f"{prefix}/{repository}" if prefix else repository


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
        credentials = credentials or CredentialStore(config, env=env, base_dir=base_dir)
        self._http = Exchanger(retry or RetryPolicy(), timeouts or Timeouts(), observer)
        self._auth = Authenticator(credentials, self._http, clock)
        self._endpoints = Endpoints(
            config,
            env=os.environ if env is None else env,
            base_dir=base_dir,
            backend=network_backend or AsyncioBackend(),
            clock=clock,
            sleep=sleep,
        )
        self._max_inflight = max(1, max_inflight)
        self._tag_budget = config.timeouts.tag
        self._pass_budget = config.timeouts.pass_
        self._manifests: dict[str, Manifest] = {}
        self._configs: dict[str, ImageConfig] = {}
        self._inflight: dict[str, asyncio.Future[ImageConfig]] = {}  # config blobs
        self._warned_insecure: set[str] = set()
        self._references: dict[str, ImageReference] = {}

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._endpoints.aclose()

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
        token = DEADLINE.set(asyncio.get_running_loop().time() + budget)
        try:
            async with asyncio.timeout(budget):
                return await self._resolve_once(request)
        except TimeoutError:  # only ours: _resolve_once turns every other failure into a value
            return self._out_of_time(request, pass_deadline=pass_deadline)
        finally:
            DEADLINE.reset(token)

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
                error=describe(exc),
            )
            return ImportFailure(
                status.IMPORT_FAILED,
                f"{redact(request.reference)}: unexpected error: {describe(exc)}",
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
        endpoint = self._endpoints.get(ref.registry_host, ref.registry)
        repository = ref.repository
        what = f"{ref.name} tags"
        target: str | None = f"/v2/{repository}/tags/list?n={int(page_size)}"
        seen: set[str] = set()
        tags: list[str] = []
        while target is not None:
            if target in seen:
                raise MalformedAnswer(f"{what}: the registry's pages link in a loop")
            if len(seen) >= MAX_TAG_PAGES:
                raise MalformedAnswer(f"{what}: more than {MAX_TAG_PAGES} pages of tags")
            seen.add(target)
            response = await self._send(
                endpoint, b"GET", target, repository, accept=False, limit=MAX_TAG_LIST_BYTES
            )
            self._raise_for_status(response, what)
            tags.extend(parse_tag_list(response.body, what))
            target = next_link(response.header(b"link"), response.url, endpoint.origin, what)
        return tags

    async def list_all(
        self, references: Iterable[str]
    ) -> dict[str, tuple[str, ...] | ImportFailure]:
        """The tags of each repository, listed concurrently within the per-tag budget each;
        a listing that fails is an ImportFailure value (the policy tags keep their pins)."""
        limit = asyncio.Semaphore(self._max_inflight)

        async def one(reference: str) -> tuple[str, ...] | ImportFailure:
            async with limit:
                token = DEADLINE.set(asyncio.get_running_loop().time() + self._tag_budget)
                try:
                    async with asyncio.timeout(self._tag_budget):
                        return tuple(await self.list_tags(reference))
                except TimeoutError:
                    error = RegistryUnavailable(
                        f"{redact(reference)}: tags not listed within the per-tag budget of "
                        f"{self._tag_budget:g} s (timeouts.tag in streamlock.yaml)"
                    )
                    return ImportFailure(error.reason, str(error), error.transient)
                except StreamlockError as exc:
                    return ImportFailure(exc.reason, str(exc), exc.transient)
                finally:
                    DEADLINE.reset(token)

        unique = sorted(set(references))
        found = await asyncio.gather(*(one(r) for r in unique))
        return dict(zip(unique, found, strict=True))

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
        source = self._endpoints.config_for(ref.registry)
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
                    self._endpoints.get(host, host), repository, ref, request, wanted
                )
            except RegistryError as exc:
                log.info("mirror failed, trying the next source", mirror=mirror, error=str(exc))
        endpoint = self._endpoints.get(ref.registry_host, ref.registry)
        return await self._resolve_at(endpoint, ref.repository, ref, request, wanted)

    async def _resolve_at(
        self,
        endpoint: Endpoint,
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
        endpoint: Endpoint,
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
                offered=(config.platform,) if config.platform else (),
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
                offered=tuple(sorted(manifest.platform_digests())),
            )
        if entry is None:
            raise ManifestUnknown(
                f"{what}: no manifest for {wanted} in the index "
                f"(it has {manifest.describe_platforms()})",
                hint="set platform in streamlock.yaml or use importMode: PreserveOriginal",
            )
        offered = tuple(sorted(manifest.platform_digests()))
        known = request.known
        if known is not None and known.digest == entry.digest:
            return replace(known, index_digest=top, offered=offered)
        config = await self._child_config(endpoint, repository, entry.digest, what)
        return Image(
            digest=entry.digest,
            created=config.created,
            platform=config.platform,
            labels=dict(config.labels or {}),
            index_digest=top,
            offered=offered,
        )

    async def _child_config(
        self, endpoint: Endpoint, repository: str, digest: str, what: str
    ) -> ImageConfig:
        child = self._manifests.get(digest)
        if child is None:
            _, child = await self._get_manifest(endpoint, repository, digest, digest, what)
        if not isinstance(child, ImageManifest):
            raise UnsupportedManifest(f"{what}: an index inside an index is not supported")
        return await self._config_blob(endpoint, repository, child.config_digest, what)

    # --- fetching ---------------------------------------------------------------------------
    async def _head(
        self, endpoint: Endpoint, repository: str, target: str, what: str
    ) -> str | None:
        """The digest the registry serves for a tag or digest (None without the header)."""
        response = await self._send(
            endpoint, b"HEAD", f"/v2/{repository}/manifests/{target}", repository, accept=True
        )
        self._raise_for_status(response, what)
        return response.header(b"docker-content-digest")

    async def _get_manifest(
        self,
        endpoint: Endpoint,
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
        self, endpoint: Endpoint, repository: str, digest: str, what: str
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

        return await shared(self._inflight, digest, fetch)

    def _raise_for_status(self, response: Response, what: str) -> None:
        code = response.status
        if 200 <= code < 300:
            return
        suffix = detail(response)
        if code == 404:
            raise ManifestUnknown(f"{what}: not found{suffix}")
        if code in (401, 403):
            raise AuthError(f"{what}: access denied (HTTP {code}){suffix}")
        raise RegistryUnavailable(f"{what}: HTTP {code}{suffix}")

    # --- one logical request: auth, redirects, retries ------------------------------------------
    async def _send(
        self,
        endpoint: Endpoint,
        method: bytes,
        target: str,
        repository: str,
        *,
        accept: bool,
        limit: int = MAX_ERROR_BODY,
    ) -> Response:
        headers = endpoint.manifest_headers if accept else endpoint.plain_headers
        authorization = None
        if endpoint.auth_scheme is not None:
            authorization = await self._auth.authorization(endpoint, repository)
        response = await self._exchange(endpoint, method, target, headers, authorization, limit)
        # Only the registry's own challenge is answered: a redirect target's 401 could name any
        # token realm, and the realm gets our credentials.
        if response.status == 401 and response.url.startswith(endpoint.origin + "/"):
            challenges = parse_www_authenticate(response.header(b"www-authenticate") or "")
            if authorization is not None:
                self._auth.forget(endpoint, repository)
            authorization = await self._auth.answer_challenge(endpoint, repository, challenges)
            response = await self._exchange(endpoint, method, target, headers, authorization, limit)
            if response.status == 401:
                self._auth.forget(endpoint, repository)
                raise AuthError(
                    f"{endpoint.host}/{repository}: the registry refused our credentials "
                    f"(HTTP 401){detail(response)}",
                    hint=f"looked in: {self._auth.sources(endpoint)}",
                )
        return response

    async def _exchange(
        self,
        endpoint: Endpoint,
        method: bytes,
        target: str,
        headers: list[tuple[bytes, bytes]],
        authorization: bytes | None,
        limit: int,
    ) -> Response:
        """One request with retries, then its redirects (no credentials to other origins)."""
        request_headers = (
            headers if authorization is None else [*headers, (b"Authorization", authorization)]
        )
        response = await self._http.retrying(endpoint, method, target, request_headers, limit)
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
                response = await self._http.retrying(endpoint, method, path, request_headers, limit)
                continue
            # The same headers (Accept too) but another Host and never the Authorization.
            host = parts.netloc.rpartition("@")[2].encode("ascii")
            redirect_headers = [(b"Host", host), *(h for h in headers if h[0] != b"Host")]
            response = await self._http.retrying(
                endpoint, method, absolute, redirect_headers, limit
            )
        return response

    def _refusal(self, ref: ImageReference) -> str | None:
        """Why ``allowedRegistries`` forbids asking the reference's registry, or None."""
        if self._config.registry_allowed(ref.registry):
            return None
        return f"{ref.registry} is not in allowedRegistries of streamlock.yaml"


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
            raise MalformedAnswer(
                f"{what}: the next page is on another origin ({safe_url(target)})"
            )
    return None


def parse_tag_list(body: bytes, what: str) -> list[str]:
    """The ``tags`` of one ``tags/list`` page; anything else is this listing's error."""
    page = load_json(body, f"{what}: the tag list", limit=MAX_TAG_LIST_BYTES)
    names = page.get("tags") if isinstance(page, dict) else None
    if names is None and isinstance(page, dict):
        return []  # distribution answers {"tags": null} for a repository without tags
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise MalformedAnswer(f"{what}: the tag list is not a list of names")
    return names
