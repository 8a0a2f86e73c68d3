"""ImageStreams as people write them: the ``spec`` of ``image.openshift.io/v1`` objects.

The model is pure data. Loading (YAML/JSON files under ``streams/``, schema checks with
file:line:col) lives below the model in this module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.image import LEGACY

DOCKER_IMAGE = "DockerImage"
IMAGE_STREAM_TAG = "ImageStreamTag"
IMAGE_STREAM_IMAGE = "ImageStreamImage"
FROM_KINDS = (DOCKER_IMAGE, IMAGE_STREAM_TAG, IMAGE_STREAM_IMAGE)

HOLD_ANNOTATION = "streamlock.dev/hold"
REIMPORT_ANNOTATION = "streamlock.dev/reimport"

SOURCE = "Source"
LOCAL = "Local"


@dataclass(frozen=True, slots=True)
class TagReference:
    """A tag's ``from``: a registry pull spec, another stream tag, or a stream image."""

    kind: str
    name: str
    namespace: str | None = None

    def to_dict(self) -> dict[str, str]:
        data = {"kind": self.kind, "name": self.name}
        if self.namespace:
            data["namespace"] = self.namespace
        return data

    def identity(self) -> str:
        """The ``Streamlock-From`` trailer value: the pull spec, or ``Kind:ns/name``."""
        if self.kind == DOCKER_IMAGE:
            return self.name
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}:{ns}{self.name}"


@dataclass(frozen=True, slots=True)
class TagSpec:
    """One entry of ``spec.tags``."""

    name: str
    source: TagReference
    reference: bool = False
    scheduled: bool = False
    insecure: bool = False
    import_mode: str = LEGACY
    reference_policy: str = SOURCE
    annotations: Mapping[str, str] = field(default_factory=dict)
    line: int = field(default=0, compare=False)

    @property
    def hold(self) -> str | None:
        """The hold reason, or None when the tag may move."""
        value = self.annotations.get(HOLD_ANNOTATION)
        return None if value is None else (value or "held")

    def spec_hash(self, namespace: str) -> str:
        """Hash of the fields whose change forces a re-import (DESIGN.md §11)."""
        data = {
            "kind": self.source.kind,
            "name": self.source.name,
            "namespace": self.source.namespace or namespace,
            "reference": self.reference,
            "importMode": self.import_mode,
            "reimport": self.annotations.get(REIMPORT_ANNOTATION),
        }
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class ImageStream:
    """One ImageStream's spec; ``path``/``line`` point back to where a person wrote it."""

    namespace: str
    name: str
    tags: tuple[TagSpec, ...] = ()
    lookup_local: bool = False
    annotations: Mapping[str, str] = field(default_factory=dict)
    path: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def tag(self, name: str) -> TagSpec | None:
        for tag in self.tags:
            if tag.name == name:
                return tag
        return None
