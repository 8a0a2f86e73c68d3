"""Time budgets: a tag that trickles or stalls fails alone, within its budget or the pass's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reconciler import status
from reconciler.config import Config, ResolveTimeouts
from reconciler.image import Image, ImportFailure, ImportRequest
from reconciler.registry import RegistryClient, RetryPolicy, Timeouts
from tests.fixtures.fault_proxy import FaultProxy
from tests.fixtures.images import Seeder
from tests.fixtures.registry_server import RegistryServer

ATTEMPTS = 10
FAST = RetryPolicy(
    attempts=ATTEMPTS, timeout=30, wait_initial=0, wait_max=0, wait_jitter=0, max_retry_after=0
)
TAGS = ("ok1", "ok2", "ok3")


@pytest.fixture
def proxy(registry: RegistryServer, fault_proxy: Callable[..., FaultProxy]) -> FaultProxy:
    return fault_proxy(registry)


@pytest.fixture
def refs(proxy: FaultProxy, seeder: Seeder, repo_name: str) -> list[str]:
    """Three tags addressed through the proxy; seeding forgotten."""
    for tag in TAGS:
        seeder.push_image(repo_name, tag, salt=tag)
    proxy.clear_requests()
    return [f"{proxy.host}/{repo_name}:{tag}" for tag in TAGS]


async def _resolve_all(
    references: list[str], *, tag: float, pass_: float, **kwargs: Any
) -> dict[str, Any]:
    config = Config(timeouts=ResolveTimeouts(tag=tag, pass_=pass_))
    async with RegistryClient(config, env={}, retry=FAST, **kwargs) as client:
        results = await client.resolve_all([ImportRequest(r) for r in references])
    return {r: results[ImportRequest(r).key] for r in references}


def _out_of_time(observation: Any, field: str) -> bool:
    return (
        isinstance(observation, ImportFailure)
        and (observation.reason, observation.transient) == (status.REGISTRY_UNAVAILABLE, True)
        and f"timeouts.{field}" in observation.message
    )


async def test_trickling_tag_fails_within_its_budget(proxy: FaultProxy, refs: list[str]) -> None:
    """A tag whose answers trickle in fails when its budget (retries included) runs out."""
    proxy.trickle(0.05, method="GET", path=r"/manifests/ok2$", times=None)
    results = await _resolve_all(refs, tag=0.6, pass_=30, timeouts=Timeouts(read=5, attempt=0.25))
    assert _out_of_time(results[refs[1]], "tag"), results[refs[1]]
    assert "0.6 s" in results[refs[1]].message
    assert proxy.count("GET", r"/manifests/ok2$") < ATTEMPTS
    assert isinstance(results[refs[0]], Image)
    assert isinstance(results[refs[2]], Image)


async def test_budget_includes_the_first_attempt(proxy: FaultProxy, refs: list[str]) -> None:
    """One slow first attempt, shorter than the attempt timeout, still ends at the tag budget."""
    proxy.slow(3.0, method="GET", path=r"/manifests/ok1$", times=1)
    results = await _resolve_all(refs, tag=0.5, pass_=30, timeouts=Timeouts(attempt=10))
    assert _out_of_time(results[refs[0]], "tag"), results[refs[0]]
    assert all(isinstance(results[r], Image) for r in refs[1:])


async def test_pass_deadline_fails_the_unresolved_tags(proxy: FaultProxy, refs: list[str]) -> None:
    """Tags still resolving at the pass deadline fail; the tags resolved before keep theirs."""
    proxy.slow(3.0, method="GET", path=r"/manifests/ok[23]$", times=2)
    results = await _resolve_all(refs, tag=30, pass_=0.8)
    assert isinstance(results[refs[0]], Image)
    assert _out_of_time(results[refs[1]], "pass"), results[refs[1]]
    assert _out_of_time(results[refs[2]], "pass"), results[refs[2]]


async def test_pass_deadline_asks_nothing_more(proxy: FaultProxy, refs: list[str]) -> None:
    """A tag whose turn comes after the pass deadline fails without a request."""
    proxy.slow(3.0, method="GET", path=r"/manifests/ok1$", times=1)
    results = await _resolve_all(refs, tag=30, pass_=0.5, max_inflight=1)
    assert all(_out_of_time(results[r], "pass") for r in refs)
    assert proxy.count(path=r"/manifests/ok[23]$") == 0


async def test_retry_after_beyond_the_budget_fails_at_once(
    proxy: FaultProxy, refs: list[str]
) -> None:
    """A Retry-After longer than the tag's budget left is RateLimited at once, not waited out."""
    proxy.rate_limit(retry_after=30, method="GET", path=r"/manifests/ok1$", times=None)
    policy = RetryPolicy(
        attempts=5, timeout=60, wait_initial=0, wait_max=0, wait_jitter=0, max_retry_after=60
    )
    config = Config(timeouts=ResolveTimeouts(tag=2, pass_=30))
    async with RegistryClient(config, env={}, retry=policy) as client:
        results = await client.resolve_all([ImportRequest(r) for r in refs])
    failure = results[ImportRequest(refs[0]).key]
    assert isinstance(failure, ImportFailure)
    assert (failure.reason, failure.transient) == (status.RATE_LIMITED, True)
    assert proxy.count("GET", r"/manifests/ok1$") == 1
    assert all(isinstance(results[ImportRequest(r).key], Image) for r in refs[1:])
