"""Manifests, indexes, image configs and platforms: what a registry's JSON means.

Pure: bytes in, values out. The registry shell fetches; this module decides what was fetched
(an image manifest or an index, which child matches a platform, what the config says). Platform
matching follows containerd's normalisation, so ``linux/arm64`` and ``linux/arm64/v8`` are the
same platform and ``aarch64`` is ``arm64``.

An answer that cannot be read (too large, too deep, not JSON, the wrong shape) is a
MalformedAnswer; a readable document of a kind not handled (Docker schema 1, an unknown media
type) is an UnsupportedManifest. Both are this tag's failure, never the pass's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.errors import DigestMismatch, MalformedAnswer, UnsupportedManifest
from reconciler.image import RECORDED_LABELS

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
# All four, always: distribution 2.8.2 hides OCI types that are not named, and a missing list type
# makes it answer with the linux/amd64 child, silently changing the pin.
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))

# distribution refuses manifests over 4 MiB; configs are small JSON documents.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 16 * 1024 * 1024
# Real manifests, configs, tokens and tag lists nest a handful of levels; labels are flat.
MAX_JSON_DEPTH = 64


def sha256_digest(body: bytes) -> str:
    """The content address of a body."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def verify_digest(body: bytes, claimed: str | None, what: str) -> str:
    """The body's digest; a claim it does not match is refused, never pinned."""
    actual = sha256_digest(body)
    if claimed is not None and claimed != actual:
        if not claimed.startswith("sha256:"):
            raise UnsupportedManifest(f"{what}: unsupported digest algorithm in {claimed!r}")
        raise DigestMismatch(f"{what}: content has digest {actual}, registry claimed {claimed}")
    return actual


# --- platforms --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Platform:
    """``os/architecture[/variant]`` as written; :meth:`normalized` compares them."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform must be os/arch[/variant], got {text!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    def normalized(self) -> tuple[str, str, str]:
        """containerd's normal form: aliases folded, default variants made explicit or dropped."""
        os_name = self.os.lower()
        if os_name == "macos":
            os_name = "darwin"
        arch, variant = _normalize_arch(self.architecture.lower(), (self.variant or "").lower())
        return os_name, arch, variant

    def matches(self, other: Platform) -> bool:
        return self.normalized() == other.normalized()


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    if arch in ("i386", "386"):
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if variant in ("8", "v8", "v8.0") else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", f"v{variant}"
        return "arm", variant
    return arch, variant


def _platform_of(data: Any) -> Platform | None:
    if not isinstance(data, Mapping):
        return None
    os_name, arch = data.get("os"), data.get("architecture")
    if not isinstance(os_name, str) or not isinstance(arch, str) or not os_name or not arch:
        return None
    variant = data.get("variant")
    return Platform(os_name, arch, variant if isinstance(variant, str) and variant else None)


# --- manifests --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One child of an index: a manifest digest and the platform it is for (if any)."""

    digest: str
    media_type: str | None
    platform: Platform | None


@dataclass(frozen=True, slots=True)
class ImageManifest:
    """A single-platform manifest; only the config digest matters to us."""

    media_type: str
    config_digest: str


@dataclass(frozen=True, slots=True)
class ManifestIndex:
    """An OCI index or Docker manifest list."""

    media_type: str
    entries: tuple[IndexEntry, ...]

    def select(self, wanted: Platform) -> IndexEntry | None:
        """The first child for ``wanted`` (normalised as containerd does), or None."""
        for entry in self.entries:
            if entry.platform is not None and entry.platform.matches(wanted):
                return entry
        return None

    def platform_digests(self) -> dict[str, str]:
        """Every runnable platform's digest; attestations (``unknown/unknown``) are left out."""
        digests: dict[str, str] = {}
        for entry in self.entries:
            if entry.platform is None or entry.platform.os == "unknown":
                continue
            digests.setdefault(str(entry.platform), entry.digest)
        return digests

    def describe_platforms(self) -> str:
        return ", ".join(sorted(self.platform_digests())) or "none"


Manifest = ImageManifest | ManifestIndex


def load_json(body: bytes, subject: str, *, limit: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """JSON from a registry, bounded in size and depth; anything else is a MalformedAnswer.

    Whoever publishes an image controls its config blob: 60 KB of ``[`` must be this answer's
    error, never a RecursionError that ends the pass.
    """
    if len(body) > limit:
        raise MalformedAnswer(f"{subject} is larger than {limit} bytes")
    try:
        data = json.loads(body)
    except RecursionError as exc:
        raise MalformedAnswer(f"{subject} is nested deeper than {max_depth} levels") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedAnswer(f"{subject} is not JSON") from exc
    # Fewer brackets than levels allowed cannot nest too deep: most answers skip the walk.
    if body.count(b"[") + body.count(b"{") > max_depth and _depth_exceeds(data, max_depth):
        raise MalformedAnswer(f"{subject} is nested deeper than {max_depth} levels")
    return data


def _depth_exceeds(data: Any, max_depth: int) -> bool:
    """Whether containers nest deeper than ``max_depth`` (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _json_object(body: bytes, subject: str, limit: int) -> dict[str, Any]:
    data = load_json(body, subject, limit=limit)
    if not isinstance(data, dict):
        raise MalformedAnswer(f"{subject} is not a JSON object")
    return data


def parse_manifest(body: bytes, content_type: str | None, what: str) -> Manifest:
    """Classify a manifest body; schema1 and unknown types are refused with a clear message."""
    data = _json_object(body, f"{what}: the manifest", MAX_MANIFEST_BYTES)
    media_type = data.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        media_type = (content_type or "").split(";", 1)[0].strip()
    if data.get("schemaVersion") == 1 or media_type in SCHEMA1_TYPES:
        raise UnsupportedManifest(
            f"{what}: Docker schema 1 manifests are not supported",
            hint="push the image again with a current client (schema 2 or OCI)",
        )
    if media_type not in INDEX_TYPES and media_type not in MANIFEST_TYPES:
        # OCI allows mediaType to be absent: tell index from manifest by shape.
        if isinstance(data.get("manifests"), list):
            media_type = OCI_INDEX
        elif isinstance(data.get("config"), dict):
            media_type = OCI_MANIFEST
        else:
            raise UnsupportedManifest(f"{what}: unsupported manifest type {media_type!r}")
    if media_type in INDEX_TYPES:
        return _parse_index(data, media_type, what)
    config = data.get("config")
    digest = config.get("digest") if isinstance(config, dict) else None
    if not isinstance(digest, str) or not digest:
        raise MalformedAnswer(f"{what}: the manifest names no config blob")
    return ImageManifest(media_type, digest)


def _parse_index(data: Mapping[str, Any], media_type: str, what: str) -> ManifestIndex:
    items = data.get("manifests")
    if not isinstance(items, list):
        raise MalformedAnswer(f"{what}: the index has no manifests list")
    entries = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("digest"), str):
            raise MalformedAnswer(f"{what}: an index entry has no digest")
        child_type = item.get("mediaType")
        entries.append(
            IndexEntry(
                digest=item["digest"],
                media_type=child_type if isinstance(child_type, str) else None,
                platform=_platform_of(item.get("platform")),
            )
        )
    return ManifestIndex(media_type, tuple(entries))


# --- image configs ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ImageConfig:
    """What a reviewer wants from the config blob: when, for which platform, which version."""

    created: str | None = None
    platform: str | None = None
    labels: Mapping[str, str] | None = None


def parse_config(body: bytes, what: str) -> ImageConfig:
    """``created``, ``os/architecture[/variant]`` and the recorded OCI labels of a config blob."""
    data = _json_object(body, f"{what}: the image config", MAX_CONFIG_BYTES)
    created = data.get("created")
    platform = _platform_of(data)
    inner = data.get("config")
    raw_labels = inner.get("Labels") if isinstance(inner, dict) else None
    labels = {}
    if isinstance(raw_labels, dict):
        labels = {
            key: raw_labels[key]
            for key in RECORDED_LABELS
            if isinstance(raw_labels.get(key), str) and raw_labels[key]
        }
    return ImageConfig(
        created=created if isinstance(created, str) and created else None,
        platform=None if platform is None else str(platform),
        labels=labels,
    )
