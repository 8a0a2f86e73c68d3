"""Distinct images for the benchmarks, written straight into the registry's filesystem storage.

Every image has its own config blob (so resolving a tag costs a manifest GET and a config GET,
as it does against a real registry); they share one layer, which nobody fetches. Pushing 11,000
images through the HTTP API takes three requests each (minutes on two cores); writing the
``filesystem`` driver's layout takes seconds and is served the same way: ``verify`` reads a
sample back through the API, and the benchmarks fail on any reference that does not resolve.

The layout (CNCF distribution 2.x, ``docker/registry/v2`` under the storage root)::

    blobs/sha256/<2 hex>/<hex>/data                          the bytes of every blob and manifest
    repositories/<repo>/_layers/sha256/<hex>/link              a blob the repository may serve
    repositories/<repo>/_manifests/revisions/sha256/<hex>/link a manifest of the repository
    repositories/<repo>/_manifests/tags/<tag>/current/link     what the tag points at
    repositories/<repo>/_manifests/tags/<tag>/index/sha256/<hex>/link
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.fixtures.images import (
    MANIFEST_ACCEPT,
    SHARED_LAYER_CONTENT,
    Layer,
    make_config,
    make_layer,
    make_manifest,
    sha256,
)

PLATFORM = "linux/amd64"
CREATED = "2026-11-01T00:00:00Z"


@dataclass(frozen=True, slots=True)
class SeededImage:
    """One tag of one repository and the bytes it serves."""

    repo: str
    tag: str
    manifest: bytes
    config: bytes

    @property
    def manifest_digest(self) -> str:
        return sha256(self.manifest)

    @property
    def config_digest(self) -> str:
        return sha256(self.config)

    def ref(self, host: str) -> str:
        return f"{host}/{self.repo}:{self.tag}"


def build(repo: str, tag: str, layer: Layer) -> SeededImage:
    """The image of ``repo:tag``: a config of its own (salted by name) over the shared layer."""
    config = make_config(PLATFORM, created=CREATED, labels=None, layer=layer, salt=f"{repo}:{tag}")
    return SeededImage(repo, tag, make_manifest(config, [layer]), config)


def images(names: Sequence[tuple[str, str]]) -> tuple[list[SeededImage], Layer]:
    """One distinct image per (repository, tag), and the layer they share."""
    layer = make_layer(SHARED_LAYER_CONTENT)
    return [build(repo, tag, layer) for repo, tag in names], layer


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _blob(v2: Path, data: bytes) -> str:
    digest = sha256(data)
    hexa = digest.removeprefix("sha256:")
    path = v2 / "blobs" / "sha256" / hexa[:2] / hexa / "data"
    if not path.exists():
        _write(path, data)
    return digest


def _link(path: Path, digest: str) -> None:
    _write(path / "link", digest.encode())


def write_storage(storage: Path, seeded: Sequence[SeededImage], layer: Layer) -> None:
    """Write ``seeded`` into a ``filesystem`` driver rooted at ``storage`` (running or not:
    the registry keeps no cache of it unless configured to)."""
    v2 = storage / "docker" / "registry" / "v2"
    layer_digest = _blob(v2, layer.blob)
    linked: set[str] = set()
    for image in seeded:
        repo = v2 / "repositories" / image.repo
        if image.repo not in linked:
            _link(repo / "_layers" / "sha256" / layer_digest.removeprefix("sha256:"), layer_digest)
            linked.add(image.repo)
        config = _blob(v2, image.config)
        _link(repo / "_layers" / "sha256" / config.removeprefix("sha256:"), config)
        manifest = _blob(v2, image.manifest)
        hexa = manifest.removeprefix("sha256:")
        _link(repo / "_manifests" / "revisions" / "sha256" / hexa, manifest)
        tag = repo / "_manifests" / "tags" / image.tag
        _link(tag / "current", manifest)
        _link(tag / "index" / "sha256" / hexa, manifest)


def verify(url: str, seeded: Sequence[SeededImage], sample: int = 20, seed: int = 0) -> None:
    """Read ``sample`` images (spread at random, always the first and last) back through the
    API: the manifest digest served for the tag and the config blob must be the ones written."""
    chosen = list(seeded)
    if len(chosen) > sample:
        rng = random.Random(seed)
        chosen = [chosen[0], *rng.sample(chosen[1:-1], max(0, sample - 2)), chosen[-1]]

    def check(image: SeededImage) -> None:
        base = url.rstrip("/")
        got = client.get(
            f"{base}/v2/{image.repo}/manifests/{image.tag}", headers={"Accept": MANIFEST_ACCEPT}
        )
        if got.status_code != 200 or got.content != image.manifest:
            raise RuntimeError(f"{image.repo}:{image.tag}: manifest not served ({got.status_code})")
        blob = client.get(f"{base}/v2/{image.repo}/blobs/{image.config_digest}")
        if blob.status_code != 200 or blob.content != image.config:
            raise RuntimeError(f"{image.repo}:{image.tag}: config not served ({blob.status_code})")

    with (
        httpx.Client(timeout=30.0, trust_env=False) as client,
        ThreadPoolExecutor(max_workers=4) as pool,
    ):
        list(pool.map(check, chosen))


def seed(
    storage: Path, url: str, names: Sequence[tuple[str, str]], sample: int = 20
) -> list[SeededImage]:
    """Write one distinct image per (repository, tag) and check a sample is served."""
    seeded, layer = images(names)
    write_storage(storage, seeded, layer)
    verify(url, seeded, sample)
    return seeded
