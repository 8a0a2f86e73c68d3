"""The ``streamlock.dev/*`` annotations of a tag, read into rules (pure; problems, not raises).

Annotations keep stream files valid ImageStreams: OpenShift ignores them, streamlock reads them.
Every one is checked here, so ``validate`` reports a bad range or regular expression offline,
located at the annotation, and a pass never meets one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.config import parse_duration
from reconciler.errors import InputError
from reconciler.policy.tags import DEFAULT_CANDIDATES, PolicyError, TagPolicy, make_policy

PREFIX = "streamlock.dev/"
HOLD = "streamlock.dev/hold"
REIMPORT = "streamlock.dev/reimport"
POLICY = "streamlock.dev/policy"
TAG_FILTER = "streamlock.dev/tag-filter"
TAG_EXCLUDE = "streamlock.dev/tag-exclude"
CANDIDATES = "streamlock.dev/candidates"
MIN_AGE = "streamlock.dev/min-age"
PROMOTE_AFTER = "streamlock.dev/promote-after"
REQUIRE_PLATFORMS = "streamlock.dev/require-platforms"
KNOWN = (
    HOLD,
    REIMPORT,
    POLICY,
    TAG_FILTER,
    TAG_EXCLUDE,
    CANDIDATES,
    MIN_AGE,
    PROMOTE_AFTER,
    REQUIRE_PLATFORMS,
)
_POLICY_COMPANIONS = (TAG_FILTER, TAG_EXCLUDE, CANDIDATES)
_PLATFORM_RE = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")

# (annotation key, message)
AnnotationProblem = tuple[str, str]


@dataclass(frozen=True, slots=True)
class TagRules:
    """What a tag's annotations ask for beyond OpenShift's fields."""

    policy: TagPolicy | None = None
    min_age: float | None = None  # seconds
    promote_after: float | None = None  # seconds
    platforms: tuple[str, ...] = ()


def _duration(key: str, value: str, problems: list[AnnotationProblem]) -> float | None:
    try:
        seconds = parse_duration(value)
    except InputError:
        problems.append((key, f"{value!r} is not a duration; use Go syntax such as 2h or 90m"))
        return None
    if seconds <= 0:
        problems.append((key, "must be longer than 0s"))
        return None
    return seconds


def read(
    annotations: Mapping[str, str], kind: str, *, repository: bool, reference: bool = False
) -> tuple[TagRules, list[AnnotationProblem]]:
    """The rules of one tag and every problem of its annotations.

    ``kind`` is the tag's ``from.kind``; ``repository`` says ``from.name`` names a repository
    without tag or digest (what a policy chooses in).
    """
    problems: list[AnnotationProblem] = []
    imported = kind == "DockerImage" and not reference
    for key in sorted(annotations):
        if key.startswith(PREFIX) and key not in KNOWN:
            problems.append((key, f"unknown annotation; streamlock reads {', '.join(KNOWN)}"))
    policy = None
    text = annotations.get(POLICY)
    if text is not None:
        if not imported:
            problems.append((POLICY, "a policy needs from.kind DockerImage (and no reference)"))
        elif not repository:
            problems.append(
                (POLICY, "a policy needs from.name to name a repository, without tag or digest")
            )
        policy = _policy(annotations, text, problems)
    else:
        for key in _POLICY_COMPANIONS:
            if key in annotations:
                problems.append((key, f"only used with {POLICY}"))
    min_age = None
    if MIN_AGE in annotations:
        min_age = _duration(MIN_AGE, annotations[MIN_AGE], problems)
        if not imported:
            problems.append((MIN_AGE, "only imported tags (from.kind DockerImage) wait"))
    promote_after = None
    if PROMOTE_AFTER in annotations:
        promote_after = _duration(PROMOTE_AFTER, annotations[PROMOTE_AFTER], problems)
        if kind != "ImageStreamTag":
            problems.append((PROMOTE_AFTER, "only followers (from.kind ImageStreamTag) promote"))
    platforms: tuple[str, ...] = ()
    if REQUIRE_PLATFORMS in annotations:
        platforms = tuple(p.strip() for p in annotations[REQUIRE_PLATFORMS].split(","))
        bad = [p for p in platforms if not _PLATFORM_RE.match(p)]
        if bad or not platforms:
            problems.append(
                (REQUIRE_PLATFORMS, f"{bad[0] if bad else ''!r} is not os/arch[/variant]")
            )
        if not imported:
            problems.append((REQUIRE_PLATFORMS, "only imported tags are checked for platforms"))
    return TagRules(policy, min_age, promote_after, platforms), problems


def _policy(
    annotations: Mapping[str, str], text: str, problems: list[AnnotationProblem]
) -> TagPolicy | None:
    candidates = DEFAULT_CANDIDATES
    raw = annotations.get(CANDIDATES)
    if raw is not None:
        if not raw.strip().isdigit():
            problems.append((CANDIDATES, f"{raw!r} is not a whole number"))
            return None
        candidates = int(raw)
    try:
        return make_policy(
            text,
            tag_filter=annotations.get(TAG_FILTER),
            exclude=annotations.get(TAG_EXCLUDE),
            candidates=candidates,
        )
    except PolicyError as exc:
        message = str(exc)
        key = POLICY
        if "tag-filter" in message:
            key = TAG_FILTER
        elif "tag-exclude" in message:
            key = TAG_EXCLUDE
        elif "candidates" in message:
            key = CANDIDATES
        problems.append((key, message))
        return None


def rules(annotations: Mapping[str, str], kind: str, *, repository: bool) -> TagRules:
    """The rules of a tag that passed :func:`read` (a problem there drops that rule)."""
    return read(annotations, kind, repository=repository)[0]
