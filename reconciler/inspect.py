"""What people read about their streams: ``describe``, ``history``, ``resolve`` and ``rollback``.

Pure: builds views from an ``ImageStream`` (the spec) and its ``StreamLock`` (the status) and
renders them as text, JSON or YAML. Ages are relative to a ``now`` the caller passes in, so output
is reproducible. Names typed on the command line (``ns/stream:tag``, ``stream@sha256:<prefix>``)
are parsed here too, as is the choice of the image a rollback goes back to.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ruamel.yaml import YAML

from reconciler.errors import ArgumentError, InputError
from reconciler.imagestream import (
    DOCKER_IMAGE,
    HOLD_ANNOTATION,
    IMAGE_STREAM_IMAGE,
    IMAGE_STREAM_TAG,
    LOCAL,
    ImageStream,
    TagReference,
    TagSpec,
    name_patterns,
)
from reconciler.lockfile import HistoryItem, LockEntry, StreamLock, lock_path
from reconciler.policy import annotations as policy
from reconciler.policy import gates
from reconciler.reference import ImageReference
from reconciler.trailers import one_line

MIN_PREFIX = 12  # hex digits of a digest prefix, as DESIGN.md §11 asks
SHA256 = "sha256:"
_HEX = frozenset("0123456789abcdef")

# --- names -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectName:
    """``ns/stream``, ``ns/stream:tag`` or ``ns/stream@sha256:<prefix>`` as typed, namespaced."""

    namespace: str
    stream: str
    tag: str | None = None
    digest: str | None = None  # "sha256:" + the hex digits typed (maybe a prefix)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.stream)

    def __str__(self) -> str:
        text = f"{self.namespace}/{self.stream}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_name(text: str, default_namespace: str) -> ObjectName:
    """``[ns/]stream[:tag|@[sha256:]hex]``; the namespace defaults to ``default_namespace``."""
    stream_re, namespace_re, tag_re = name_patterns()
    hint = "write NAMESPACE/STREAM:TAG, STREAM:TAG (with -n) or STREAM@sha256:<digest prefix>"
    rest, digest, tag = text, None, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        hexpart = digest.removeprefix(SHA256)
        if not hexpart or not set(hexpart) <= _HEX or len(hexpart) > 64:
            raise ArgumentError(f"{text!r}: {digest!r} is not a sha256 digest or prefix", hint=hint)
        digest = SHA256 + hexpart
    elif ":" in rest:
        rest, tag = rest.rsplit(":", 1)
        if not tag_re.search(tag):
            raise ArgumentError(f"{text!r}: {tag!r} is not a valid tag name", hint=hint)
    namespace, slash, stream = rest.rpartition("/")
    if not slash:
        namespace = default_namespace
    if not namespace_re.search(namespace):
        raise ArgumentError(f"{text!r}: {namespace!r} is not a valid namespace name", hint=hint)
    if not stream_re.search(stream):
        raise ArgumentError(f"{text!r}: {stream!r} is not a valid image stream name", hint=hint)
    return ObjectName(namespace, stream, tag, digest)


def parse_stream_name(text: str, default_namespace: str) -> ObjectName:
    """A stream (``ns/stream``); a tag is allowed and kept, a digest is refused."""
    name = parse_name(text, default_namespace)
    if name.digest is not None:
        raise ArgumentError(f"{text!r}: expected an image stream, not an image", hint="drop @…")
    return name


def parse_tag_name(text: str, default_namespace: str) -> ObjectName:
    """A stream tag (``ns/stream:tag``)."""
    name = parse_name(text, default_namespace)
    if name.tag is None:
        raise ArgumentError(f"{text!r}: expected a tag", hint="write NAMESPACE/STREAM:TAG")
    return name


def parse_image_name(text: str, default_namespace: str) -> ObjectName:
    """A stream tag or a stream image (``ns/stream@sha256:<prefix>``)."""
    name = parse_name(text, default_namespace)
    if name.tag is None and name.digest is None:
        raise ArgumentError(
            f"{text!r}: expected a tag or an image",
            hint="write NAMESPACE/STREAM:TAG or NAMESPACE/STREAM@sha256:<digest prefix>",
        )
    return name


def followed(source: TagReference, namespace: str, stream: str) -> ObjectName:
    """The tag an ``ImageStreamTag`` source of a tag in ``namespace``/``stream`` names.

    ``from.name`` may leave out the stream (``latest``) and ``from.namespace`` the namespace;
    both are the following tag's own then.
    """
    return ObjectName(*source.target(namespace, stream))


def _prefix_hex(prefix: str, what: str) -> str:
    hexpart = prefix.removeprefix(SHA256)
    if not set(hexpart) <= _HEX:
        raise ArgumentError(
            f"{what}: {prefix!r} is not a sha256 digest or prefix",
            hint="give lower-case hex digits, as 'streamlock history' prints them",
        )
    if len(hexpart) < MIN_PREFIX:
        raise ArgumentError(
            f"{what}: digest prefix {prefix!r} is too short",
            hint=f"give at least {MIN_PREFIX} hex digits",
        )
    return hexpart


def match_digest(prefix: str, candidates: Iterable[str], what: str) -> str:
    """The one candidate digest starting with ``prefix`` (≥ 12 hex digits); else InputError."""
    hexpart = _prefix_hex(prefix, what)
    matches = sorted({d for d in candidates if d.startswith(SHA256 + hexpart)})
    if not matches:
        raise InputError(
            f"{what}: no image {prefix} in the lock",
            hint="'streamlock history' lists the images a tag had",
        )
    if len(matches) > 1:
        shown = ", ".join(d[: len(SHA256) + MIN_PREFIX + 4] + "…" for d in matches)
        raise InputError(
            f"{what}: digest prefix {prefix} is ambiguous ({shown})",
            hint="give more hex digits",
        )
    return matches[0]


def lock_digests(lock: StreamLock | None) -> list[str]:
    """Every digest a stream's lock knows: each tag's image and its history."""
    if lock is None:
        return []
    digests: list[str] = []
    for tag in sorted(lock.tags):
        entry = lock.tags[tag]
        digests.append(entry.image)
        digests.extend(item.image for item in entry.history)
    return digests


# --- views ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TagView:
    """A tag as ``describe`` shows it: its spec (None: only in the lock) and its lock entry."""

    name: str
    spec: TagSpec | None
    entry: LockEntry | None
    # The image the reconciler last committed, kept out because a person moved the tag away
    # from it (the revert rule); None when the lock holds what it committed.
    reverted_from: str | None = None
    # The last failed import this checkout saw ({reason, message, at}); None when it imported.
    last_failure: Mapping[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "inSpec": self.spec is not None}
        data["revertRespected"] = (
            {"waiting": self.reverted_from} if self.reverted_from is not None else None
        )
        data["lastFailure"] = dict(self.last_failure) if self.last_failure is not None else None
        if self.spec is not None:
            spec = self.spec
            data["from"] = spec.source.to_dict()
            data["reference"] = spec.reference
            data["scheduled"] = spec.scheduled
            data["insecure"] = spec.insecure
            data["importMode"] = spec.import_mode
            data["referencePolicy"] = spec.reference_policy
            data["hold"] = spec.hold
            data["annotations"] = dict(sorted(spec.annotations.items()))
        entry = self.entry
        data["image"] = entry.image if entry else None
        data["dockerImageReference"] = entry.docker_image_reference if entry else None
        data["created"] = entry.created if entry else None
        data["importedAt"] = entry.imported_at if entry else None
        if entry is not None:
            data["lockedFrom"] = entry.source.to_dict()
            if entry.tag:
                data["tag"] = entry.tag
            if entry.waiting is not None:
                data["waiting"] = {
                    "image": entry.waiting.image,
                    "firstSeen": entry.waiting.first_seen,
                    "tag": entry.waiting.tag,
                }
            if entry.labels:
                data["labels"] = dict(sorted(entry.labels.items()))
            if entry.platforms is not None:
                data["platforms"] = dict(sorted(entry.platforms.items()))
        data["history"] = [
            revision_data(revision, item) for revision, item in enumerate(revisions(entry))
        ]
        return data


@dataclass(frozen=True, slots=True)
class StreamView:
    """One stream for ``describe``: where it is written, its lookup policy and its tags."""

    namespace: str
    name: str
    path: str
    line: int
    lookup_local: bool
    annotations: Mapping[str, str]
    tags: tuple[TagView, ...]
    locked: bool

    @property
    def lock_path(self) -> str:
        return lock_path(self.namespace, self.name)

    @property
    def unique_images(self) -> int:
        return len({item.image for tag in self.tags for item in revisions(tag.entry)})

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "file": self.path,
            "line": self.line,
            "lock": self.lock_path if self.locked else None,
            "lookupPolicy": {"local": self.lookup_local},
            "annotations": dict(sorted(self.annotations.items())),
            "tags": [tag.to_dict() for tag in self.tags],
        }


def revisions(entry: LockEntry | None) -> tuple[HistoryItem, ...]:
    """A lock entry's images, newest first: revision 0 is the current one, 1 the one before, …

    Revision 0 is always the entry's own image, also when a hand edit of the lock changed it
    without adding it to the history (or the history is empty); the history follows.
    """
    if entry is None:
        return ()
    current = HistoryItem(
        entry.image, entry.docker_image_reference, entry.created, entry.imported_at
    )
    history = entry.history
    older = history[1:] if history and history[0].image == entry.image else history
    return (current, *older)


def revision_data(revision: int, item: HistoryItem) -> dict[str, Any]:
    """One revision as ``-o json|yaml`` prints it (absent times are null, not left out)."""
    return {
        "revision": revision,
        "image": item.image,
        "dockerImageReference": item.docker_image_reference,
        "created": item.created,
        "importedAt": item.imported_at,
    }


def describe(
    stream: ImageStream,
    lock: StreamLock | None,
    tag: str | None = None,
    bases: Mapping[tuple[str, str], str] | None = None,
    failures: Mapping[str, Mapping[str, str]] | None = None,
) -> StreamView:
    """The view of one stream (or of one of its tags); spec tags first, in spec order.

    ``bases`` (the revert rule's B per tag key and source, from the trailers) marks the tags a
    person moved away from what the reconciler committed.
    """
    entries = lock.tags if lock is not None else {}

    def reverted(spec: TagSpec) -> str | None:
        entry = entries.get(spec.name)
        key = f"{stream.namespace}/{stream.name}:{spec.name}"
        base = (bases or {}).get((key, spec.source.identity(stream.namespace, stream.name)))
        if entry is None or base is None or entry.image == base or spec.hold is not None:
            return None
        return base if entry.source == spec.source else None

    def failure(name: str) -> Mapping[str, str] | None:
        return (failures or {}).get(f"{stream.namespace}/{stream.name}:{name}")

    views = [
        TagView(spec.name, spec, entries.get(spec.name), reverted(spec), failure(spec.name))
        for spec in stream.tags
    ]
    views += [
        TagView(name, None, entries[name]) for name in sorted(entries) if not stream.tag(name)
    ]
    if tag is not None:
        views = [view for view in views if view.name == tag]
        if not views:
            raise InputError(
                f"{stream.namespace}/{stream.name}:{tag} is not a tag",
                hint=f"'streamlock describe {stream.namespace}/{stream.name}' lists the tags",
            )
    return StreamView(
        namespace=stream.namespace,
        name=stream.name,
        path=stream.path,
        line=stream.line,
        lookup_local=stream.lookup_local,
        annotations=dict(stream.annotations),
        tags=tuple(views),
        locked=lock is not None,
    )


def tag_entry(stream: ImageStream, lock: StreamLock | None, tag: str) -> LockEntry:
    """A tag's lock entry, or an InputError saying why there is none."""
    where = f"{stream.namespace}/{stream.name}:{tag}"
    entry = lock.tags.get(tag) if lock is not None else None
    if entry is not None:
        return entry
    if stream.tag(tag) is None:
        raise InputError(
            f"{where} is not a tag",
            hint=f"'streamlock describe {stream.namespace}/{stream.name}' lists the tags",
        )
    raise InputError(f"{where} has no image yet", hint="run streamlock reconcile first")


@dataclass(frozen=True, slots=True)
class ResolvedImage:
    """What ``resolve`` answers: the image and the pull spec to deploy."""

    name: str
    image: str
    docker_image_reference: str
    tag: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tag": self.tag,
            "image": self.image,
            "dockerImageReference": self.docker_image_reference,
        }


def resolve(stream: ImageStream, lock: StreamLock | None, name: ObjectName) -> ResolvedImage:
    """``stream:tag`` → its current image; ``stream@sha256:<prefix>`` → that image's pull spec."""
    if name.tag is not None:
        entry = tag_entry(stream, lock, name.tag)
        return ResolvedImage(str(name), entry.image, entry.docker_image_reference, name.tag)
    assert name.digest is not None
    digest = match_digest(name.digest, lock_digests(lock), str(name))
    assert lock is not None  # a match needs a lock
    for tag in sorted(lock.tags):
        if lock.tags[tag].image == digest:
            return ResolvedImage(str(name), digest, lock.tags[tag].docker_image_reference, tag)
    for tag in sorted(lock.tags):
        for item in lock.tags[tag].history:
            if item.image == digest:
                return ResolvedImage(str(name), digest, item.docker_image_reference)
    raise AssertionError("unreachable: the digest came from this lock")  # pragma: no cover


# --- rendering -----------------------------------------------------------------------------------


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp from a lock, or None when absent or unreadable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def human_duration(seconds: float) -> str:
    """The words ``oc describe`` uses (docker/go-units HumanDuration)."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = whole // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{whole // 3600 // 24 // 365} years"


def age(text: str | None, now: datetime) -> str:
    """``3 days ago`` (lower-case first word, as ``oc`` prints it); ``-`` when unknown."""
    moment = parse_time(text)
    if moment is None:
        return "-"
    delta = (now - moment).total_seconds()
    if delta < 0:
        words = human_duration(-delta)
        return f"{words[0].lower()}{words[1:]} from now"
    words = human_duration(delta)
    return f"{words[0].lower()}{words[1:]} ago"


def duration_text(seconds: float) -> str:
    """Seconds as a Go-style duration: ``15m``, ``1h30m``, ``90s`` → ``1m30s``."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


def short_digest(digest: str | None, digits: int = MIN_PREFIX) -> str:
    """``sha256:`` and the first ``digits`` hex digits, usable as a prefix on the command line."""
    if not digest:
        return "-"
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:digits]}"


def source_line(spec: TagSpec, import_interval: float) -> str:
    """How a tag gets its image, in ``oc describe`` words."""
    source = spec.source
    if source.kind == DOCKER_IMAGE:
        if spec.reference:
            return f"reference to registry {source.name}"
        if spec.scheduled:
            every = duration_text(import_interval)
            return f"updates automatically from registry {source.name} (every {every})"
        return f"tagged from {source.name}"
    where = f"{source.namespace}/" if source.namespace else ""
    if source.kind == IMAGE_STREAM_TAG:
        return f"tracks {where}{source.name} (ImageStreamTag)"
    return f"pinned to {where}{source.name} (ImageStreamImage)"


def _image_lines(item: HistoryItem, now: datetime, current: bool) -> list[str]:
    mark = "*" if current else " "
    when = [f"imported {age(item.imported_at, now)}"]
    if item.imported_at:
        when[0] += f" ({item.imported_at})"
    if item.created:
        when.append(f"created {one_line(item.created)}")
    return [f"  {mark} {item.docker_image_reference}", "      " + ", ".join(when)]


def _gate_lines(
    tag: TagView, others: Mapping[str, TagView], now: datetime, stream: str = ""
) -> list[str]:
    """What a tag waits for: a newer image's minimum age, or an upstream's soak."""
    spec, entry = tag.spec, tag.entry
    if spec is None or entry is None:
        return []
    lines = []
    if entry.tag:
        lines.append(f"  chosen tag {one_line(entry.tag)}")
    kind = spec.source.kind
    found = policy.rules(spec.annotations, kind, repository=False)
    waiting = entry.waiting
    if waiting is not None and found.min_age is not None:
        gate = gates.min_age(waiting, waiting.image, waiting.tag, now, found.min_age)
        shown = f"{one_line(waiting.tag)} " if waiting.tag else ""
        left = "lands on the next pass" if gate.open else f"{gates.format_duration(gate.left)} left"
        lines.append(
            f"  waiting: {shown}{short_digest(waiting.image)} first seen "
            f"{one_line(waiting.first_seen)}, {left} "
            f"(min-age {gates.format_duration(found.min_age)})"
        )
    if found.promote_after is not None and kind == IMAGE_STREAM_TAG and not spec.source.namespace:
        stream_name, _, upstream_tag = spec.source.name.rpartition(":")
        same = stream_name in ("", stream)
        upstream = others.get(upstream_tag) if same else None
        held = upstream.entry if upstream is not None else None
        if held is not None and held.image != entry.image:
            gate = gates.soak(held.imported_at, now, found.promote_after)
            left = (
                "promotes on the next pass"
                if gate.open
                else (f"promotes in {gates.format_duration(gate.left)}")
            )
            lines.append(
                f"  promotion: {upstream_tag} holds {short_digest(held.image)} since "
                f"{held.imported_at or 'an unknown time'}, {left} "
                f"(promote-after {gates.format_duration(found.promote_after)})"
            )
    return lines


def _tag_lines(
    tag: TagView,
    now: datetime,
    import_interval: float,
    others: Mapping[str, TagView] | None = None,
    stream: str = "",
) -> list[str]:
    lines = [tag.name]
    spec = tag.spec
    if spec is None:
        lines.append("  not in the spec: the next reconcile removes it from the lock")
    else:
        lines.append(f"  {source_line(spec, import_interval)}")
        if spec.hold is not None:
            lines.append(f"  held: {spec.hold} (never moved by the reconciler)")
        if tag.last_failure is not None:
            failed = tag.last_failure
            lines.append(
                f"  last import failed {failed.get('at', '')}: {failed.get('reason', '')}: "
                f"{one_line(failed.get('message', ''))} (the pin is kept)"
            )
        if tag.reverted_from is not None:
            lines.append(
                f"  revert respected: a person moved it away from {tag.reverted_from[:19]}, "
                "which the reconciler last committed; it stays until the source serves "
                "another image"
            )
        if spec.reference_policy == LOCAL:
            lines.append("  prefer registry pullthrough when referencing this tag")
        if spec.insecure:
            lines.append("  will use insecure HTTPS or HTTP connections")
        if spec.import_mode != "Legacy":
            lines.append(f"  import mode {spec.import_mode}")
        for key in sorted(spec.annotations):
            lines.append(f"  annotation {key}={spec.annotations[key]}")
    entry = tag.entry
    lines.append("")
    if entry is None:
        lines.append("  no image yet: run streamlock reconcile")
        return lines
    lines[-1:] = [*_gate_lines(tag, others or {}, now, stream), ""]
    if tag.reverted_from is not None:
        lines.append(
            f"  ↷ {tag.reverted_from} (reverted away from; 'streamlock rollback --to +1' goes "
            "forward to it)"
        )
    for revision, item in enumerate(revisions(entry)):
        lines += _image_lines(item, now, current=revision == 0)
        if revision == 0:
            version = entry.labels.get("org.opencontainers.image.version")
            revision = entry.labels.get("org.opencontainers.image.revision")
            # Labels are the image publisher's text: one line, no terminal control sequences.
            facts = [f"version {one_line(version)}"] if version else []
            facts += [f"revision {one_line(revision)}"] if revision else []
            if facts:
                lines.append("      " + ", ".join(facts))
            for platform in sorted(entry.platforms or {}):
                lines.append(f"      {platform}: {(entry.platforms or {})[platform]}")
    return lines


def render_describe(view: StreamView, now: datetime, import_interval: float = 900.0) -> str:
    """``oc describe is``-style text."""
    rows = [
        ("Name:", view.name),
        ("Namespace:", view.namespace),
        ("File:", f"{view.path}:{view.line}" if view.line else view.path),
        ("Lock:", view.lock_path if view.locked else "<none> (run streamlock reconcile)"),
        ("Image Lookup:", f"local={'true' if view.lookup_local else 'false'}"),
    ]
    if view.annotations:
        rows += [("Annotations:", f"{k}={view.annotations[k]}") for k in sorted(view.annotations)]
    rows += [("Unique Images:", str(view.unique_images)), ("Tags:", str(len(view.tags)))]
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"{label.ljust(width)}{value}" for label, value in rows]
    for tag in view.tags:
        lines.append("")
        others = {t.name: t for t in view.tags}
        lines += _tag_lines(tag, now, import_interval, others, view.name)
    return "\n".join(line.rstrip() for line in lines) + "\n"


HISTORY_HEADERS = ("REVISION", "IMAGE", "CREATED", "IMPORTED", "AGE")


def history_rows(items: Sequence[HistoryItem], now: datetime) -> list[list[str]]:
    """Rows for ``history``: the REVISION is what ``rollback --to`` takes."""
    return [
        [
            str(revision),
            short_digest(item.image),
            one_line(item.created) if item.created else "-",
            one_line(item.imported_at) if item.imported_at else "-",
            age(item.imported_at, now),
        ]
        for revision, item in enumerate(items)
    ]


def render_data(data: Any, fmt: str) -> str:
    """``json`` or ``yaml`` text of plain data, ending with a newline."""
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    yaml.allow_unicode = True
    yaml.width = 4096
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


# --- rollback ------------------------------------------------------------------------------------

ROLLBACK_LOCK = "lock"  # revert-style: the lock goes back, the revert rule keeps it
ROLLBACK_SPEC = "spec"  # the spec pins the image, until a person changes it


def rollback_mode(spec: TagSpec, pin: bool) -> str:
    """Pins (``ImageStreamImage``, ``reference: true``) are rolled back in the spec; others in
    the lock, unless ``pin`` asks for a permanent spec pin."""
    if pin or spec.reference or spec.source.kind == IMAGE_STREAM_IMAGE:
        return ROLLBACK_SPEC
    return ROLLBACK_LOCK


def rollback_revision(entry: LockEntry, to: str | None, what: str) -> int:
    """The history index to go back to: ``None`` → 1, ``N`` → N, a digest (prefix) → its index.

    A number shorter than a digest prefix is a revision; anything else is a digest prefix.
    """
    history = revisions(entry)
    last = len(history) - 1
    if to is None or (to.isdecimal() and len(to) < MIN_PREFIX):
        revision = 1 if to is None else int(to)
        if revision == 0:
            raise InputError(f"{what}: revision 0 is the current image", hint="use --to 1 or more")
        if revision > last:
            held = "only its current image" if last <= 0 else f"revisions 0-{last}"
            raise InputError(
                f"{what}: no revision {revision} to roll back to (the history holds {held})",
                hint=f"'streamlock history {what}' lists them",
            )
        if history[revision].image == entry.image:
            raise InputError(f"{what}: revision {revision} is the current image already")
        return revision
    digest = match_digest(to, [item.image for item in history], what)
    if digest == entry.image:
        raise InputError(f"{what}: {short_digest(digest)} is the current image already")
    return next(i for i, item in enumerate(history) if item.image == digest)


def rolled_back(entry: LockEntry, revision: int, recovered: LockEntry | None = None) -> LockEntry:
    """The entry as ``git revert`` of the last ``revision`` bumps leaves it.

    The image, pull spec and times come from that revision; history drops the newer ones.
    Platform details of that image (labels, platforms, index digest) come from ``recovered``,
    the entry as a reconciler commit once wrote it, when it is for this image and this spec.
    """
    history = revisions(entry)
    item = history[revision]
    same = (
        recovered is not None
        and recovered.image == item.image
        and recovered.source == entry.source
        and recovered.spec_hash == entry.spec_hash
    )
    return replace(
        entry,
        image=item.image,
        docker_image_reference=item.docker_image_reference,
        created=item.created,
        imported_at=item.imported_at,
        platform=recovered.platform if same and recovered else entry.platform,
        labels=dict(recovered.labels) if same and recovered else {},
        platforms=(
            None
            if not same or recovered is None or recovered.platforms is None
            else dict(recovered.platforms)
        ),
        index_digest=recovered.index_digest if same and recovered else None,
        history=history[revision:],
    )


def rollback_outlook(stream: ImageStream, spec: TagSpec, goal: str, base: str | None) -> str:
    """What the reconciler does next with a tag whose lock was rolled back to ``goal``.

    The revert rule (DESIGN.md §4) with L = ``goal``, B = ``base`` (the image of the
    reconciler's newest commit for this tag and its ``from``; None when Git has none) and U =
    what the source gives at the next import: U == L or (L != B and U == B) keeps the tag,
    anything else moves it to U. Held tags never move; unscheduled registry tags are looked at
    again only on a spec change or ``import-image``, which takes U whatever it is.
    """
    if spec.hold is not None:
        return (
            f"The tag is held ({spec.hold}), so the reconciler leaves it there until the "
            f"{HOLD_ANNOTATION} annotation is removed."
        )
    if spec.source.kind == DOCKER_IMAGE:
        source, gives = spec.source.name, "serves"
        if not spec.scheduled:
            return (
                f"The tag is not scheduled, so the reconciler does not look at {source} again "
                "until the tag's spec changes or 'streamlock import-image' imports it, which "
                f"takes whatever {source} serves then."
            )
    else:
        source, gives = str(followed(spec.source, stream.namespace, stream.name)), "points at"
    if base is None:
        return (
            "No reconciler commit on this branch records an image for this tag and source, so "
            "the revert rule cannot tell the rollback from an outdated lock: the next reconcile "
            f"takes whatever {source} {gives} then."
        )
    if base == goal:
        return (
            f"{short_digest(goal)} is the image the reconciler last committed, so it stays only "
            f"while {source} {gives} it; once that moves, the next reconcile moves the tag too."
        )
    return (
        f"The reconciler keeps it while {source} still {gives} {short_digest(base)}, the image "
        "it last committed; when that moves to another image, the tag moves with it."
    )


def pin_source(stream: ImageStream, spec: TagSpec, digest: str) -> TagReference:
    """The ``from`` that pins a tag to an image from its own history.

    A ``reference: true`` tag keeps its repository with the digest; any other tag becomes
    ``ImageStreamImage <own stream>@<digest>``, which the planner finds in the tag's own history.
    """
    if spec.reference:
        pull_spec = ImageReference.parse(spec.source.name).with_digest(digest)
        return TagReference(DOCKER_IMAGE, pull_spec)
    return TagReference(IMAGE_STREAM_IMAGE, f"{stream.name}@{digest}")


def follows(
    streams: Mapping[tuple[str, str], ImageStream], start: ObjectName, target: ObjectName
) -> bool:
    """True when ``start`` is ``target`` or follows it through ``ImageStreamTag`` links."""
    seen: set[tuple[str, str, str | None]] = set()
    current: ObjectName | None = start
    while current is not None and (current.namespace, current.stream, current.tag) not in seen:
        if current.key == target.key and current.tag == target.tag:
            return True
        seen.add((current.namespace, current.stream, current.tag))
        stream = streams.get(current.key)
        spec = stream.tag(current.tag) if stream is not None and current.tag else None
        if spec is None or spec.source.kind != IMAGE_STREAM_TAG:
            return False
        current = followed(spec.source, current.namespace, current.stream)
    return False
