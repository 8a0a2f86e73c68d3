"""Slots and pins: the values in consumer files that follow stream tags, and what they should be.

A ``Slot`` is one value a consumer keeps in step with a tag (a container's ``image``, a setter's
field, a ``FROM`` line). A ``Pin`` is what the tag's lock says the value must be. Comparing the two
needs no parse of the file, so slots are what the reader caches by Git blob id. Pure.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.errors import InputError, Problem
from reconciler.imagestream import DOCKER_IMAGE, IMAGE_STREAM_TAG
from reconciler.lockfile import StreamLock
from reconciler.reference import ImageReference

IMAGE = "image"  # the full pull spec: name@digest
NAME = "name"  # the repository only
TAG = "tag"  # the upstream tag only
DIGEST = "digest"  # sha256:…
FROM = "from"  # a Containerfile FROM: name:tag@digest, as Renovate pins base images
PARTS = (IMAGE, NAME, TAG, DIGEST, FROM)
_FOLLOW_LIMIT = 32


@dataclass(frozen=True, slots=True)
class Pin:
    """What a stream tag's consumers must hold: its lock's ``dockerImageReference`` and parts."""

    reference: str  # name@sha256:…, honouring referencePolicy
    digest: str
    tag: str | None  # the upstream tag the image was imported from, when there is one

    @property
    def name(self) -> str:
        return self.reference.rsplit("@", 1)[0]

    def part(self, part: str) -> str | None:
        if part == IMAGE:
            return self.reference
        if part == NAME:
            return self.name
        if part == TAG:
            return self.tag
        if part == DIGEST:
            return self.digest
        return f"{self.name}:{self.tag}@{self.digest}" if self.tag else self.reference


@dataclass(frozen=True, slots=True)
class Slot:
    """One value in a consumer file that follows the stream tag ``tag`` ("ns/stream:tag")."""

    tag: str
    part: str
    value: str | None  # as the file holds it now; None when the field is still missing
    origin: str  # what asked for it, for messages: "trigger", "DeploymentConfig", "setter"…
    line: int  # where the value (or what asked for it) is written, 1-based
    column: int
    document: int = 0
    where: tuple[str | int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "part": self.part,
            "value": self.value,
            "origin": self.origin,
            "line": self.line,
            "column": self.column,
            "document": self.document,
            "where": list(self.where),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Slot:
        return cls(
            data["tag"],
            data["part"],
            data["value"],
            data["origin"],
            data["line"],
            data["column"],
            data["document"],
            tuple(data["where"]),
        )

    def wanted(self, pins: Mapping[str, Pin]) -> str | None:
        pin = pins.get(self.tag)
        return None if pin is None else pin.part(self.part)

    def problem(self, path: str, pins: Mapping[str, Pin]) -> Problem | None:
        """Why this slot cannot follow ``pins`` (None: it can)."""
        pin = pins.get(self.tag)
        if pin is None:
            return Problem(
                path,
                self.line,
                self.column,
                f"{self.origin}: {self.tag} is not a tag of any image stream lock",
            )
        if pin.part(self.part) is None:
            return Problem(
                path,
                self.line,
                self.column,
                f"{self.origin}: {self.tag} was not imported from a tag, so it has no :{self.part}",
            )
        return None


def tag_key(namespace: str, stream: str, tag: str) -> str:
    return f"{namespace}/{stream}:{tag}"


def split_tag(text: str, namespace: str) -> tuple[str, str, str] | None:
    """``[ns/]stream:tag`` → (ns, stream, tag); None when it is not of that shape."""
    ns, slash, rest = text.rpartition("/")
    stream, colon, tag = rest.partition(":")
    if not colon or not stream or not tag or ":" in tag or "/" in ns:
        return None
    return (ns if slash else namespace, stream, tag)


class Pins(Mapping[str, Pin]):
    """Every locked tag's pin, keyed by "ns/stream:tag", built on first use.

    A pass looks up the few tags its consumers follow among thousands; building each pin (and
    walking its ``ImageStreamTag`` chain for the upstream tag) only when asked keeps that cheap.
    """

    def __init__(self, locks: Mapping[tuple[str, str], StreamLock]) -> None:
        self._locks = locks
        self._built: dict[str, Pin | None] = {}

    def _build(self, key: str) -> Pin | None:
        namespace, slash, rest = key.partition("/")
        stream, colon, tag = rest.partition(":")
        lock = self._locks.get((namespace, stream)) if slash and colon else None
        entry = lock.tags.get(tag) if lock is not None else None
        if entry is None:
            return None
        upstream = _upstream_tag(self._locks, namespace, stream, tag)
        return Pin(entry.docker_image_reference, entry.image, upstream)

    def __getitem__(self, key: str) -> Pin:
        if key not in self._built:
            self._built[key] = self._build(key)
        pin = self._built[key]
        if pin is None:
            raise KeyError(key)
        return pin

    def __iter__(self) -> Iterator[str]:
        for (namespace, stream), lock in self._locks.items():
            for tag in lock.tags:
                yield tag_key(namespace, stream, tag)

    def __len__(self) -> int:
        return sum(len(lock.tags) for lock in self._locks.values())


def pins(locks: Mapping[tuple[str, str], StreamLock]) -> Pins:
    """Every locked tag's pin, keyed by "ns/stream:tag" (built lazily)."""
    return Pins(locks)


def _upstream_tag(
    locks: Mapping[tuple[str, str], StreamLock], namespace: str, stream: str, tag: str
) -> str | None:
    """The registry tag a tag's image came from, following ImageStreamTag sources."""
    for _ in range(_FOLLOW_LIMIT):
        lock = locks.get((namespace, stream))
        entry = lock.tags.get(tag) if lock else None
        if entry is None:
            return None
        if entry.source.kind == DOCKER_IMAGE:
            try:
                return ImageReference.parse(entry.source.name).tag
            except InputError:
                return None
        if entry.source.kind != IMAGE_STREAM_TAG:
            return None
        namespace, stream, tag = entry.source.target(namespace, stream)
    return None
