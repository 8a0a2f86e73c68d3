"""The pure heart of streamlock: specs + locks + history + observations -> the next locks.

``plan`` imports nothing that does I/O. The shell (``reconcile.py``) first asks
``import_requests`` which registry lookups are due, resolves them, then calls ``plan`` and acts
on the returned ``Plan``: files to write, commits to make, a status per tag.

The revert rule (DESIGN.md §4), per tag, with B = the digest the reconciler last committed for
this tag and this ``from`` (from its trailers), L = the lock's digest, U = what the source serves::

    U == L             -> nothing
    L != B and U == B  -> nothing (a person moved away from B: keep their choice)
    otherwise          -> bump to U
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from reconciler import status
from reconciler.config import Config
from reconciler.errors import InputError, Problem
from reconciler.image import Image, ImportFailure, ImportRequest, Observation
from reconciler.imagestream import (
    DOCKER_IMAGE,
    IMAGE_STREAM_IMAGE,
    IMAGE_STREAM_TAG,
    LOCAL,
    ImageStream,
    TagSpec,
    name_patterns,
)
from reconciler.lockfile import (
    HistoryItem,
    LockEntry,
    LockSet,
    StreamLock,
    dumps,
    lock_path,
)
from reconciler.policy import annotations as rules_of
from reconciler.policy import gates
from reconciler.policy.annotations import TagRules
from reconciler.policy.tags import NEWEST_BUILD, Choice, choose, newest
from reconciler.reference import ImageReference
from reconciler.status import TagStatus
from reconciler.trailers import TrailerBlock, bump_subject, format_message, one_line

StreamKey = tuple[str, str]
# (tag key "ns/stream:tag", from identity) -> digest the reconciler last committed.
Bases = Mapping[tuple[str, str], str]
# Streams whose lock failed its checks on read, with the located problems.
Broken = Mapping[StreamKey, Sequence[Problem]]
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# A repository's tags as the registry listed them, or why the listing failed.
Listing = tuple[str, ...] | ImportFailure
Listings = Mapping[str, Listing]
# Candidates a policy may walk past because they lack a required platform.
MAX_PLATFORM_TRIES = 5
# Rounds of lookups a pass makes: a refused candidate asks for the next one.
MAX_ROUNDS = MAX_PLATFORM_TRIES + 1


def tag_key(namespace: str, stream: str, tag: str) -> str:
    return f"{namespace}/{stream}:{tag}"


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class TagChange:
    """One tag whose lock entry changes in this pass."""

    namespace: str
    stream: str
    tag: str
    old: LockEntry | None
    new: LockEntry | None

    @property
    def key(self) -> str:
        return tag_key(self.namespace, self.stream, self.tag)

    @property
    def action(self) -> str:
        if self.old is None:
            return status.ADDED
        if self.new is None:
            return status.REMOVED
        return status.UPDATED

    @property
    def moved(self) -> bool:
        """True when the pinned digest changes (not only metadata)."""
        old = self.old.image if self.old else None
        new = self.new.image if self.new else None
        return old != new


@dataclass(frozen=True, slots=True)
class PlannedCommit:
    """A commit to make: its message and the full bytes of every file it touches."""

    subject: str
    message: str
    files: Mapping[str, bytes | None]
    changes: tuple[TagChange, ...]


@dataclass(frozen=True, slots=True, repr=False)
class Plan:
    """Everything a pass decided; the shell writes it, never re-decides it."""

    locks: Mapping[StreamKey, StreamLock]
    files: Mapping[str, bytes | None]
    commits: tuple[PlannedCommit, ...]
    changes: tuple[TagChange, ...]
    statuses: tuple[TagStatus, ...]
    problems: tuple[Problem, ...] = ()  # located problems of the locks that were set aside

    @property
    def changed(self) -> bool:
        return bool(self.files)

    @property
    def failed(self) -> tuple[TagStatus, ...]:
        return tuple(s for s in self.statuses if not s.ready)

    def __repr__(self) -> str:
        # A plan holds every lock's bytes: asyncio and logging repr() results, and a full
        # dataclass repr of 10,000 tags costs tens of megabytes.
        return (
            f"Plan(tags={len(self.statuses)}, files={len(self.files)}, "
            f"commits={len(self.commits)}, failed={len(self.failed)})"
        )


# ---------------------------------------------------------------------------------------------
# Which registry lookups are due


def is_due(
    spec: TagSpec,
    namespace: str,
    entry: LockEntry | None,
    *,
    key: str,
    config: Config,
    now: datetime,
    last_checked: Mapping[str, datetime],
    forced: Collection[str],
) -> bool:
    """Import on creation, on spec change, when forced, and when a scheduled tag's time comes."""
    if entry is None:
        return True
    if spec.hold is not None:
        return False
    if entry.spec_hash != spec.spec_hash(namespace):
        return True
    if entry.waiting is not None:  # a newer image waits for its minimum age
        return True
    if _forced(key, forced):
        return True
    if not spec.scheduled:
        return False
    checked = last_checked.get(key)
    return checked is None or now - checked >= timedelta(seconds=config.import_interval)


def _forced(key: str, forced: Collection[str]) -> bool:
    stream_key = key.rsplit(":", 1)[0]
    return key in forced or stream_key in forced


def in_scope(
    streams: Mapping[StreamKey, ImageStream], key: str, scope: Collection[str] | None
) -> bool:
    """Whether tag ``key`` is named in ``scope`` (tags or whole streams) or follows, through
    any chain of ``ImageStreamTag`` references, a tag that is; no scope covers everything."""
    seen: set[str] = set()
    while scope is not None and not _forced(key, scope):
        namespace, rest = key.split("/", 1)
        name, tag = rest.rsplit(":", 1)
        stream = streams.get((namespace, name))
        spec = stream.tag(tag) if stream else None
        if spec is None or spec.source.kind != IMAGE_STREAM_TAG or key in seen:
            return False
        seen.add(key)
        key = tag_key(*spec.source.target(namespace, name))
    return True


def _broken(locks: Mapping[StreamKey, StreamLock], broken: Broken | None) -> Broken:
    """The streams set aside: as given, else those of a ``LockSet`` from the shell."""
    if broken is not None:
        return broken
    return locks.broken if isinstance(locks, LockSet) else {}


def _broken_message(problems: Sequence[Problem]) -> str:
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"lock not used, fix or delete it: {problems[0]}{more}"


def _needs_registry(spec: TagSpec) -> bool:
    return spec.source.kind == DOCKER_IMAGE and not spec.reference


def _is_repository(spec: TagSpec) -> bool:
    """``from.name`` names a repository without tag or digest (what a policy chooses in)."""
    if spec.source.kind != DOCKER_IMAGE:
        return False
    try:
        ref = ImageReference.parse(spec.source.name)
    except InputError:
        return False
    return ref.tag is None and ref.digest is None


def _has_rules(spec: TagSpec) -> bool:
    """Whether a tag has ``streamlock.dev/*`` annotations (else its rules are the defaults)."""
    return bool(spec.annotations) and any(k.startswith(rules_of.PREFIX) for k in spec.annotations)


def tag_rules(spec: TagSpec) -> TagRules:
    """The ``streamlock.dev/*`` rules of a tag (none for a tag without such annotations)."""
    if not _has_rules(spec):
        return TagRules()
    return rules_of.rules(spec.annotations, spec.source.kind, repository=_is_repository(spec))


def _policy_of(spec: TagSpec) -> TagRules | None:
    """The rules of a tag that chooses by policy, else None."""
    if not _needs_registry(spec) or not _is_repository(spec):
        return None
    found = tag_rules(spec)
    return found if found.policy is not None else None


def _lacks(image: Image, platforms: Sequence[str]) -> list[str]:
    """The required platforms ``image`` does not offer; ``linux/arm64`` is met by any variant
    of it. An image only confirmed by a HEAD was checked when it was pinned."""
    if image.offered is None:
        return []
    offered = image.offered
    return [p for p in platforms if not any(o == p or o.startswith(f"{p}/") for o in offered)]


def _offers(image: Image, platforms: Sequence[str]) -> bool:
    return not _lacks(image, platforms)


@dataclass(frozen=True, slots=True)
class Pick:
    """What a policy made of a listing and of the candidates' images observed so far."""

    choice: Choice
    tag: str | None = None
    image: Image | None = None
    failure: ImportFailure | None = None
    needed: tuple[ImportRequest, ...] = ()
    refused: tuple[str, ...] = ()
    asked: tuple[ImportRequest, ...] = ()  # every lookup this pick used or needs


def _policy_request(
    spec: TagSpec, namespace: str, tag: str, entry: LockEntry | None, config: Config
) -> ImportRequest:
    """The lookup of one candidate tag; the pinned image is known only for the tag it came from."""
    return _request(spec, namespace, entry, config, tag=tag)


def pick(
    spec: TagSpec,
    rules: TagRules,
    namespace: str,
    tags: Sequence[str],
    entry: LockEntry | None,
    config: Config,
    observations: Mapping[tuple[str, str, str], Observation],
) -> Pick:
    """Walk a policy's candidates best first: the first one observed with every required
    platform wins; ``needed`` are lookups to make first. ``newest-build`` looks at all of its
    bounded candidates and takes the latest ``created``."""
    assert rules.policy is not None
    # Registry text: a listed name that is no valid tag can be neither pulled nor locked.
    valid = name_patterns()[2]
    choice = choose(rules.policy, [t for t in tags if valid.fullmatch(t)])
    if choice.winner is None:
        return Pick(choice)
    if rules.policy.kind == NEWEST_BUILD:
        requests = [(t, _policy_request(spec, namespace, t, entry, config)) for t in choice.ranked]
        asked = tuple(r for _, r in requests)
        needed = tuple(r for r in asked if r.key not in observations)
        if needed:
            return Pick(choice, needed=needed, asked=asked)
        seen = [(t, observations[r.key]) for t, r in requests]
        for tag, observed in seen:
            if isinstance(observed, ImportFailure):
                return Pick(choice, tag, failure=observed, asked=asked)
        fit = {t: o for t, o in seen if isinstance(o, Image) and _offers(o, rules.platforms)}
        refused = tuple(t for t, _ in seen if t not in fit)
        winner = newest([(t, o.created) for t, o in fit.items()])
        if winner is None:
            return Pick(choice, refused=refused, asked=asked)
        return Pick(choice, winner, fit[winner], refused=refused, asked=asked)
    refused_tags: list[str] = []
    used: list[ImportRequest] = []
    for tag in choice.ranked[:MAX_PLATFORM_TRIES]:
        request = _policy_request(spec, namespace, tag, entry, config)
        used.append(request)
        observed = observations.get(request.key)
        refused, asked = tuple(refused_tags), tuple(used)
        if observed is None:
            return Pick(choice, needed=(request,), refused=refused, asked=asked)
        if isinstance(observed, ImportFailure):
            return Pick(choice, tag, failure=observed, refused=refused, asked=asked)
        if not _offers(observed, rules.platforms):
            refused_tags.append(tag)
            continue
        return Pick(choice, tag, observed, refused=refused, asked=asked)
    return Pick(choice, refused=tuple(refused_tags), asked=tuple(used))


def _due_tags(
    streams: Sequence[ImageStream],
    locks: Mapping[StreamKey, StreamLock],
    config: Config,
    now: datetime,
    last_checked: Mapping[str, datetime],
    forced: Collection[str],
    skipped: Broken,
    scope: Collection[str] | None = None,
    *,
    policies_only: bool = False,
) -> Iterator[tuple[ImageStream, TagSpec, LockEntry | None]]:
    """The registry tags a pass looks up; ``policies_only``: of those, only the ones that may
    choose by a policy (a tag with no ``streamlock.dev/*`` annotation never does)."""
    by_key = {stream.key: stream for stream in streams}
    for stream in streams:
        if stream.key in skipped:
            continue
        lock = locks.get(stream.key)
        for spec in stream.tags:
            if not _needs_registry(spec):
                continue
            if policies_only and not _has_rules(spec):
                continue
            entry = lock.tags.get(spec.name) if lock else None
            key = tag_key(stream.namespace, stream.name, spec.name)
            if in_scope(by_key, key, scope) and is_due(
                spec,
                stream.namespace,
                entry,
                key=key,
                config=config,
                now=now,
                last_checked=last_checked,
                forced=forced,
            ):
                yield stream, spec, entry


def listing_requests(
    streams: Sequence[ImageStream],
    locks: Mapping[StreamKey, StreamLock],
    config: Config,
    now: datetime,
    *,
    last_checked: Mapping[str, datetime] | None = None,
    forced: Collection[str] = (),
    broken: Broken | None = None,
    scope: Collection[str] | None = None,
) -> list[str]:
    """The repositories whose tags this pass lists: one listing per repository, however many
    due policy tags choose in it."""
    due = _due_tags(
        streams,
        locks,
        config,
        now,
        last_checked or {},
        forced,
        _broken(locks, broken),
        scope,
        policies_only=True,
    )
    found = {spec.source.name for _, spec, _ in due if _policy_of(spec) is not None}
    return sorted(found)


def import_requests(
    streams: Sequence[ImageStream],
    locks: Mapping[StreamKey, StreamLock],
    config: Config,
    now: datetime,
    *,
    last_checked: Mapping[str, datetime] | None = None,
    forced: Collection[str] = (),
    broken: Broken | None = None,
    listings: Listings | None = None,
    observations: Mapping[tuple[str, str, str], Observation] | None = None,
    scope: Collection[str] | None = None,
) -> list[ImportRequest]:
    """The registry lookups this pass needs, one per distinct (reference, mode, platform).

    Streams whose lock was set aside (``broken``, by default that of a ``LockSet``) need none;
    with a ``scope`` (``import-image``), only the tags it names do. A policy tag needs its
    repository's listing first (``listing_requests``), then the
    candidates its policy names: with ``observations`` of an earlier round, the next candidate
    after one refused for a missing platform.
    """
    requests: dict[tuple[str, str, str], ImportRequest] = {}
    seen = observations or {}
    for stream, spec, entry in _due_tags(
        streams, locks, config, now, last_checked or {}, forced, _broken(locks, broken), scope
    ):
        rules = _policy_of(spec)
        if rules is None:
            request = _request(spec, stream.namespace, entry, config)
            requests.setdefault(request.key, request)
            continue
        listing = (listings or {}).get(spec.source.name)
        if listing is None or isinstance(listing, ImportFailure):
            continue
        found = pick(spec, rules, stream.namespace, listing, entry, config, seen)
        for request in found.asked:
            requests.setdefault(request.key, request)
    return [requests[k] for k in sorted(requests)]


def _request(
    spec: TagSpec,
    namespace: str,
    entry: LockEntry | None,
    config: Config,
    tag: str | None = None,
) -> ImportRequest:
    """The registry lookup of a tag's source (``tag``: one candidate of a tag policy)."""
    known = None
    if (
        entry is not None
        and entry.spec_hash == spec.spec_hash(namespace)
        and (tag is None or (entry.tag == tag and entry.source == spec.source))
    ):
        known = entry.as_image()
    return ImportRequest(
        reference=spec.source.name if tag is None else f"{spec.source.name}:{tag}",
        import_mode=spec.import_mode,
        platform=config.platform,
        insecure=spec.insecure,
        known=known,
    )


# ---------------------------------------------------------------------------------------------
# Planning


def _status(
    stream: ImageStream,
    spec: TagSpec,
    action: str,
    reason: str,
    message: str = "",
    image: str | None = None,
    previous: str | None = None,
) -> TagStatus:
    return TagStatus(
        stream.namespace, stream.name, spec.name, action, reason, message, image, previous
    )


@dataclass(slots=True)
class _Resolved:
    """A tag's outcome during planning (mutable scratch, never leaves this module)."""

    entry: LockEntry | None
    source_ref: str | None
    status: TagStatus


@dataclass(slots=True)
class _Pass:
    streams: Mapping[StreamKey, ImageStream]
    locks: Mapping[StreamKey, StreamLock]
    bases: Bases
    observations: Mapping[tuple[str, str, str], Observation]
    config: Config
    now: datetime
    last_checked: Mapping[str, datetime]
    forced: Collection[str]
    broken: Broken = field(default_factory=dict)
    scope: Collection[str] | None = None
    listings: Listings = field(default_factory=dict)
    # Why a tag moved, for its commit body (policy choices, soaks passed), by tag key.
    notes: dict[str, str] = field(default_factory=dict)
    resolved: dict[str, _Resolved] = field(default_factory=dict)
    visiting: list[str] = field(default_factory=list)

    # -- helpers ------------------------------------------------------------------------------

    def old_entry(self, namespace: str, stream: str, tag: str) -> LockEntry | None:
        lock = self.locks.get((namespace, stream))
        return lock.tags.get(tag) if lock else None

    def docker_image_reference(self, stream: ImageStream, spec: TagSpec, source_ref: str) -> str:
        if spec.reference_policy == LOCAL and self.config.local_registry:
            digest = source_ref.rsplit("@", 1)[1]
            return f"{self.config.local_registry}/{stream.namespace}/{stream.name}@{digest}"
        return source_ref

    def keep(
        self,
        stream: ImageStream,
        spec: TagSpec,
        old: LockEntry | None,
        action: str,
        reason: str,
        message: str = "",
    ) -> _Resolved:
        """Keep the last good pin (or nothing); only the derived pull spec may be refreshed."""
        entry, source_ref = old, old.docker_image_reference if old else None
        if old is not None and action != status.FAILED and reason != status.HELD:
            source_ref = self.source_ref_of_kept(spec, old)
            reference = self.docker_image_reference(stream, spec, source_ref)
            if reference != old.docker_image_reference:
                entry = replace(old, docker_image_reference=reference)
        image = old.image if old else None
        return _Resolved(entry, source_ref, _status(stream, spec, action, reason, message, image))

    def source_ref_of_kept(self, spec: TagSpec, old: LockEntry) -> str:
        if spec.source.kind == DOCKER_IMAGE and old.source == spec.source:
            if _pinned_as_written(spec.source.name, old.image) == old.docker_image_reference:
                return old.docker_image_reference  # what either branch below gives
            try:
                return ImageReference.parse(spec.source.name).with_digest(old.image)
            except InputError:  # validated earlier; fall back to what the lock says
                return old.docker_image_reference
        return old.docker_image_reference

    def new_entry(
        self,
        stream: ImageStream,
        spec: TagSpec,
        old: LockEntry | None,
        image: Image,
        source_ref: str,
        tag: str | None = None,
    ) -> LockEntry:
        """An entry pinned to ``image``; history grows only when the digest changes."""
        reference = self.docker_image_reference(stream, spec, source_ref)
        created = _utf8(image.created)
        if old is not None and _same_pin(old, spec, stream.namespace, image, reference, tag):
            return old  # the entry below would equal it field for field
        base = dict(
            source=spec.source,
            image=image.digest,
            docker_image_reference=reference,
            spec_hash=spec.spec_hash(stream.namespace),
            created=created,
            platform=_utf8(image.platform),
            labels={_utf8(k): _utf8(v) for k, v in image.labels.items()},
            platforms=None
            if image.platforms is None
            else {_utf8(k): v for k, v in image.platforms.items()},
            index_digest=image.index_digest,
            tag=tag,
        )
        if old is not None and old.image == image.digest:
            return LockEntry(imported_at=old.imported_at, history=old.history, **base)
        imported_at = rfc3339(self.now)
        item = HistoryItem(image.digest, reference, created, imported_at)
        history = (item, *(old.history if old else ()))[: self.config.history_limit]
        return LockEntry(imported_at=imported_at, history=history, **base)

    def decide(
        self,
        stream: ImageStream,
        spec: TagSpec,
        old: LockEntry | None,
        image: Image,
        source_ref: str,
        *,
        override: bool = False,
        tag: str | None = None,
    ) -> _Resolved:
        """Apply the revert rule to an observed image U."""
        ns = stream.namespace
        spec_changed = (
            old is None or old.spec_hash != spec.spec_hash(ns) or old.source != spec.source
        )
        if old is not None and not spec_changed and old.image == image.digest:
            entry = self.new_entry(stream, spec, old, image, source_ref, tag)
            return _Resolved(
                entry,
                source_ref,
                _status(stream, spec, status.UNCHANGED, status.UP_TO_DATE, "", old.image),
            )
        if old is not None and not spec_changed and not override:
            key = tag_key(ns, stream.name, spec.name)
            base = self.bases.get((key, spec.source.identity(ns, stream.name)))
            if base is not None and old.image != base and image.digest == base:
                message = (
                    f"kept {old.image[:19]}: a person moved the tag away from "
                    f"{base[:19]}, which the source still serves"
                )
                return _Resolved(
                    replace(old, waiting=None),
                    old.docker_image_reference,
                    _status(
                        stream, spec, status.UNCHANGED, status.REVERT_RESPECTED, message, old.image
                    ),
                )
        entry = self.new_entry(stream, spec, old, image, source_ref, tag)
        action = status.ADDED if old is None else status.UPDATED
        if old is not None and old.image == entry.image and old == entry:
            action = status.UNCHANGED
        previous = old.image if old else None
        return _Resolved(
            entry,
            source_ref,
            _status(stream, spec, action, status.IMPORT_SUCCEEDED, "", entry.image, previous),
        )

    # -- per kind ------------------------------------------------------------------------------

    def resolve(self, stream: ImageStream, spec: TagSpec) -> _Resolved:
        key = tag_key(stream.namespace, stream.name, spec.name)
        if key in self.resolved:
            return self.resolved[key]
        old = self.old_entry(stream.namespace, stream.name, spec.name)
        if not in_scope(self.streams, key, self.scope):
            result = self.keep(stream, spec, old, status.UNCHANGED, status.NOT_DUE)
        elif stream.key in self.broken:
            message = _broken_message(self.broken[stream.key])
            result = self.keep(stream, spec, None, status.FAILED, status.INVALID_LOCK, message)
        elif spec.hold is not None and old is not None:
            result = self.keep(stream, spec, old, status.UNCHANGED, status.HELD, spec.hold)
        elif spec.source.kind == IMAGE_STREAM_TAG:
            result = self.resolve_follower(stream, spec, old, key)
        elif spec.source.kind == IMAGE_STREAM_IMAGE:
            result = self.resolve_stream_image(stream, spec, old)
        elif spec.reference:
            result = self.resolve_reference(stream, spec, old)
        else:
            result = self.resolve_import(stream, spec, old, key)
        self.resolved[key] = result
        return result

    def resolve_import(
        self, stream: ImageStream, spec: TagSpec, old: LockEntry | None, key: str
    ) -> _Resolved:
        if not is_due(
            spec,
            stream.namespace,
            old,
            key=key,
            config=self.config,
            now=self.now,
            last_checked=self.last_checked,
            forced=self.forced,
        ):
            return self.keep(stream, spec, old, status.UNCHANGED, status.NOT_DUE)
        rules = tag_rules(spec)
        if _policy_of(spec) is not None:
            return self.resolve_policy(stream, spec, old, key, rules)
        request = _request(spec, stream.namespace, old, self.config)
        observation = self.observations.get(request.key)
        if observation is None:
            observation = ImportFailure(status.IMPORT_FAILED, "not resolved in this pass")
        kept = f"; kept {old.image[:19]}" if old else ""
        if isinstance(observation, ImportFailure):
            return self.keep(
                stream, spec, old, status.FAILED, observation.reason, observation.message + kept
            )
        if not _offers(observation, rules.platforms):
            missing = _lacks(observation, rules.platforms)
            message = f"{spec.source.name} lacks {', '.join(missing)}{kept}"
            return self.keep(stream, spec, old, status.FAILED, status.PLATFORM_MISSING, message)
        source_ref = ImageReference.parse(spec.source.name).with_digest(observation.digest)
        return self.gated(stream, spec, old, observation, source_ref, key, rules)

    def resolve_policy(
        self, stream: ImageStream, spec: TagSpec, old: LockEntry | None, key: str, rules: TagRules
    ) -> _Resolved:
        """A tag that chooses among its repository's tags: list, choose, then import the winner."""
        assert rules.policy is not None
        kept = f"; kept {old.tag or old.image[:19]}" if old else ""
        listing = self.listings.get(spec.source.name)
        if listing is None:
            listing = ImportFailure(status.IMPORT_FAILED, "tags not listed in this pass")
        if isinstance(listing, ImportFailure):
            return self.keep(
                stream, spec, old, status.FAILED, listing.reason, listing.message + kept
            )
        found = pick(spec, rules, stream.namespace, listing, old, self.config, self.observations)
        choice = found.choice
        if choice.winner is None:
            nearest = ", ".join(one_line(t, 60) for t in choice.nearest) or "none"
            message = (
                f"{rules.policy.text} matches none of the {choice.listed} tags of "
                f"{spec.source.name} (nearest: {nearest}){kept}"
            )
            return self.keep(stream, spec, old, status.FAILED, status.NO_MATCHING_TAG, message)
        if found.failure is not None:
            message = found.failure.message + kept
            return self.keep(stream, spec, old, status.FAILED, found.failure.reason, message)
        if found.image is None or found.tag is None:
            if found.refused:
                message = (
                    f"candidates {', '.join(found.refused)} lack one of "
                    f"{', '.join(rules.platforms)}{kept}"
                )
                return self.keep(stream, spec, old, status.FAILED, status.PLATFORM_MISSING, message)
            message = "not resolved in this pass" + kept
            return self.keep(stream, spec, old, status.FAILED, status.IMPORT_FAILED, message)
        source_ref = ImageReference.parse(spec.source.name).with_digest(found.image.digest)
        result = self.gated(stream, spec, old, found.image, source_ref, key, rules, found.tag)
        if result.entry is not None and (old is None or old.image != result.entry.image):
            previous = (old.tag or old.image[:19]) if old else "none"
            skipped = f", {len(found.refused)} refused for platforms" if found.refused else ""
            self.notes[key] = (
                f"chose {found.tag} by {rules.policy.text} among {choice.allowed} of "
                f"{choice.listed} tags{skipped}, previous {previous}"
            )
        return result

    def gated(
        self,
        stream: ImageStream,
        spec: TagSpec,
        old: LockEntry | None,
        image: Image,
        source_ref: str,
        key: str,
        rules: TagRules,
        tag: str | None = None,
    ) -> _Resolved:
        """The revert rule, then the minimum age: a new digest lands once it has been observed
        for ``min-age``; until then the lock keeps the old pin and the waiting digest's first
        sighting (a tag without a pin is pinned at once; ``import-image`` does not wait)."""
        result = self.decide(
            stream, spec, old, image, source_ref, override=_forced(key, self.forced), tag=tag
        )
        entry = result.entry
        if rules.min_age is None or old is None or entry is None or entry.image == old.image:
            return result
        if _forced(key, self.forced):
            return result
        gate = gates.min_age(old.waiting, image.digest, tag, self.now, rules.min_age)
        if gate.open:
            return result
        waiting = self.keep(stream, spec, old, status.UNCHANGED, status.WAITING_MIN_AGE)
        assert waiting.entry is not None and gate.waiting is not None
        shown = f"{tag} " if tag else ""
        message = (
            f"{shown}{image.digest[:19]} waits {gates.format_duration(gate.left)} more "
            f"(min-age {gates.format_duration(rules.min_age)}, first seen "
            f"{gate.waiting.first_seen})"
        )
        return _Resolved(
            replace(waiting.entry, waiting=gate.waiting),
            waiting.source_ref,
            replace(waiting.status, message=message),
        )

    def resolve_reference(
        self, stream: ImageStream, spec: TagSpec, old: LockEntry | None
    ) -> _Resolved:
        ref = ImageReference.parse(spec.source.name)
        if ref.digest is None:
            return self.keep(
                stream,
                spec,
                old,
                status.FAILED,
                status.INVALID_SPEC,
                "reference: true needs a digest reference (name@sha256:…)",
            )
        image = old.as_image() if old and old.image == ref.digest else Image(ref.digest)
        return self.decide(stream, spec, old, image, str(ref))

    def denied(self, stream: ImageStream, namespace: str) -> str | None:
        """Why ``stream`` may not follow or pin images of ``namespace`` (None: it may)."""
        if self.config.may_pull(namespace, stream.namespace):
            return None
        return (
            f"namespace {stream.namespace!r} may not use images of {namespace!r}; "
            f"grant it in streamlock.yaml access.{namespace}.pullers"
        )

    def resolve_follower(
        self, stream: ImageStream, spec: TagSpec, old: LockEntry | None, key: str
    ) -> _Resolved:
        namespace, target_name, target_tag = spec.source.target(stream.namespace, stream.name)
        denial = self.denied(stream, namespace)
        if denial is not None:
            return self.keep(stream, spec, old, status.FAILED, status.ACCESS_DENIED, denial)
        target = self.streams.get((namespace, target_name))
        if target is None:
            message = f"image stream {namespace}/{target_name} does not exist"
            return self.keep(stream, spec, old, status.FAILED, status.FOLLOW_FAILED, message)
        if target.key in self.broken:
            message = f"the lock of {namespace}/{target_name} is not used until it is fixed"
            return self.keep(stream, spec, old, status.FAILED, status.FOLLOW_FAILED, message)
        target_spec = target.tag(target_tag)
        if target_spec is None:
            return self.keep(
                stream,
                spec,
                old,
                status.FAILED,
                status.FOLLOW_FAILED,
                f"{namespace}/{target_name}:{target_tag} is not a tag",
            )
        target_key = tag_key(namespace, target_name, target_tag)
        if target_key in self.visiting:
            cycle = [*self.visiting[self.visiting.index(target_key) :], target_key]
            message = "follow cycle: " + " → ".join(cycle)
            for member in self.visiting[self.visiting.index(target_key) :]:
                self.resolved.setdefault(member, self.cycle_member(member, message))
            return self.keep(stream, spec, old, status.FAILED, status.FOLLOW_CYCLE, message)
        self.visiting.append(key)
        try:
            upstream = self.resolve(target, target_spec)
        finally:
            self.visiting.pop()
        if key in self.resolved:  # marked as a cycle member while resolving the target
            return self.resolved[key]
        if upstream.entry is None or upstream.source_ref is None:
            return self.keep(
                stream,
                spec,
                old,
                status.FAILED,
                status.FOLLOW_FAILED,
                f"{target_key} has no image yet",
            )
        rules = tag_rules(spec)
        promote = rules.promote_after
        if promote is not None and old is not None and upstream.entry.image != old.image:
            waiting = self.promotion_wait(target_key, upstream, promote)
            if waiting is not None:
                return self.keep(
                    stream, spec, old, status.UNCHANGED, status.WAITING_PROMOTION, waiting
                )
            self.notes[key] = (
                f"promoted after a {gates.format_duration(promote)} soak in "
                f"{target_key} (it holds {upstream.entry.image[:19]} since "
                f"{upstream.entry.imported_at})"
            )
        return self.decide(stream, spec, old, upstream.entry.as_image(), upstream.source_ref)

    def promotion_wait(self, target_key: str, upstream: _Resolved, soak: float) -> str | None:
        """Why a follower may not promote the upstream's image yet (None: it may).

        The soak counts from the upstream's ``importedAt`` of its current image: a revert there
        puts back an image the follower already has, or a new bump restarts the count.
        """
        assert upstream.entry is not None
        image = upstream.entry.image[:19]
        if upstream.status.action == status.FAILED:
            return f"{target_key} failed its last import ({upstream.status.reason}); not promoting"
        gate = gates.soak(upstream.entry.imported_at, self.now, soak)
        if gate.open:
            return None
        since = upstream.entry.imported_at or "an unknown time"
        return (
            f"{target_key} holds {image} since {since}; promotes in "
            f"{gates.format_duration(gate.left)} (promote-after {gates.format_duration(soak)})"
        )

    def cycle_member(self, key: str, message: str) -> _Resolved:
        namespace, rest = key.split("/", 1)
        stream_name, tag = rest.rsplit(":", 1)
        stream = self.streams[(namespace, stream_name)]
        spec = stream.tag(tag)
        assert spec is not None
        old = self.old_entry(namespace, stream_name, tag)
        return self.keep(stream, spec, old, status.FAILED, status.FOLLOW_CYCLE, message)

    def resolve_stream_image(
        self, stream: ImageStream, spec: TagSpec, old: LockEntry | None
    ) -> _Resolved:
        namespace, source_name, digest = spec.source.target(stream.namespace, stream.name)
        denial = self.denied(stream, namespace)
        if denial is not None:
            return self.keep(stream, spec, old, status.FAILED, status.ACCESS_DENIED, denial)
        target = self.streams.get((namespace, source_name))
        if old is not None and old.image == digest and old.source == spec.source:
            return self.decide(stream, spec, old, old.as_image(), old.docker_image_reference)
        found = self.find_image(namespace, source_name, digest, target)
        if found is None:
            return self.keep(
                stream,
                spec,
                old,
                status.FAILED,
                status.IMAGE_UNKNOWN,
                f"{namespace}/{source_name}@{digest[:19]}… is not in that stream's lock or history",
            )
        image, source_ref = found
        return self.decide(stream, spec, old, image, source_ref)

    def find_image(
        self, namespace: str, name: str, digest: str, target: ImageStream | None
    ) -> tuple[Image, str] | None:
        """A digest in a stream's current or historical images (old lock and this pass)."""
        entries: list[LockEntry] = []
        if target is not None:
            for spec in target.tags:
                key = tag_key(namespace, name, spec.name)
                # Imports have no dependencies; other kinds count once resolved, so pins
                # and followers never recurse into each other here.
                if _needs_registry(spec):
                    resolved: _Resolved | None = self.resolve(target, spec)
                else:
                    resolved = self.resolved.get(key)
                if resolved is not None and resolved.entry is not None:
                    entries.append(resolved.entry)
        lock = self.locks.get((namespace, name))
        if lock is not None:
            entries.extend(lock.tags[t] for t in sorted(lock.tags))
        for entry in entries:
            if entry.image == digest:
                return entry.as_image(), entry.docker_image_reference
        for entry in entries:
            for item in entry.history:
                if item.image == digest:
                    return Image(digest, created=item.created), item.docker_image_reference
        return None


def plan(
    streams: Sequence[ImageStream],
    locks: Mapping[StreamKey, StreamLock],
    bases: Bases,
    observations: Mapping[tuple[str, str, str], Observation],
    config: Config,
    now: datetime,
    *,
    last_checked: Mapping[str, datetime] | None = None,
    forced: Collection[str] = (),
    prune: bool = True,
    broken: Broken | None = None,
    scope: Collection[str] | None = None,
    listings: Listings | None = None,
) -> Plan:
    """Compute the next locks and the commits that record them.

    ``listings`` are the tags of the repositories policy tags choose in (``listing_requests``).

    ``prune`` removes locks whose stream no longer exists; the shell turns it off when a stream
    file failed to load, so a typo never deletes a lock. ``broken`` (by default that of a
    ``LockSet``) are the streams whose lock failed its checks: each of their tags fails with
    ``InvalidLock``, their lock files are neither rewritten nor deleted, and ``Plan.problems``
    lists where each lock went wrong. With a ``scope`` (``import-image``), only the tags it
    names and their followers change; every other lock stays as it is and none is pruned.
    """
    by_key = {stream.key: stream for stream in streams}
    skipped = _broken(locks, broken)
    state = _Pass(
        streams=by_key,
        locks=locks,
        bases=bases,
        observations=observations,
        config=config,
        now=now,
        last_checked=last_checked or {},
        forced=forced,
        broken=skipped,
        scope=scope,
        listings=listings or {},
    )
    new_locks: dict[StreamKey, StreamLock] = {}
    statuses: list[TagStatus] = []
    changes: list[TagChange] = []
    files: dict[str, bytes | None] = {}
    per_stream: dict[StreamKey, list[TagChange]] = {}
    for key in sorted(by_key):
        stream = by_key[key]
        old_lock = locks.get(key)
        entries: dict[str, LockEntry] = {}
        stream_statuses: list[TagStatus] = []
        for spec in stream.tags:
            result = state.resolve(stream, spec)
            stream_statuses.append(result.status)
            if result.entry is not None:
                entries[spec.name] = result.entry
        outside = scope is not None and not any(
            in_scope(by_key, tag_key(key[0], key[1], spec.name), scope) for spec in stream.tags
        )
        if key in skipped or outside:  # its lock is neither rewritten nor pruned
            statuses.extend(stream_statuses)
            if outside and old_lock is not None:
                new_locks[key] = old_lock
            continue
        new_lock = StreamLock(stream.namespace, stream.name, entries, source_path=stream.path)
        # Compare values, and serialise only what changed: a no-op pass dumps nothing.
        unchanged = old_lock == new_lock and old_lock.stream_file == new_lock.stream_file
        if (entries or old_lock is not None) and not unchanged:
            data, refused = _serialise(new_lock)
            if data is None:
                statuses.extend(_refused(stream_statuses, old_lock, refused))
                if old_lock is not None:
                    new_locks[key] = old_lock
                continue
            stream_changes = _diff(stream.namespace, stream.name, old_lock, new_lock)
            stream_statuses.extend(
                TagStatus(
                    stream.namespace,
                    stream.name,
                    change.tag,
                    status.REMOVED,
                    status.IMPORT_SUCCEEDED,
                    "tag removed from the spec",
                    previous=change.old.image if change.old else None,
                )
                for change in stream_changes
                if change.new is None
            )
            files[new_lock.path] = data
            per_stream[key] = stream_changes
            changes.extend(stream_changes)
        new_locks[key] = new_lock
        statuses.extend(stream_statuses)
    for key in sorted(locks):
        if key in by_key:
            continue
        if not prune or scope is not None:
            new_locks[key] = locks[key]
            continue
        old_lock = locks[key]
        files[old_lock.path] = None
        stream_changes = _diff(key[0], key[1], old_lock, None)
        per_stream[key] = stream_changes
        changes.extend(stream_changes)
        statuses.extend(
            TagStatus(
                key[0],
                key[1],
                change.tag,
                status.REMOVED,
                status.IMPORT_SUCCEEDED,
                "image stream removed: no stream file defines it",
                previous=change.old.image if change.old else None,
            )
            for change in stream_changes
        )
    commits = _commits(per_stream, files, locks, new_locks, config, state.notes)
    problems = tuple(sorted(p for found in skipped.values() for p in found))
    return Plan(new_locks, files, commits, tuple(changes), tuple(statuses), problems)


def _pinned_as_written(name: str, digest: str) -> str:
    """``ImageReference.parse(name).with_digest(digest)`` for a ``name`` that parses: the
    repository as written is the name without its digest and tag."""
    repository = name.split("@", 1)[0]
    colon = repository.rfind(":")
    if colon > repository.rfind("/"):
        repository = repository[:colon]
    return f"{repository}@{digest}"


def _same_pin(
    old: LockEntry, spec: TagSpec, namespace: str, image: Image, reference: str, tag: str | None
) -> bool:
    """Whether ``_Pass.new_entry`` would build an entry equal to ``old``: the same digest and
    every field alike, so a tag that did not move keeps its entry (a no-op pass builds none)."""
    return (
        old.image == image.digest
        and old.waiting is None
        and old.docker_image_reference == reference
        and old.tag == tag
        and old.index_digest == image.index_digest
        and old.source == spec.source
        and old.spec_hash == spec.spec_hash(namespace)
        and old.created == _utf8(image.created)
        and old.platform == _utf8(image.platform)
        and old.labels == {_utf8(k): _utf8(v) for k, v in image.labels.items()}
        and old.platforms
        == (None if image.platforms is None else {_utf8(k): v for k, v in image.platforms.items()})
    )


def _utf8(text: str | None) -> str | None:
    """Registry text as UTF-8 can hold it: a JSON ``\\ud800`` escape decodes to a lone surrogate."""
    return None if text is None else _SURROGATE_RE.sub("\ufffd", text)


def _serialise(lock: StreamLock) -> tuple[bytes | None, str]:
    """The lock's bytes, or None and why it must not be written (the next read would refuse it).

    Registry answers are checked before they reach a lock, so a refusal here means something
    slipped through: the stream then keeps its lock instead of committing a bad one.
    """
    try:
        return dumps(lock), ""
    except ValueError as exc:
        return None, str(exc).split(": ", 1)[-1]


def _refused(
    stream_statuses: Sequence[TagStatus], old_lock: StreamLock | None, why: str
) -> list[TagStatus]:
    """Every tag of a stream whose new lock was refused fails; the old pins stay."""
    message = f"new lock not written, the old one is kept: {why}"
    old = old_lock.tags if old_lock else {}
    return [
        replace(
            item,
            action=status.FAILED,
            reason=status.INVALID_LOCK,
            message=message,
            image=old[item.tag].image if item.tag in old else None,
            previous=None,
        )
        for item in stream_statuses
    ]


def _diff(
    namespace: str, name: str, old: StreamLock | None, new: StreamLock | None
) -> list[TagChange]:
    old_tags = old.tags if old else {}
    new_tags = new.tags if new else {}
    return [
        TagChange(namespace, name, tag, old_tags.get(tag), new_tags.get(tag))
        for tag in sorted(set(old_tags) | set(new_tags))
        if old_tags.get(tag) != new_tags.get(tag)
    ]


# ---------------------------------------------------------------------------------------------
# Commits


def _body_line(change: TagChange, notes: Mapping[str, str]) -> str:
    """One line per tag; text from the registry (``created``, labels, tag names) is made one
    safe line."""
    if change.new is None:
        return f"{change.tag}: removed from the spec"
    entry = change.new
    parts = [f"{change.tag}: {entry.source.kind} {one_line(entry.source.name)}"]
    if entry.tag:
        parts.append(f"tag {one_line(entry.tag)}")
    if change.key in notes:
        parts.append(one_line(notes[change.key], 400))
    if not change.moved and entry.waiting is not None:
        parts.append(
            f"waiting for {entry.waiting.image[:19]} (first seen {entry.waiting.first_seen})"
        )
    if entry.created:
        parts.append(f"created {one_line(entry.created)}")
    version = entry.labels.get("org.opencontainers.image.version")
    revision = entry.labels.get("org.opencontainers.image.revision")
    if version:
        parts.append(f"version {one_line(version)}")
    if revision:
        parts.append(f"revision {one_line(revision)}")
    return ", ".join(parts)


def _blocks(changes: Sequence[TagChange]) -> list[TrailerBlock]:
    return [
        TrailerBlock(
            tag=change.key,
            source=change.new.source.identity(change.namespace, change.stream),
            previous=change.old.image if change.old else None,
            image=change.new.image,
        )
        for change in changes
        if change.new is not None and change.moved
    ]


def _message(subject: str, changes: Sequence[TagChange], notes: Mapping[str, str]) -> str:
    body = "\n".join(_body_line(change, notes) for change in changes)
    return format_message(subject, body, _blocks(changes))


def commit_text(
    changes: Sequence[TagChange], notes: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """Subject and full message of the commit that records ``changes`` (as a pass writes it)."""
    subject = _subject(changes)
    return subject, _message(subject, changes, notes or {})


def _subject(changes: Sequence[TagChange]) -> str:
    streams = sorted({(c.namespace, c.stream) for c in changes})
    waits = [
        (c.tag, c.new.waiting.image)
        for c in changes
        if c.new is not None and not c.moved and c.new.waiting is not None
    ]
    if len(streams) == 1 and waits and len(waits) == len(changes):
        ns, name = streams[0]
        shown = ", ".join(f"{tag} waits for {image[7:14]}" for tag, image in waits[:3])
        more = f" (+{len(waits) - 3} more)" if len(waits) > 3 else ""
        return f"{ns}/{name}: {shown}{more}"
    if len(streams) == 1:
        ns, name = streams[0]
        return bump_subject(
            ns,
            name,
            [
                (c.tag, c.old.image if c.old else None, c.new.image if c.new else None)
                for c in changes
            ],
        )
    return f"streamlock: {len(changes)} tags in {len(streams)} image streams"


def _commits(
    per_stream: Mapping[StreamKey, list[TagChange]],
    files: Mapping[str, bytes | None],
    old_locks: Mapping[StreamKey, StreamLock],
    new_locks: Mapping[StreamKey, StreamLock],
    config: Config,
    notes: Mapping[str, str] | None = None,
) -> tuple[PlannedCommit, ...]:
    notes = notes or {}
    grouping = config.git.grouping
    commits: list[PlannedCommit] = []
    if grouping == "pass" and per_stream:
        changes = [c for key in sorted(per_stream) for c in per_stream[key]]
        subject = _subject(changes) if changes else "streamlock: refresh locks"
        commits.append(
            PlannedCommit(subject, _message(subject, changes, notes), files, tuple(changes))
        )
        return tuple(commits)
    for key in sorted(per_stream):
        changes = per_stream[key]
        path = lock_path(*key)
        if grouping == "tag" and len(changes) > 1:
            # Walk the stream's lock from old to new one tag at a time.
            current = dict(old_locks[key].tags) if key in old_locks else {}
            final = new_locks.get(key)
            for change in changes:
                if change.new is None:
                    current.pop(change.tag, None)
                else:
                    current[change.tag] = change.new
                step = StreamLock(
                    key[0], key[1], dict(current), source_path=final.source_path if final else ""
                )
                subject = _subject([change])
                data = None if final is None and not current else dumps(step)
                commits.append(
                    PlannedCommit(
                        subject, _message(subject, [change], notes), {path: data}, (change,)
                    )
                )
            continue
        if changes:
            subject, message = commit_text(changes, notes)
        else:
            subject = f"{key[0]}/{key[1]}: refresh lock"
            message = _message(subject, changes, notes)
        stream_files = {path: files[path]}
        commits.append(PlannedCommit(subject, message, stream_files, tuple(changes)))
    return tuple(commits)
