"""Seeding the local ``docker-registry`` by writing its filesystem storage directly.

50,000 tag PUTs would take minutes; the storage layout of distribution 2.x is plain files::

    docker/registry/v2/blobs/sha256/<ab>/<hex>/data
    docker/registry/v2/repositories/<name>/_layers/sha256/<hex>/link
    docker/registry/v2/repositories/<name>/_manifests/revisions/sha256/<hex>/link
    docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link

Tags are read from disk on every request, so moving a tag while the registry runs is one write.
The tag's ``index/`` (which digests it ever pointed at) only serves deletes and is left out.
``verify`` reads a sample back through the API.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from pathlib import Path

import httpx

from benchmarks.scale.world import PoolImage, World
from tests.fixtures.images import sha256

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


class Storage:
    """The registry's storage root, and which blobs and links already exist there."""

    def __init__(self, storage_dir: Path) -> None:
        self.v2 = storage_dir / "docker" / "registry" / "v2"
        self._blobs: set[str] = set()
        self._linked: set[tuple[str, str]] = set()

    def _blob(self, data: bytes) -> str:
        digest = sha256(data)
        if digest not in self._blobs:
            hex_ = digest.removeprefix("sha256:")
            _write(self.v2 / "blobs" / "sha256" / hex_[:2] / hex_ / "data", data)
            self._blobs.add(digest)
        return digest

    def _link_image(self, repository: str, image: PoolImage) -> str:
        digest = image.digest
        if (repository, digest) in self._linked:
            return digest
        repo = self.v2 / "repositories" / repository
        for blob in (image.layer, image.config):
            d = self._blob(blob)
            _write(repo / "_layers" / "sha256" / d[7:] / "link", d.encode())
        self._blob(image.manifest)
        _write(repo / "_manifests" / "revisions" / "sha256" / digest[7:] / "link", digest.encode())
        self._linked.add((repository, digest))
        return digest

    def tag(self, repository: str, tag: str, image: PoolImage) -> None:
        """Point ``repository:tag`` at ``image`` (blobs and links written as needed)."""
        digest = self._link_image(repository, image)
        base = self.v2 / "repositories" / repository / "_manifests" / "tags" / tag
        tmp = base / "current" / ".link.tmp"
        _write(tmp, digest.encode())
        os.replace(tmp, base / "current" / "link")


def seed(storage: Storage, world: World, streams: Iterable[int] | None = None) -> int:
    """Every v tag of ``streams`` (default all) served at the world's current version."""
    count = 0
    for s in range(world.scale.streams) if streams is None else streams:
        for j in range(world.scale.half):
            storage.tag(world.repository(s, j), world.reference_tag(s, j), world.current(s, j))
            count += 1
    return count


def move(storage: Storage, world: World, streams: Iterable[int], versions_ahead: int) -> int:
    """Serve ``versions_ahead`` versions past the world's state for the v tags of ``streams``."""
    count = 0
    for s in streams:
        for j in range(world.scale.half):
            image = world.image(s, j, world.versions[s][j] + versions_ahead)
            storage.tag(world.repository(s, j), world.reference_tag(s, j), image)
            count += 1
    return count


def verify(base_url: str, world: World, sample: int, seed: int = 1) -> int:
    """HEAD a random sample of references through the API; each must serve the world's digest."""
    rng = random.Random(seed)
    picks = [
        (rng.randrange(world.scale.streams), rng.randrange(world.scale.half)) for _ in range(sample)
    ]
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for s, j in picks:
            path = f"/v2/{world.repository(s, j)}/manifests/{world.reference_tag(s, j)}"
            response = client.get(path, headers={"Accept": ACCEPT})
            expected = world.current(s, j)
            got = response.headers.get("Docker-Content-Digest")
            if response.status_code != 200 or got != expected.digest:
                raise AssertionError(
                    f"{path}: {response.status_code} {got}, want {expected.digest}"
                )
            config = client.get(f"/v2/{world.repository(s, j)}/blobs/{sha256(expected.config)}")
            if config.status_code != 200 or config.content != expected.config:
                raise AssertionError(f"{path}: config blob {config.status_code}")
    return len(picks)
