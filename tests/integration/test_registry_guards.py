"""Guards that keep a pin honest: TLS off loopback, Retry-After, digest checks, request rate."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import pytest

from reconciler import status
from reconciler.config import Config, RegistryConfig
from reconciler.image import Image, ImportFailure, ImportRequest
from reconciler.registry import RegistryClient, RetryPolicy, Timeouts
from reconciler.transport import AsyncioBackend
from tests.fixtures.fault_proxy import FaultProxy
from tests.fixtures.images import Seeder
from tests.fixtures.registry_server import TLS_NAME, RegistryServer

FAST = RetryPolicy(
    attempts=3, timeout=30, wait_initial=0, wait_max=0, wait_jitter=0, max_retry_after=0
)
MANIFESTS = "/manifests/"


class NameMap(AsyncioBackend):
    """Connects a host name to another address, as DNS would; records the names asked for."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.asked.append(host)
        return await super().connect_tcp(
            self.names.get(host, host), port, timeout, local_address, socket_options
        )


@pytest.fixture
def proxy(registry: RegistryServer, fault_proxy: Callable[..., FaultProxy]) -> FaultProxy:
    return fault_proxy(registry)


# --- TLS for every registry not on loopback -----------------------------------------------------
async def test_non_loopback_name_is_asked_over_tls(
    registry_tls: RegistryServer, make_seeder: Callable[[RegistryServer], Seeder], repo_name: str
) -> None:
    """A registry named by a non-loopback host (resolving to 127.0.0.1) is asked over TLS."""
    make_seeder(registry_tls).push_image(repo_name, "1.0")
    host = f"{TLS_NAME}:{registry_tls.port}"
    config = Config(registries=(RegistryConfig(host=host, ca_file=str(registry_tls.ca_file)),))
    backend = NameMap({TLS_NAME: "127.0.0.1"})
    async with RegistryClient(config, env={}, retry=FAST, network_backend=backend) as client:
        found = await client.resolve(ImportRequest(f"{host}/{repo_name}:1.0"))
    assert isinstance(found, Image), found
    assert set(backend.asked) == {TLS_NAME}


async def test_non_loopback_name_never_speaks_plain_http(proxy: FaultProxy) -> None:
    """A non-loopback registry that speaks only plain HTTP is never asked: TLS is required."""
    port = proxy.host.rpartition(":")[2]
    backend = NameMap({TLS_NAME: "127.0.0.1"})
    async with RegistryClient(
        Config(), env={}, retry=FAST, network_backend=backend, timeouts=Timeouts(connect=0.3)
    ) as client:
        found = await client.resolve(ImportRequest(f"{TLS_NAME}:{port}/shop/app:1"))
    assert isinstance(found, ImportFailure)
    assert found.reason == status.REGISTRY_UNAVAILABLE
    assert backend.asked  # it tried: over TLS, which the plain proxy cannot answer
    assert proxy.count() == 0


async def test_non_loopback_certificate_is_verified(
    registry_tls: RegistryServer, make_seeder: Callable[[RegistryServer], Seeder], repo_name: str
) -> None:
    """Without the registry's CA configured, its certificate is not trusted: TLS, verified."""
    make_seeder(registry_tls).push_image(repo_name, "1.0")
    host = f"{TLS_NAME}:{registry_tls.port}"
    backend = NameMap({TLS_NAME: "127.0.0.1"})
    async with RegistryClient(Config(), env={}, retry=FAST, network_backend=backend) as client:
        found = await client.resolve(ImportRequest(f"{host}/{repo_name}:1.0"))
    assert isinstance(found, ImportFailure)
    assert "TLS certificate not trusted" in found.message


# --- Retry-After ------------------------------------------------------------------------------
async def test_retry_after_is_waited(proxy: FaultProxy, seeder: Seeder, repo_name: str) -> None:
    """After a 429 with Retry-After: 1 the next attempt comes no sooner than a second later."""
    seeder.push_image(repo_name, "1.0")
    proxy.clear_requests()
    proxy.rate_limit(retry_after=1, method="GET", path=MANIFESTS, times=1)
    policy = RetryPolicy(
        attempts=3, timeout=30, wait_initial=0, wait_max=0, wait_jitter=0, max_retry_after=5
    )
    async with RegistryClient(Config(), env={}, retry=policy) as client:
        found = await client.resolve(ImportRequest(f"{proxy.host}/{repo_name}:1.0"))
    assert isinstance(found, Image)
    first, second = [r for r in proxy.requests if MANIFESTS in r.path][:2]
    assert first.status == 429
    assert second.at - first.at >= 0.95


# --- a digest reference gets exactly that digest ------------------------------------------------
async def test_digest_reference_served_other_content(
    proxy: FaultProxy, seeder: Seeder, repo_name: str
) -> None:
    """``repo@A`` answered with B's manifest (and B's true digest header) is a DigestMismatch."""
    wanted = seeder.push_image(repo_name, "a", salt="a")
    other = seeder.push_image(repo_name, "b", salt="b")
    proxy.reroute(f"/v2/{repo_name}/manifests/{other}", path=f"/manifests/{wanted}$", times=None)
    async with RegistryClient(Config(), env={}, retry=FAST) as client:
        found = await client.resolve(ImportRequest(f"{proxy.host}/{repo_name}@{wanted}"))
    assert isinstance(found, ImportFailure), found
    assert (found.reason, found.transient) == (status.DIGEST_MISMATCH, False)
    assert proxy.count("GET", f"/manifests/{wanted}$") == 1


async def test_digest_reference_head_claiming_other_digest(
    proxy: FaultProxy, seeder: Seeder, repo_name: str
) -> None:
    """A HEAD for ``repo@A`` claiming digest B is refused, even with B's manifest in the cache."""
    wanted = seeder.push_image(repo_name, "a", salt="a")
    other = seeder.push_image(repo_name, "b", salt="b")
    async with RegistryClient(Config(), env={}, retry=FAST) as client:
        known = await client.resolve(ImportRequest(f"{proxy.host}/{repo_name}@{wanted}"))
        assert isinstance(await client.resolve(ImportRequest(f"{proxy.host}/{repo_name}:b")), Image)
        assert isinstance(known, Image)
        proxy.bad_digest(other, method="HEAD", times=None)
        found = await client.resolve(
            ImportRequest(f"{proxy.host}/{repo_name}@{wanted}", known=known)
        )
    assert isinstance(found, ImportFailure), found
    assert found.reason == status.DIGEST_MISMATCH


# --- requestsPerSecond --------------------------------------------------------------------------
async def test_request_rate_paces_every_request(
    proxy: FaultProxy, seeder: Seeder, repo_name: str
) -> None:
    """With requestsPerSecond 4, the n-th request of a burst waits (n-1)/4 s for its slot."""
    tags = ["t1", "t2", "t3"]
    seeder.push_tags_bulk(repo_name, tags)
    proxy.clear_requests()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    config = Config(registries=(RegistryConfig(host=proxy.host, requests_per_second=4),))
    async with RegistryClient(
        config, env={}, retry=FAST, clock=lambda: 1000.0, sleep=sleep
    ) as client:
        results = await client.resolve_all(
            [ImportRequest(f"{proxy.host}/{repo_name}:{tag}") for tag in tags]
        )
    assert all(isinstance(o, Image) for o in results.values())
    sent = proxy.count()
    assert sent >= len(tags) + 1
    assert sorted(waits) == [n / 4 for n in range(1, sent)]
