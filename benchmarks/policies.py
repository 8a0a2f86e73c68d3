"""Tag policy benchmark: choosing among 10,000 tags costs the listing plus the winner.

One local ``docker-registry`` with one repository of 10,000 tags (semver releases, pre-releases
and ``main-<timestamp>-<sha>`` builds; bulk-pushed, shared blobs):

- one ``semver`` resolution with a new client: wall time, HTTP requests (listing pages plus the
  winner's manifest and config) and the Python heap's peak while doing it (tracemalloc);
- the same for ``numerical`` over the extracted timestamp;
- a pass over 100 policy tags in 10 repositories, then a no-op pass: listings per repository
  (each exactly once) and requests in total.

Targets (the policies issue): a resolution < 2 s; a no-op pass lists each repository once.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TAGS = 10_000
PASS_REPOSITORIES = 10
PASS_TAGS_PER_REPOSITORY = 200
POLICY_TAGS = 100
RESOLVE_SECONDS = 2.0


def big_listing() -> list[str]:
    releases = [
        f"{major}.{minor}.{patch}"
        for major in range(1, 5)
        for minor in range(25)
        for patch in range(40)
    ]  # 4,000
    pre = [f"5.{minor}.0-rc.{n}" for minor in range(100) for n in range(30)]  # 3,000
    builds = [f"main-{1_700_000_000 + n * 61}-{n * 2654435761 % 16**7:07x}" for n in range(3000)]
    tags = releases + pre + builds
    assert len(tags) == TAGS
    return tags


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


async def resolve_once(reference: str, policy_text: str, **kwargs: Any) -> dict[str, Any]:
    """List, choose, import the winner with a new client; seconds, requests, heap peak."""
    from reconciler.config import Config
    from reconciler.image import Image, ImportRequest
    from reconciler.policy.tags import choose, make_policy
    from reconciler.registry import RegistryClient

    requests: list[int] = []
    policy = make_policy(policy_text, **kwargs)
    tracemalloc.start()
    started = time.perf_counter()
    async with RegistryClient(
        Config(), env={}, observer=lambda host, code, seconds: requests.append(code)
    ) as client:
        tags = await client.list_tags(reference)
        listed = len(requests)
        choice = choose(policy, tags)
        assert choice.winner is not None
        image = await client.resolve(ImportRequest(f"{reference}:{choice.winner}"))
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert isinstance(image, Image), image
    return {
        "seconds": elapsed,
        "winner": choice.winner,
        "listed": len(tags),
        "list_requests": listed,
        "other_requests": len(requests) - listed,
        "peak_mb": peak / 1e6,
    }


class CountingResolver:
    """The CLI's resolver with counters: listings per repository and HTTP requests."""

    def __init__(self, root: Path) -> None:
        self.listings: Counter[str] = Counter()
        self.requests = 0
        self.root = root

    def factory(self, config: Any, root: Path) -> CountingResolver:
        self.config = config
        return self

    def _client(self) -> Any:
        from reconciler.registry import RegistryClient

        def count(host: str, code: int, seconds: float) -> None:
            self.requests += 1

        return RegistryClient(self.config, base_dir=self.root, env={}, observer=count)

    async def resolve_all(self, requests: Sequence[Any]) -> Any:
        async with self._client() as client:
            return await client.resolve_all(requests)

    async def list_all(self, references: Sequence[str]) -> Any:
        self.listings.update(references)
        async with self._client() as client:
            return await client.list_all(references)


def stream_files(host: str) -> dict[str, str]:
    """100 policy tags in 10 streams, each stream choosing in its own repository."""
    files = {}
    per_stream = POLICY_TAGS // PASS_REPOSITORIES
    for r in range(PASS_REPOSITORIES):
        lines = [
            "apiVersion: image.openshift.io/v1",
            "kind: ImageStream",
            f"metadata:\n  name: app{r}\n  namespace: bench",
            "spec:\n  tags:",
        ]
        for t in range(per_stream):
            lines += [
                f"  - name: t{t}",
                "    annotations:",
                f"      streamlock.dev/policy: 'semver:>=1.{t} <2'",
                f"    from:\n      kind: DockerImage\n      name: {host}/bench/pass{r}",
                "    importPolicy:\n      scheduled: true",
            ]
        files[f"streams/bench/app{r}.yaml"] = "\n".join(lines) + "\n"
    return files


def run_passes(host: str, work: Path) -> dict[str, Any]:
    from reconciler.reconcile import PassOptions, run_pass
    from tests.fixtures.gitremote import make_config_repo

    repo = make_config_repo(work / "repo", stream_files(host))
    first = CountingResolver(repo.work)
    result = asyncio.run(run_pass(repo.work, first.factory, PassOptions()))
    if not result.ok:
        raise RuntimeError(f"first pass failed: {result.plan.failed[:3]}")
    noop = CountingResolver(repo.work)
    started = time.perf_counter()
    result = asyncio.run(run_pass(repo.work, noop.factory, PassOptions()))
    elapsed = time.perf_counter() - started
    return {
        "first_requests": first.requests,
        "noop_seconds": elapsed,
        "noop_requests": noop.requests,
        "noop_listings": dict(noop.listings),
        "noop_commits": len(result.commits),
    }


def main() -> list[tuple[str, str, str, str]]:
    from tests.fixtures.images import Seeder
    from tests.fixtures.registry_server import RegistryServer

    work = Path(tempfile.mkdtemp(prefix="streamlock-bench-policies-"))
    try:
        with RegistryServer(work / "registry") as server:
            host = server.host
            tags = big_listing()
            log(f"seeding {len(tags):,} tags into {host}/bench/big")
            started = time.monotonic()
            small = [f"1.{minor}.{patch}" for minor in range(20) for patch in range(10)]
            with Seeder(server.url) as seeder:
                seeder.push_tags_bulk("bench/big", tags, workers=8)
                for r in range(PASS_REPOSITORIES):
                    seeder.push_tags_bulk(f"bench/pass{r}", small, workers=8)
            log(f"seeded in {time.monotonic() - started:.0f} s")
            reference = f"{host}/bench/big"
            semver = asyncio.run(resolve_once(reference, "semver:>=2 <4"))
            log(f"semver: {semver}")
            numerical = asyncio.run(
                resolve_once(
                    reference,
                    "numerical:asc",
                    tag_filter=r"^main-(?P<ts>[0-9]+)-[0-9a-f]+$",
                )
            )
            log(f"numerical: {numerical}")
            passes = run_passes(host, work)
            log(f"passes: {passes}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = []
    for name, found in (("semver:>=2 <4", semver), ("numerical:asc over ts", numerical)):
        rows.append(
            (
                f"{name}, {found['listed']:,} tags",
                f"{found['seconds']:.2f} s",
                f"winner {found['winner']}; {found['list_requests']} listing page(s) + "
                f"{found['other_requests']} requests for the winner; "
                f"heap peak {found['peak_mb']:.1f} MB",
                f"{verdict(found['seconds'] < RESOLVE_SECONDS)} (< {RESOLVE_SECONDS:g} s)",
            )
        )
    listings = passes["noop_listings"]
    once = len(listings) == PASS_REPOSITORIES and set(listings.values()) == {1}
    rows.append(
        (
            f"no-op pass, {POLICY_TAGS} policy tags in {PASS_REPOSITORIES} repositories",
            f"{passes['noop_seconds']:.2f} s",
            f"{sum(listings.values())} listings over {len(listings)} repositories, "
            f"{passes['noop_requests']} requests (first pass {passes['first_requests']}), "
            f"{passes['noop_commits']} commits",
            f"{verdict(once and passes['noop_commits'] == 0)} (each repository listed once)",
        )
    )
    return rows
