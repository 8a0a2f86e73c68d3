"""One status vocabulary, shared by CLI output, logs, ``/status`` and metrics.

Reasons follow kstatus / Flux: ``Ready`` is always reported; a tag that will not succeed until
its spec changes is ``Stalled``.
"""

from __future__ import annotations

from dataclasses import dataclass

IMPORT_SUCCEEDED = "ImportSucceeded"
UP_TO_DATE = "UpToDate"
IMPORT_FAILED = "ImportFailed"
MANIFEST_UNKNOWN = "ManifestUnknown"
UNAUTHORIZED = "Unauthorized"
RATE_LIMITED = "RateLimited"
REGISTRY_UNAVAILABLE = "RegistryUnavailable"
DIGEST_MISMATCH = "DigestMismatch"
UNSUPPORTED_MANIFEST = "UnsupportedManifest"
MALFORMED_ANSWER = "MalformedAnswer"
HELD = "Held"
REVERT_RESPECTED = "RevertRespected"
FOLLOW_CYCLE = "FollowCycle"
FOLLOW_FAILED = "FollowFailed"
IMAGE_UNKNOWN = "ImageUnknown"
ACCESS_DENIED = "AccessDenied"
INVALID_SPEC = "InvalidSpec"
INVALID_LOCK = "InvalidLock"
NOT_DUE = "NotDue"
NO_MATCHING_TAG = "NoMatchingTag"
WAITING_MIN_AGE = "WaitingMinAge"
WAITING_PROMOTION = "WaitingPromotion"
PLATFORM_MISSING = "PlatformMissing"
PINNED = "Pinned"

# Actions a pass can take on one tag.
ADDED = "added"
UPDATED = "updated"
REMOVED = "removed"
UNCHANGED = "unchanged"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class TagStatus:
    """What one pass concluded about one tag; never committed to Git."""

    namespace: str
    stream: str
    tag: str
    action: str
    reason: str
    message: str = ""
    image: str | None = None
    previous: str | None = None

    @property
    def ready(self) -> bool:
        return self.action != FAILED

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.stream}:{self.tag}"
