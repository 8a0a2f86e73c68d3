"""Faults between the client and a real registry: retries succeed, bounded, and lies are refused."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest

from reconciler import status
from reconciler.config import Config, RegistryConfig
from reconciler.image import Image, ImportFailure, ImportRequest
from reconciler.registry import RegistryClient, RetryPolicy, Timeouts
from tests.fixtures.fault_proxy import WRONG_DIGEST, FaultProxy
from tests.fixtures.images import OCI_MANIFEST, Seeder, build_image
from tests.fixtures.registry_server import RegistryServer
from tests.fixtures.standin import serve

ATTEMPTS = 4
FAST = RetryPolicy(
    attempts=ATTEMPTS, timeout=30, wait_initial=0, wait_max=0, wait_jitter=0, max_retry_after=0
)
MANIFESTS = "/manifests/"


@pytest.fixture
def proxy(registry: RegistryServer, fault_proxy: Callable[..., FaultProxy]) -> FaultProxy:
    return fault_proxy(registry)


@pytest.fixture
def reference(proxy: FaultProxy, seeder: Seeder, repo_name: str) -> str:
    """A pushed tag, addressed through the proxy; the seeding requests are forgotten."""
    seeder.push_image(repo_name, "1.0")
    proxy.clear_requests()
    return f"{proxy.host}/{repo_name}:1.0"


async def _resolve(reference: str, **kwargs: object) -> object:
    async with RegistryClient(Config(), env={}, retry=FAST, **kwargs) as client:  # type: ignore[arg-type]
        return await client.resolve(ImportRequest(reference))


@pytest.mark.parametrize(
    "retry_after",
    [2, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)],
    ids=["seconds", "http-date"],
)
async def test_rate_limited_then_served(
    proxy: FaultProxy, reference: str, retry_after: object
) -> None:
    """429 with Retry-After (seconds or a date) is retried and the tag resolves."""
    proxy.rate_limit(retry_after=retry_after, path=MANIFESTS, times=2)  # type: ignore[arg-type]
    assert isinstance(await _resolve(reference), Image)
    assert proxy.count("GET", MANIFESTS) == 3


async def test_rate_limited_throughout(proxy: FaultProxy, reference: str) -> None:
    """A registry that keeps answering 429 costs exactly the attempt budget: RateLimited."""
    proxy.rate_limit(retry_after=1, path=MANIFESTS, times=None)
    failure = await _resolve(reference)
    assert isinstance(failure, ImportFailure)
    assert (failure.reason, failure.transient) == (status.RATE_LIMITED, True)
    assert proxy.count() == ATTEMPTS
    assert f"after {ATTEMPTS} attempts" in failure.message


async def test_unavailable_then_served(proxy: FaultProxy, reference: str) -> None:
    """503 and 500 are retried with backoff until the registry answers."""
    proxy.fail(503, path=MANIFESTS, times=1)
    proxy.fail(500, path=MANIFESTS, times=1)
    assert isinstance(await _resolve(reference), Image)
    assert proxy.count("GET", MANIFESTS) == 3


async def test_unavailable_throughout(proxy: FaultProxy, reference: str) -> None:
    """A registry that keeps failing costs exactly the attempt budget: RegistryUnavailable."""
    proxy.fail(503, times=None)
    failure = await _resolve(reference)
    assert isinstance(failure, ImportFailure)
    assert (failure.reason, failure.transient) == (status.REGISTRY_UNAVAILABLE, True)
    assert proxy.count() == ATTEMPTS
    assert f"HTTP 503 after {ATTEMPTS} attempts" in failure.message


async def test_retry_time_runs_out_first(proxy: FaultProxy, reference: str) -> None:
    """When the retry time ends before the attempt budget, the message counts real attempts."""
    policy = RetryPolicy(
        attempts=1000, timeout=0.3, wait_initial=0.05, wait_max=0.05, wait_jitter=0
    )
    proxy.fail(503, times=None)
    async with RegistryClient(Config(), env={}, retry=policy) as client:
        failure = await client.resolve(ImportRequest(reference))
    assert isinstance(failure, ImportFailure)
    assert 1 < proxy.count() < policy.attempts
    assert f"HTTP 503 after {proxy.count()} attempts" in failure.message


async def test_connection_reset_then_served(proxy: FaultProxy, reference: str) -> None:
    """A reset connection is retried on a new connection."""
    proxy.reset(path=MANIFESTS, times=2)
    assert isinstance(await _resolve(reference), Image)
    assert proxy.count("GET", MANIFESTS) == 3


async def test_connection_reset_throughout_says_how_many_attempts(
    proxy: FaultProxy, reference: str
) -> None:
    """A connection that keeps failing costs the attempt budget, and the message counts it."""
    proxy.reset(path=MANIFESTS, times=None)
    failure = await _resolve(reference)
    assert isinstance(failure, ImportFailure)
    assert (failure.reason, failure.transient) == (status.REGISTRY_UNAVAILABLE, True)
    assert f"after {ATTEMPTS} attempts" in failure.message


async def test_reset_of_config_blob(proxy: FaultProxy, reference: str) -> None:
    """Retries cover every request of a resolution, the config blob too."""
    proxy.reset(path="/blobs/", times=1)
    assert isinstance(await _resolve(reference), Image)
    assert proxy.count("GET", "/blobs/") == 2


async def test_slow_response_times_out_then_served(proxy: FaultProxy, reference: str) -> None:
    """A response slower than the read timeout is abandoned and retried."""
    proxy.slow(0.6, path=MANIFESTS, times=1)
    found = await _resolve(reference, timeouts=Timeouts(read=0.1))
    assert isinstance(found, Image)
    # The proxy records the slow request only when its delay is over.
    for _ in range(50):
        if proxy.count("GET", MANIFESTS) >= 2:
            break
        time.sleep(0.05)
    assert proxy.count("GET", MANIFESTS) == 2


async def test_wrong_digest_refused(proxy: FaultProxy, reference: str) -> None:
    """A Docker-Content-Digest that does not match the body is refused, once, never pinned."""
    proxy.bad_digest(path=MANIFESTS, times=None)
    failure = await _resolve(reference)
    assert isinstance(failure, ImportFailure)
    assert (failure.reason, failure.transient) == (status.DIGEST_MISMATCH, False)
    assert WRONG_DIGEST in failure.message
    assert proxy.count("GET", MANIFESTS) == 1


async def test_wrong_digest_for_digest_reference(
    proxy: FaultProxy, seeder: Seeder, repo_name: str
) -> None:
    """Fetching by digest, a response claiming another digest is refused too."""
    pushed = seeder.push_image(repo_name, "1.0")
    proxy.bad_digest(path=MANIFESTS, times=None)
    failure = await _resolve(f"{proxy.host}/{repo_name}@{pushed}")
    assert isinstance(failure, ImportFailure)
    assert failure.reason == status.DIGEST_MISMATCH


async def test_head_rate_limited_then_confirmed(proxy: FaultProxy, reference: str) -> None:
    """The HEAD check of a known image is retried like any request and still pulls nothing."""
    known = await _resolve(reference)
    assert isinstance(known, Image)
    proxy.clear_requests()
    proxy.rate_limit(retry_after=1, method="HEAD", times=1)
    async with RegistryClient(Config(), env={}, retry=FAST) as client:
        found = await client.resolve(ImportRequest(reference, known=known))
    assert found is known
    assert [r.method for r in proxy.requests] == ["HEAD", "HEAD"]


async def test_rate_limit_shared_by_registry(
    proxy: FaultProxy, seeder: Seeder, repo_name: str
) -> None:
    """Faults spread over many tags are each retried once: every tag resolves, no extra request."""
    tags = [f"t{n}" for n in range(8)]
    seeder.push_tags_bulk(repo_name, tags)
    proxy.clear_requests()
    proxy.rate_limit(retry_after=1, path=MANIFESTS, times=2)
    proxy.fail(503, path=MANIFESTS, times=1)
    config = Config(registries=(RegistryConfig(host=proxy.host, concurrency=2),))
    async with RegistryClient(config, env={}, retry=FAST) as client:
        results = await client.resolve_all(
            [ImportRequest(f"{proxy.host}/{repo_name}:{tag}") for tag in tags]
        )
    assert all(isinstance(o, Image) for o in results.values())
    assert proxy.count("GET", MANIFESTS) == len(tags) + 3


class _Trickle(BaseHTTPRequestHandler):
    """Answers every GET one byte per 50 ms: each read is quick, the whole answer is not."""

    protocol_version = "HTTP/1.1"
    manifest, _config, _layer = build_image()
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", OCI_MANIFEST)
        self.send_header("Content-Length", str(len(self.manifest)))
        self.end_headers()
        try:
            for byte in self.manifest[:100]:  # bounded: about 5 s at most
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            return  # the client gave up

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def trickle() -> Iterator[str]:
    """The host of a registry that trickles its answers in."""
    _Trickle.requests = []
    with serve(_Trickle) as host:
        yield host


async def test_trickling_answer_is_abandoned(trickle: str) -> None:
    """An answer that keeps trickling in is cut off per attempt; the tag fails after the budget."""
    failure = await _resolve(f"{trickle}/app:1.0", timeouts=Timeouts(read=1.0, attempt=0.3))
    assert isinstance(failure, ImportFailure)
    assert (failure.reason, failure.transient) == (status.REGISTRY_UNAVAILABLE, True)
    assert "0.3 s" in failure.message
    assert len(_Trickle.requests) == ATTEMPTS
