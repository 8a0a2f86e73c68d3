"""What a registry told us about one reference: the observation the planner consumes.

Pure values; the registry client produces them, the planner never does I/O to get them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

LEGACY = "Legacy"
PRESERVE_ORIGINAL = "PreserveOriginal"

# OCI labels worth recording in a lock (and in a bump commit body).
RECORDED_LABELS = (
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.source",
)


@dataclass(frozen=True, slots=True)
class Image:
    """A resolved image: the digest to pin and the metadata a reviewer wants to see."""

    digest: str
    created: str | None = None
    platform: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    # PreserveOriginal: every platform's manifest digest, keyed "os/arch[/variant]".
    platforms: Mapping[str, str] | None = None
    # Legacy import of a multi-arch tag: the index digest the tag pointed at (for HEAD checks).
    index_digest: str | None = None
    # Every platform the tag offers ("os/arch[/variant]"), when the client fetched the manifest;
    # None when it only confirmed a known image with a HEAD. Checks require-platforms.
    offered: tuple[str, ...] | None = field(default=None, compare=False)

    @property
    def top_digest(self) -> str:
        """The digest a HEAD of the tag returns when nothing changed."""
        return self.index_digest or self.digest


@dataclass(frozen=True, slots=True)
class ImportFailure:
    """A reference that could not be resolved this pass; the last good pin is kept."""

    reason: str
    message: str
    transient: bool = True


Observation = Image | ImportFailure


@dataclass(frozen=True, slots=True)
class ImportRequest:
    """One registry lookup the planner asks the shell to make."""

    reference: str
    import_mode: str = LEGACY
    platform: str = "linux/amd64"
    insecure: bool = False
    # The image the lock already holds; lets the client confirm it with one HEAD.
    known: Image | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, str, str]:
        """Identical references across streams resolve once per pass."""
        return (self.reference, self.import_mode, self.platform)
