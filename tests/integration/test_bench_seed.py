"""The benchmarks' seeding: images written into the registry's storage are distinct and served."""

from __future__ import annotations

import httpx
import pytest

from benchmarks import _seed
from reconciler.config import Config
from reconciler.image import Image, ImportRequest
from reconciler.registry import RegistryClient
from tests.fixtures.images import MANIFEST_ACCEPT
from tests.fixtures.registry_server import RegistryServer

COUNT = 6


def _write(registry: RegistryServer, repo_name: str) -> list[_seed.SeededImage]:
    """``COUNT`` images over two repositories, written into storage without reading back."""
    seeded, layer = _seed.images([(f"{repo_name}-{n % 2}", f"t{n}") for n in range(COUNT)])
    _seed.write_storage(registry.storage_dir, seeded, layer)
    return seeded


def test_seeded_images_have_distinct_config_blobs(registry: RegistryServer, repo_name: str) -> None:
    """Every seeded tag serves a manifest naming a config blob of its own."""
    seeded = _write(registry, repo_name)
    configs = set()
    with httpx.Client(trust_env=False) as client:
        for image in seeded:
            url = f"{registry.url}/v2/{image.repo}/manifests/{image.tag}"
            manifest = client.get(url, headers={"Accept": MANIFEST_ACCEPT}).json()
            configs.add(manifest["config"]["digest"])
    assert len(configs) == COUNT


async def test_seeded_images_resolve_through_the_client(
    registry: RegistryServer, repo_name: str
) -> None:
    """The reconciler's client resolves every seeded tag to the manifest that was written."""
    seeded = _write(registry, repo_name)
    requests = [ImportRequest(image.ref(registry.host)) for image in seeded]
    async with RegistryClient(Config(), env={}) as client:
        results = await client.resolve_all(requests)
    digests = [results[r.key] for r in requests]
    assert all(isinstance(d, Image) for d in digests), digests
    assert [d.digest for d in digests if isinstance(d, Image)] == [
        image.manifest_digest for image in seeded
    ]


def test_verify_fails_when_a_config_blob_is_not_served(
    registry: RegistryServer, repo_name: str
) -> None:
    """Reading back a sample fails when a seeded config blob is missing from storage."""
    seeded = _write(registry, repo_name)
    hexa = seeded[-1].config_digest.removeprefix("sha256:")
    link = (
        registry.storage_dir
        / "docker/registry/v2/repositories"
        / seeded[-1].repo
        / "_layers/sha256"
        / hexa
        / "link"
    )
    link.unlink()
    with pytest.raises(RuntimeError, match="config not served"):
        _seed.verify(registry.url, seeded, sample=2)
