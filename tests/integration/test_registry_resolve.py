"""The registry client against a real docker-registry: what it resolves and what it requests."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest
import structlog
import trustme

from reconciler import status
from reconciler.config import Config, RegistryConfig
from reconciler.errors import RateLimited
from reconciler.image import PRESERVE_ORIGINAL, Image, ImportFailure, ImportRequest
from reconciler.registry import RegistryClient, RetryPolicy
from tests.fixtures.fault_proxy import FaultProxy
from tests.fixtures.images import OCI_MANIFEST, Seeder, build_image, sha256
from tests.fixtures.registry_server import RegistryServer
from tests.fixtures.standin import serve as _serve

FAST = RetryPolicy(
    attempts=4, timeout=30, wait_initial=0, wait_max=0, wait_jitter=0, max_retry_after=0
)
LABELS = {
    "org.opencontainers.image.version": "1.4.2",
    "org.opencontainers.image.revision": "0a1b2c3",
    "org.opencontainers.image.source": "https://example.com/app",
    "maintainer": "not recorded",
}


def client(config: Config | None = None, **kwargs: Any) -> RegistryClient:
    return RegistryClient(config or Config(), env={}, retry=FAST, **kwargs)


async def resolve(request: ImportRequest, config: Config | None = None) -> Any:
    async with client(config) as registry_client:
        return await registry_client.resolve(request)


def image(observation: object) -> Image:
    assert isinstance(observation, Image), observation
    return observation


@pytest.fixture
def proxy(registry: RegistryServer, fault_proxy: Callable[..., FaultProxy]) -> FaultProxy:
    """A fault proxy in front of the plain registry; references use ``proxy.host``."""
    return fault_proxy(registry)


def via(proxy: FaultProxy, repo: str, tag: str | None = None, digest: str | None = None) -> str:
    text = f"{proxy.host}/{repo}"
    if tag:
        text += f":{tag}"
    if digest:
        text += f"@{digest}"
    return text


async def test_tag_resolves_to_served_digest(seeder: Seeder, repo_name: str) -> None:
    """A tag resolves to exactly the digest the registry serves for it."""
    pushed = seeder.push_image(repo_name, "1.0")
    found = image(await resolve(ImportRequest(seeder.ref(repo_name, "1.0"))))
    assert found.digest == pushed == seeder.digest(repo_name, "1.0")


async def test_config_metadata(seeder: Seeder, repo_name: str) -> None:
    """created, platform and the recorded OCI labels come from the image config."""
    seeder.push_image(repo_name, "1.0", labels=LABELS, created="2026-11-20T10:00:00Z")
    found = image(await resolve(ImportRequest(seeder.ref(repo_name, "1.0"))))
    assert found.created == "2026-11-20T10:00:00Z"
    assert found.platform == "linux/amd64"
    assert found.labels == {k: v for k, v in LABELS.items() if k != "maintainer"}
    assert (found.platforms, found.index_digest) == (None, None)


async def test_docker_v2_image(seeder: Seeder, repo_name: str) -> None:
    """Docker schema 2 images resolve like OCI ones."""
    pushed = seeder.push_image(repo_name, "1.0", media="docker")
    assert image(await resolve(ImportRequest(seeder.ref(repo_name, "1.0")))).digest == pushed


async def test_legacy_picks_configured_platform(seeder: Seeder, repo_name: str) -> None:
    """Legacy mode on an OCI index records the platform's manifest and the index digest."""
    index, platforms = seeder.push_index(repo_name, "multi")
    ref = seeder.ref(repo_name, "multi")
    amd = image(await resolve(ImportRequest(ref)))
    arm = image(await resolve(ImportRequest(ref, platform="linux/arm64")))
    assert (amd.digest, amd.index_digest, amd.platform) == (
        platforms["linux/amd64"],
        index,
        "linux/amd64",
    )
    assert (arm.digest, arm.index_digest, arm.platform) == (
        platforms["linux/arm64/v8"],
        index,
        "linux/arm64/v8",
    )


async def test_legacy_docker_manifest_list(seeder: Seeder, repo_name: str) -> None:
    """A Docker manifest list is an index too: Legacy picks linux/amd64 from it."""
    index, platforms = seeder.push_index(repo_name, "multi", media="docker")
    found = image(await resolve(ImportRequest(seeder.ref(repo_name, "multi"))))
    assert (found.digest, found.index_digest) == (platforms["linux/amd64"], index)


async def test_preserve_original_records_index(seeder: Seeder, repo_name: str) -> None:
    """PreserveOriginal records the index digest and every platform's digest."""
    index, platforms = seeder.push_index(repo_name, "multi", labels=LABELS)
    request = ImportRequest(seeder.ref(repo_name, "multi"), import_mode=PRESERVE_ORIGINAL)
    found = image(await resolve(request))
    assert found.digest == index
    assert found.platforms == platforms
    assert found.index_digest is None
    assert found.labels["org.opencontainers.image.version"] == "1.4.2"


async def test_preserve_original_single_arch_records_itself(seeder: Seeder, repo_name: str) -> None:
    """A single-platform tag under PreserveOriginal records itself as its only platform."""
    pushed = seeder.push_image(repo_name, "1.0", platform="linux/arm64/v8")
    request = ImportRequest(seeder.ref(repo_name, "1.0"), import_mode=PRESERVE_ORIGINAL)
    found = image(await resolve(request))
    assert (found.digest, found.platforms) == (pushed, {"linux/arm64/v8": pushed})


async def test_platform_missing_from_index(seeder: Seeder, repo_name: str) -> None:
    """Legacy on an index without the platform fails permanently, naming what it has."""
    seeder.push_index(repo_name, "multi")
    request = ImportRequest(seeder.ref(repo_name, "multi"), platform="linux/s390x")
    failure = await resolve(request)
    assert isinstance(failure, ImportFailure)
    assert (failure.reason, failure.transient) == (status.MANIFEST_UNKNOWN, False)
    assert "linux/arm64/v8" in failure.message


async def test_digest_reference(seeder: Seeder, repo_name: str) -> None:
    """``repo@sha256:…`` is fetched by digest, even when no tag points at it."""
    pushed = seeder.push_image(repo_name, "unused", push_tag=False, salt="untagged")
    found = image(await resolve(ImportRequest(seeder.ref(repo_name, digest=pushed))))
    assert found.digest == pushed


async def test_manifest_unknown(seeder: Seeder, repo_name: str) -> None:
    """A tag the registry does not have is a permanent ManifestUnknown failure."""
    seeder.push_image(repo_name, "1.0")
    failure = await resolve(ImportRequest(seeder.ref(repo_name, "nope")))
    assert isinstance(failure, ImportFailure)
    assert (failure.reason, failure.transient) == (status.MANIFEST_UNKNOWN, False)


async def test_list_tags(seeder: Seeder, repo_name: str) -> None:
    """list_tags returns every tag of the repository."""
    tags = [f"t{n:02d}" for n in range(12)]
    seeder.push_tags_bulk(repo_name, tags)
    async with client() as registry_client:
        listed = await registry_client.list_tags(seeder.ref(repo_name), page_size=5)
    assert sorted(listed) == tags


@pytest.mark.parametrize("delay", [7, "http-date"])
async def test_retry_after_read_from_answers(
    proxy: FaultProxy, seeder: Seeder, repo_name: str, delay: object
) -> None:
    """Retry-After in seconds or as an HTTP date is read from the 429 and kept on RateLimited."""
    seeder.push_image(repo_name, "1.0")
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    proxy.rate_limit(retry_after=when if delay == "http-date" else delay, times=None)
    async with client() as registry_client:
        with pytest.raises(RateLimited) as caught:
            await registry_client.list_tags(via(proxy, repo_name))
    retry_after = caught.value.retry_after
    assert retry_after is not None
    if delay == "http-date":
        assert 0 < retry_after <= 30
    else:
        assert retry_after == 7


class _PagedTags(BaseHTTPRequestHandler):
    """Serves ``/v2/paged/tags/list`` a page at a time with ``Link`` headers, as distribution v3."""

    protocol_version = "HTTP/1.1"
    tags: ClassVar[list[str]] = [f"v{n}" for n in range(7)]
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        _, _, query = self.path.partition("?")
        params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
        start = int(params.get("last", "-1").lstrip("v") or -1) + 1
        page = self.tags[start : start + int(params.get("n", "3"))]
        body = json.dumps({"name": "paged", "tags": page}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if page and page[-1] != self.tags[-1]:
            self.send_header("Link", f'</v2/paged/tags/list?n=3&last={page[-1]}>; rel="next"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def paged_tags() -> Iterator[str]:
    """A tiny paginating registry endpoint (docker-registry 2.8.2 sends no Link headers)."""
    _PagedTags.seen = []
    with _serve(_PagedTags) as host:
        yield host


async def test_list_tags_follows_link(paged_tags: str) -> None:
    """Pagination follows ``Link: <…>; rel="next"`` as given until there is none."""
    async with client() as registry_client:
        listed = await registry_client.list_tags(f"{paged_tags}/paged", page_size=3)
    assert listed == _PagedTags.tags
    assert _PagedTags.seen == [
        "/v2/paged/tags/list?n=3",
        "/v2/paged/tags/list?n=3&last=v2",
        "/v2/paged/tags/list?n=3&last=v5",
    ]


async def test_cold_resolution_costs_two_gets(
    proxy: FaultProxy, seeder: Seeder, repo_name: str
) -> None:
    """A cold single-platform tag costs one manifest GET and one config GET, no HEAD."""
    seeder.push_image(repo_name, "1.0")
    image(await resolve(ImportRequest(via(proxy, repo_name, "1.0"))))
    assert [(r.method, r.path.split("/")[-2]) for r in proxy.requests] == [
        ("GET", "manifests"),
        ("GET", "blobs"),
    ]


async def test_known_digest_costs_one_head(
    proxy: FaultProxy, seeder: Seeder, repo_name: str
) -> None:
    """When the lock's digest is still served, one HEAD confirms it and nothing is pulled."""
    seeder.push_index(repo_name, "multi")
    request = ImportRequest(via(proxy, repo_name, "multi"))
    known = image(await resolve(request))
    proxy.clear_requests()
    found = await resolve(replace(request, known=known))
    assert found is known
    assert [r.method for r in proxy.requests] == ["HEAD"]


async def test_changed_digest_is_fetched(proxy: FaultProxy, seeder: Seeder, repo_name: str) -> None:
    """When the tag moved, the HEAD is followed by a GET of the new manifest."""
    seeder.push_image(repo_name, "1.0", salt="old")
    request = ImportRequest(via(proxy, repo_name, "1.0"))
    old = image(await resolve(request))
    new_digest = seeder.push_image(repo_name, "1.0", salt="new")
    proxy.clear_requests()
    found = image(await resolve(replace(request, known=old)))
    assert found.digest == new_digest != old.digest
    assert proxy.count("HEAD") == 1
    assert proxy.count("GET", "/manifests/") == 1


async def test_index_moved_platform_unchanged(
    proxy: FaultProxy, seeder: Seeder, repo_name: str
) -> None:
    """Legacy: a new index with the same platform manifest keeps the image, new index digest."""
    seeder.push_index(repo_name, "multi")
    request = ImportRequest(via(proxy, repo_name, "multi"))
    old = image(await resolve(request))
    platforms = (("linux", "amd64", None), ("linux", "s390x", None))
    new_index, digests = seeder.push_index(repo_name, "multi", platforms)
    proxy.clear_requests()
    found = image(await resolve(replace(request, known=old)))
    assert digests["linux/amd64"] == old.digest
    assert found == replace(old, index_digest=new_index)
    assert [(r.method, r.path.split("/")[-1]) for r in proxy.requests] == [
        ("HEAD", "multi"),
        ("GET", "multi"),
    ]


async def test_identical_references_resolved_once(
    proxy: FaultProxy, seeder: Seeder, repo_name: str
) -> None:
    """Requests naming one image cost one resolution; another tag is resolved on its own."""
    seeder.push_image(repo_name, "1.0")
    ref = via(proxy, repo_name, "1.0")
    requests = [ImportRequest(ref), ImportRequest(ref), ImportRequest(ref.replace("1.0", "2.0"))]
    async with client() as registry_client:
        results = await registry_client.resolve_all(requests)
    assert set(results) == {requests[0].key, requests[2].key}
    assert isinstance(results[requests[0].key], Image)
    assert isinstance(results[requests[2].key], ImportFailure)
    assert proxy.count("GET", "/manifests/1.0") == 1


async def test_config_blob_cached_by_digest(
    proxy: FaultProxy, seeder: Seeder, repo_name: str
) -> None:
    """Images sharing a config blob fetch it once per client."""
    tags = [f"t{n}" for n in range(6)]
    seeder.push_tags_bulk(repo_name, tags)
    async with client() as registry_client:
        results = await registry_client.resolve_all(
            [ImportRequest(via(proxy, repo_name, tag)) for tag in tags]
        )
    assert len({image(o).digest for o in results.values()}) == len(tags)
    assert proxy.count("GET", "/blobs/") == 1


async def test_mirror_serves_first(
    registry: RegistryServer,
    fault_proxy: Callable[..., FaultProxy],
    seeder: Seeder,
    repo_name: str,
) -> None:
    """A mirror is asked before the source; the source sees no request when it answers."""
    source, mirror = fault_proxy(registry), fault_proxy(registry)
    pushed = seeder.push_image(repo_name, "1.0")
    seeder.push_image(f"mirrored/{repo_name}", "1.0")
    config = Config(
        registries=(RegistryConfig(host=source.host, mirrors=(f"{mirror.host}/mirrored",)),)
    )
    found = image(await resolve(ImportRequest(via(source, repo_name, "1.0")), config))
    assert found.digest == pushed
    assert source.count() == 0
    assert mirror.count("GET", f"/v2/mirrored/{repo_name}/manifests/1.0") == 1


async def test_mirrors_asked_in_order(
    registry: RegistryServer,
    fault_proxy: Callable[..., FaultProxy],
    seeder: Seeder,
    repo_name: str,
) -> None:
    """With two mirrors holding the tag, the first listed answers and the second is not asked."""
    source, first, second = fault_proxy(registry), fault_proxy(registry), fault_proxy(registry)
    wanted = seeder.push_image(f"one/{repo_name}", "1.0", salt="first")
    seeder.push_image(f"two/{repo_name}", "1.0", salt="second")
    mirrors = (f"{first.host}/one", f"{second.host}/two")
    config = Config(registries=(RegistryConfig(host=source.host, mirrors=mirrors),))
    found = image(await resolve(ImportRequest(via(source, repo_name, "1.0")), config))
    assert found.digest == wanted
    assert (source.count(), second.count()) == (0, 0)


async def test_failing_mirror_falls_through(
    registry: RegistryServer,
    fault_proxy: Callable[..., FaultProxy],
    seeder: Seeder,
    repo_name: str,
) -> None:
    """A mirror that fails or lacks the tag falls through to the next, then the source."""
    source, broken, empty = fault_proxy(registry), fault_proxy(registry), fault_proxy(registry)
    broken.fail(503, times=None)
    pushed = seeder.push_image(repo_name, "1.0")
    mirrors = (f"{broken.host}/m", f"{empty.host}/nothing-here")
    config = Config(registries=(RegistryConfig(host=source.host, mirrors=mirrors),))
    found = image(await resolve(ImportRequest(via(source, repo_name, "1.0")), config))
    assert found.digest == pushed
    assert broken.count() == FAST.attempts
    assert empty.count() == 1
    assert source.count("GET", "/manifests/") == 1


async def test_tls_with_ca_file(
    registry_tls: RegistryServer, make_seeder: Callable[..., Seeder], repo_name: str
) -> None:
    """A TLS registry is verified against the configured caFile."""
    pushed = make_seeder(registry_tls).push_image(repo_name, "1.0")
    config = Config(
        registries=(RegistryConfig(host=registry_tls.host, ca_file=str(registry_tls.ca_file)),)
    )
    found = image(await resolve(ImportRequest(f"{registry_tls.host}/{repo_name}:1.0"), config))
    assert found.digest == pushed


async def test_ca_file_under_injected_home(
    registry_tls: RegistryServer,
    make_seeder: Callable[..., Seeder],
    repo_name: str,
    tmp_path: Path,
) -> None:
    """``caFile: ~/…`` is read from the HOME the client was given, as credentials files are."""
    pushed = make_seeder(registry_tls).push_image(repo_name, "1.0")
    (tmp_path / "ca.pem").write_bytes(registry_tls.ca_file.read_bytes())  # type: ignore[union-attr]
    config = Config(registries=(RegistryConfig(host=registry_tls.host, ca_file="~/ca.pem"),))
    async with RegistryClient(config, env={"HOME": str(tmp_path)}, retry=FAST) as registry_client:
        found = await registry_client.resolve(ImportRequest(f"{registry_tls.host}/{repo_name}:1.0"))
    assert image(found).digest == pushed


async def test_tls_with_wrong_ca_fails(
    registry_tls: RegistryServer, tmp_path: Path, repo_name: str
) -> None:
    """A certificate the configured CA did not sign is refused, with a hint about caFile."""
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    config = Config(registries=(RegistryConfig(host=registry_tls.host, ca_file=str(other)),))
    failure = await resolve(ImportRequest(f"{registry_tls.host}/{repo_name}:1.0"), config)
    assert isinstance(failure, ImportFailure)
    assert failure.reason == status.REGISTRY_UNAVAILABLE
    assert "caFile" in failure.message


async def test_tls_verified_without_ca_file(
    registry_tls: RegistryServer, tmp_path: Path, repo_name: str
) -> None:
    """Without caFile, TLS is verified against the system store: a private CA is refused."""
    client_cert = tmp_path / "client.pem"
    issued = trustme.CA().issue_cert("client.example")
    issued.private_key_and_cert_chain_pem.write_to_path(str(client_cert))
    # A certFile alone makes the loopback registry speak TLS, with no caFile to trust.
    entry = RegistryConfig(host=registry_tls.host, cert_file=str(client_cert))
    config = Config(registries=(entry,))
    failure = await resolve(ImportRequest(f"{registry_tls.host}/{repo_name}:1.0"), config)
    assert isinstance(failure, ImportFailure)
    assert failure.reason == status.REGISTRY_UNAVAILABLE
    assert "certificate not trusted" in failure.message


async def test_client_certificate_is_presented(
    registry_mtls: RegistryServer, make_seeder: Callable[..., Seeder], repo_name: str
) -> None:
    """certFile/keyFile are presented to a registry that requires a client certificate."""
    pushed = make_seeder(registry_mtls).push_image(repo_name, "1.0")
    assert registry_mtls.client_cert is not None and registry_mtls.ca_file is not None
    cert, key = registry_mtls.client_cert
    with_cert = RegistryConfig(
        host=registry_mtls.host,
        ca_file=str(registry_mtls.ca_file),
        cert_file=str(cert),
        key_file=str(key),
    )
    request = ImportRequest(f"{registry_mtls.host}/{repo_name}:1.0")
    found = image(await resolve(request, Config(registries=(with_cert,))))
    assert found.digest == pushed
    without = replace(with_cert, cert_file=None, key_file=None)
    failure = await resolve(request, Config(registries=(without,)))
    assert isinstance(failure, ImportFailure)
    assert failure.reason == status.REGISTRY_UNAVAILABLE


async def test_insecure_tls_registry_skips_verification(
    registry_tls: RegistryServer, make_seeder: Callable[..., Seeder], repo_name: str
) -> None:
    """``insecure: true`` talks TLS without verifying the certificate."""
    pushed = make_seeder(registry_tls).push_image(repo_name, "1.0")
    config = Config(registries=(RegistryConfig(host=registry_tls.host, insecure=True),))
    found = image(await resolve(ImportRequest(f"{registry_tls.host}/{repo_name}:1.0"), config))
    assert found.digest == pushed


async def test_tag_insecure_ignored_for_secure_registry(
    registry_tls: RegistryServer, tmp_path: Path, repo_name: str
) -> None:
    """importPolicy.insecure does not turn off TLS checks for a registry not marked insecure."""
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    config = Config(registries=(RegistryConfig(host=registry_tls.host, ca_file=str(other)),))
    request = ImportRequest(f"{registry_tls.host}/{repo_name}:1.0", insecure=True)
    with structlog.testing.capture_logs() as events:
        failure = await resolve(request, config)
    assert isinstance(failure, ImportFailure)
    assert failure.reason == status.REGISTRY_UNAVAILABLE
    assert "certificate" in failure.message
    assert [e["event"] for e in events if e["log_level"] == "warning"] == [
        "importPolicy.insecure ignored: registry not marked insecure in streamlock.yaml"
    ]


async def test_insecure_plain_registry_falls_back_to_http(
    registry: RegistryServer, seeder: Seeder, repo_name: str
) -> None:
    """``insecure: true`` on a plain-HTTP registry tries TLS, then speaks HTTP."""
    pushed = seeder.push_image(repo_name, "1.0")
    config = Config(registries=(RegistryConfig(host=registry.host, insecure=True),))
    found = image(await resolve(ImportRequest(seeder.ref(repo_name, "1.0")), config))
    assert found.digest == pushed


class _OneImage(BaseHTTPRequestHandler):
    """Serves one image under any tag over plain HTTP, without Docker-Content-Digest.

    Records each request as (method, last path segment) and its client port.
    """

    protocol_version = "HTTP/1.1"
    manifest, config, _layer = build_image()
    ports: ClassVar[list[int]] = []
    seen: ClassVar[list[tuple[str, str]]] = []

    def do_GET(self) -> None:
        type(self).ports.append(self.client_address[1])
        type(self).seen.append((self.command, self.path.split("/")[-2]))
        body = self.config if "/blobs/" in self.path else self.manifest
        self.send_response(200)
        self.send_header("Content-Type", OCI_MANIFEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def one_image() -> Iterator[str]:
    """The host of a tiny plain-HTTP registry serving one image under any tag."""
    _OneImage.ports, _OneImage.seen = [], []
    with _serve(_OneImage) as host:
        yield host


async def test_insecure_fallback_keeps_connections_alive(one_image: str) -> None:
    """After falling back to plain HTTP, an insecure registry's connection is kept alive."""
    config = Config(registries=(RegistryConfig(host=one_image, insecure=True, concurrency=1),))
    async with client(config) as registry_client:
        for n in range(4):
            image(await registry_client.resolve(ImportRequest(f"{one_image}/app:t{n}")))
    assert len(_OneImage.ports) == 5  # four manifests and the shared config blob
    assert len(set(_OneImage.ports)) == 1


async def test_head_without_digest_is_followed_by_get(one_image: str) -> None:
    """A HEAD answered without Docker-Content-Digest cannot confirm the lock: one GET does."""
    known = Image(digest=sha256(_OneImage.manifest), created="2020-01-01T00:00:00Z")
    async with client() as registry_client:
        found = await registry_client.resolve(ImportRequest(f"{one_image}/app:1", known=known))
    assert found is known
    assert _OneImage.seen == [("HEAD", "manifests"), ("GET", "manifests")]


async def test_head_without_digest_then_changed_image(one_image: str) -> None:
    """Without the header, a GET whose digest differs from the lock's is imported as new."""
    known = Image(digest="sha256:" + "0" * 64, created="2020-01-01T00:00:00Z")
    async with client() as registry_client:
        found = image(
            await registry_client.resolve(ImportRequest(f"{one_image}/app:1", known=known))
        )
    assert found.digest == sha256(_OneImage.manifest)
    assert found.created != known.created
    assert _OneImage.seen == [("HEAD", "manifests"), ("GET", "manifests"), ("GET", "blobs")]


async def test_allowed_registries(seeder: Seeder, repo_name: str) -> None:
    """A registry outside allowedRegistries is refused; a matching pattern is allowed."""
    seeder.push_image(repo_name, "1.0")
    request = ImportRequest(seeder.ref(repo_name, "1.0"))
    refused = await resolve(request, Config(allowed_registries=("quay.io",)))
    allowed = await resolve(request, Config(allowed_registries=("127.0.0.1:*",)))
    assert isinstance(refused, ImportFailure)
    assert refused.reason == status.ACCESS_DENIED
    assert isinstance(allowed, Image)


class _CountingRegistry(BaseHTTPRequestHandler):
    """Serves one image under any tag and records the most requests in flight.

    Each request is held until ``expected`` requests have been in flight at once (at most
    ``HOLD`` seconds), so reaching the limit does not depend on how fast the machine is.
    """

    protocol_version = "HTTP/1.1"
    HOLD = 5.0
    manifest, config, _layer = build_image()
    changed = threading.Condition()
    in_flight = 0
    expected = 0
    most: ClassVar[list[int]] = [0]

    def do_GET(self) -> None:
        cls = type(self)
        with cls.changed:
            cls.in_flight += 1
            cls.most[0] = max(cls.most[0], cls.in_flight)
            cls.changed.notify_all()
            if not cls.changed.wait_for(lambda: cls.most[0] >= cls.expected, timeout=cls.HOLD):
                cls.expected = 0  # never reached: stop holding the others
        body = cls.config if "/blobs/" in self.path else cls.manifest
        self.send_response(200)
        self.send_header("Content-Type", OCI_MANIFEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with cls.changed:
            cls.in_flight -= 1

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.mark.parametrize("concurrency", [None, 2])
async def test_concurrency_per_registry(concurrency: int | None) -> None:
    """No more requests are in flight to a registry than its concurrency (default 8)."""
    _CountingRegistry.most = [0]
    _CountingRegistry.expected = concurrency or 8
    with _serve(_CountingRegistry) as host:
        entries = (
            () if concurrency is None else (RegistryConfig(host=host, concurrency=concurrency),)
        )
        async with client(Config(registries=entries)) as registry_client:
            results = await registry_client.resolve_all(
                [ImportRequest(f"{host}/app:t{n}") for n in range(20)]
            )
    assert all(isinstance(o, Image) for o in results.values())
    assert _CountingRegistry.most[0] == (concurrency or 8)
