"""ImageStreams as people write them: the ``spec`` of ``image.openshift.io/v1`` objects.

The model is pure data. Loading (YAML/JSON files under ``streams/``, schema checks with
file:line:col) lives below the model in this module.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import re
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _encode
from pathlib import Path, PurePosixPath
from typing import Any

from reconciler import schema
from reconciler.config import CONFIG_FILE, Config, config_path, load_config
from reconciler.errors import InputError, Problem, ValidationError
from reconciler.image import LEGACY
from reconciler.policy import annotations as policy
from reconciler.reference import DIGEST_RE, ImageReference
from reconciler.schema import JsonPath

DOCKER_IMAGE = "DockerImage"
IMAGE_STREAM_TAG = "ImageStreamTag"
IMAGE_STREAM_IMAGE = "ImageStreamImage"
FROM_KINDS = (DOCKER_IMAGE, IMAGE_STREAM_TAG, IMAGE_STREAM_IMAGE)

HOLD_ANNOTATION = "streamlock.dev/hold"
REIMPORT_ANNOTATION = "streamlock.dev/reimport"

# Annotations that change which tag a policy picks (reconciler/policy/annotations.py).
CHOICE_ANNOTATIONS = frozenset(
    {
        "streamlock.dev/policy",
        "streamlock.dev/tag-filter",
        "streamlock.dev/tag-exclude",
        "streamlock.dev/candidates",
        "streamlock.dev/require-platforms",
    }
)

SOURCE = "Source"
LOCAL = "Local"

# A stream's lock is the file locks/<namespace>/<name>.lock.yaml, and most file systems allow a
# file name of at most 255 bytes (NAME_MAX): longer stream names could never be locked.
NAME_MAX = 255
LOCK_SUFFIX = ".lock.yaml"
MAX_STREAM_NAME = NAME_MAX - len(LOCK_SUFFIX)
# OpenShift refuses an ImageStream whose "namespace/name" is longer than a registry repository
# name may be (distribution's reference.NameTotalLengthMax).
MAX_REPOSITORY_NAME = 255


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

    def identity(self, namespace: str, stream: str) -> str:
        """The ``Streamlock-From`` trailer value: the pull spec, or ``Kind:ns/stream:tag``.

        ``namespace``/``stream`` are the tag's own, filling in what a same-stream or
        same-namespace reference leaves out, so every trailer names its source in full.
        """
        if self.kind == DOCKER_IMAGE:
            return self.name
        ns, name, ref = self.target(namespace, stream)
        separator = "@" if self.kind == IMAGE_STREAM_IMAGE else ":"
        return f"{self.kind}:{ns}/{name}{separator}{ref}"

    def target(self, namespace: str, stream: str) -> tuple[str, str, str]:
        """``(namespace, stream, tag-or-digest)`` an ImageStreamTag/Image source points at.

        ``from.name`` may leave out the stream (``latest``) and ``from.namespace`` the
        namespace; both are then those of the tag that has this source.
        """
        if self.kind == IMAGE_STREAM_IMAGE:
            name, _, ref = self.name.partition("@")
        else:
            name, _, ref = self.name.rpartition(":")
        return (self.namespace or namespace, name or stream, ref)


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
    # (namespace, spec hash) of the last spec_hash asked: a pass asks for each tag's several
    # times, always with its stream's namespace.
    _hashed: tuple[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def hold(self) -> str | None:
        """The hold reason, or None when the tag may move."""
        value = self.annotations.get(HOLD_ANNOTATION)
        return None if value is None else (value or "held")

    def spec_hash(self, namespace: str) -> str:
        """Hash of the fields whose change forces a re-import (DESIGN.md §11)."""
        hashed = self._hashed
        if hashed is not None and hashed[0] == namespace:
            return hashed[1]
        annotations = self.annotations
        chosen = (
            tuple(sorted((k, v) for k, v in annotations.items() if k in CHOICE_ANNOTATIONS))
            if annotations
            else ()
        )
        value = _spec_hash(
            self.source.kind,
            self.source.name,
            self.source.namespace or namespace,
            self.reference,
            self.import_mode,
            annotations.get(REIMPORT_ANNOTATION),
            chosen,
        )
        object.__setattr__(self, "_hashed", (namespace, value))
        return value


@functools.lru_cache(maxsize=1 << 18)
def _spec_hash(
    kind: str,
    name: str,
    namespace: str,
    reference: bool,
    import_mode: str,
    reimport: str | None,
    chosen: tuple[tuple[str, str], ...],
) -> str:
    """``TagSpec.spec_hash``, computed once per distinct spec (a pass asks for each tag's
    several times, and hashing JSON is most of planning a pass with nothing due)."""
    data: dict[str, Any] = {
        "kind": kind,
        "name": name,
        "namespace": namespace,
        "reference": reference,
        "importMode": import_mode,
        "reimport": reimport,
    }
    # A changed tag policy chooses again at once; tags without one keep their old hashes.
    if chosen:
        data["choice"] = dict(chosen)
        return hashlib.sha256(spec_json(data).encode()).hexdigest()[:16]
    # The common shape, written as json.dumps writes it (sorted keys, no spaces, ASCII
    # escapes) at a fraction of the cost; tests hold the two to the same bytes.
    text = _encode(reimport) if reimport is not None else "null"
    blob = (
        f'{{"importMode":{_encode(import_mode)},"kind":{_encode(kind)},'
        f'"name":{_encode(name)},"namespace":{_encode(namespace)},'
        f'"reference":{"true" if reference else "false"},"reimport":{text}}}'
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def spec_json(data: Mapping[str, Any]) -> str:
    """The canonical JSON a spec hash is taken of."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


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
    # Tags by name, made on the first look-up: followers look their targets up by name.
    _by_name: dict[str, TagSpec] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def tag(self, name: str) -> TagSpec | None:
        by_name = self._by_name
        if by_name is None:
            by_name = {}
            for tag in self.tags:
                by_name.setdefault(tag.name, tag)  # the first of a name, as a scan finds it
            object.__setattr__(self, "_by_name", by_name)
        return by_name.get(name)


# --- loading stream files ----------------------------------------------------------------------
# Below the model: reading ``streams/**`` with per-file (and per-stream) isolation. A problem in
# one stream skips that stream only; a file that cannot be parsed skips that file only.

STREAMS_DIR = "streams"
STREAM_SUFFIXES = (".yaml", ".yml", ".json")
LIST_KINDS = ("List", "ImageStreamList")


def folder_namespace(path: str) -> str | None:
    """The namespace a stream file's folder gives objects without ``metadata.namespace``: the
    first folder under ``streams/`` (``streams/shop/x/app.yaml`` → ``shop``), else None."""
    parts = PurePosixPath(path).parts
    return parts[1] if len(parts) > 2 and parts[0] == STREAMS_DIR else None


@dataclass(frozen=True, slots=True)
class StreamSet:
    """What ``streams/`` declares: the valid streams, and every problem found on the way."""

    streams: tuple[ImageStream, ...] = ()
    problems: tuple[Problem, ...] = ()
    files: tuple[str, ...] = ()  # repository-relative paths read, sorted


def name_patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """Stream, namespace and tag name patterns, taken from the schema so they never drift."""
    return (
        schema.definition_pattern(schema.IMAGESTREAM_SCHEMA, "streamName"),
        schema.definition_pattern(schema.IMAGESTREAM_SCHEMA, "namespaceName"),
        schema.definition_pattern(schema.IMAGESTREAM_SCHEMA, "tagName"),
    )


def _source_problem(
    doc: schema.Document, where: JsonPath, source: TagReference, reference: bool
) -> Problem | None:
    """Checks of ``from.name`` the schema cannot express, by kind."""
    stream_re, _, tag_re = name_patterns()
    name = source.name
    at = (*where, "from", "name")
    if source.kind == DOCKER_IMAGE:
        try:
            pull_spec = ImageReference.parse(name)
        except InputError as exc:
            return doc.problem(at, exc.message)
        if reference and pull_spec.digest is None:
            return doc.problem(
                at, f"reference: true needs a digest pull spec (name@sha256:...), got {name!r}"
            )
    elif source.kind == IMAGE_STREAM_TAG:
        stream, _, tag = name.rpartition(":")
        if not tag_re.search(tag) or (stream and not stream_re.search(stream)) or name[0] == ":":
            return doc.problem(
                at, f"{name!r} is not a valid ImageStreamTag name (use <tag> or <stream>:<tag>)"
            )
    else:
        stream, _, digest = name.partition("@")
        if not stream_re.search(stream) or not DIGEST_RE.fullmatch(digest):
            return doc.problem(
                at,
                f"{name!r} is not a valid ImageStreamImage name "
                "(use <stream>@sha256:<64 hex digits>)",
            )
    return None


def _annotation_problems(
    doc: schema.Document, where: JsonPath, item: Mapping[str, object], source: TagReference
) -> list[Problem]:
    """The ``streamlock.dev/*`` annotations of a tag, each checked and located at its value."""
    found = item.get("annotations")
    if not isinstance(found, dict) or not any(k.startswith(policy.PREFIX) for k in found):
        return []
    repository = False
    if source.kind == DOCKER_IMAGE:
        ref = ImageReference.parse(source.name)
        repository = ref.tag is None and ref.digest is None
    _, problems = policy.read(
        found, source.kind, repository=repository, reference=bool(item.get("reference"))
    )
    return [
        doc.problem((*where, "annotations", key) if key else where, message)
        for key, message in problems
    ]


def _duplicate_tags(doc: schema.Document, base: JsonPath) -> list[Problem]:
    """Tags named twice; checked even when the schema rejects other parts of the stream."""
    problems: list[Problem] = []
    first: dict[str, int] = {}
    obj = doc.get(base)
    spec = obj.get("spec") if isinstance(obj, dict) else None
    tags = spec.get("tags") if isinstance(spec, dict) else None
    for index, item in enumerate(tags if isinstance(tags, list) else ()):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        where = (*base, "spec", "tags", index)
        if name in first:
            problems.append(
                doc.problem(
                    (*where, "name"),
                    f"duplicate tag {name!r} (first defined on line {first[name]})",
                )
            )
        else:
            first[name] = doc.position(where)[0]
    return problems


def _string_map(value: Mapping[str, str | None] | None) -> dict[str, str]:
    """Labels or annotations as the API stores them: null is an empty map, a null value ''."""
    return {key: item or "" for key, item in (value or {}).items()}


def _tags(doc: schema.Document, base: JsonPath) -> tuple[list[TagSpec], list[Problem]]:
    tags: list[TagSpec] = []
    problems: list[Problem] = _duplicate_tags(doc, base)
    seen: set[str] = set()
    for index, item in enumerate(((doc.get(base).get("spec") or {}).get("tags")) or ()):
        where = (*base, "spec", "tags", index)
        line = doc.position(where)[0]
        name = item["name"]
        if name in seen:
            continue
        seen.add(name)
        origin = item.get("from")
        if origin is None:  # OpenShift's tag without a source (pushed to): nothing to lock
            continue
        source = TagReference(origin["kind"], origin["name"], origin.get("namespace") or None)
        problem = _source_problem(doc, where, source, bool(item.get("reference")))
        if problem is not None:
            problems.append(problem)
            continue
        rejected = _annotation_problems(doc, where, item, source)
        if rejected:
            problems += rejected
            continue
        policy = item.get("importPolicy") or {}
        tags.append(
            TagSpec(
                name=name,
                source=source,
                reference=bool(item.get("reference", False)),
                scheduled=bool(policy.get("scheduled", False)),
                insecure=bool(policy.get("insecure", False)),
                import_mode=policy.get("importMode") or LEGACY,
                reference_policy=(item.get("referencePolicy") or {}).get("type") or SOURCE,
                annotations=_string_map(item.get("annotations")),
                line=line,
            )
        )
    return tags, problems


def _sound_tag_problems(
    doc: schema.Document, base: JsonPath, failed: list[JsonPath]
) -> list[Problem]:
    """``from.name`` checks of the tags the schema found nothing wrong with, in a stream it
    rejected for something else: one run shows every problem of a file."""
    problems: list[Problem] = []
    spec = doc.get(base).get("spec")
    tags = spec.get("tags") if isinstance(spec, dict) else None
    for index, item in enumerate(tags if isinstance(tags, list) else ()):
        where = (*base, "spec", "tags", index)
        origin = item.get("from") if isinstance(item, dict) else None
        if any(path[: len(where)] == where for path in failed) or not isinstance(origin, dict):
            continue
        source = TagReference(origin["kind"], origin["name"], origin.get("namespace") or None)
        problem = _source_problem(doc, where, source, bool(item.get("reference")))
        if problem is not None:
            problems.append(problem)
    return problems


# The images each stream's lock knows (current and history), for validate's offline checks.
LockImages = Mapping[tuple[str, str], frozenset[str]]


def _close(word: str, candidates: Iterator[str] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _reference_problems(
    found: list[tuple[ImageStream, schema.Document, JsonPath]], images: LockImages | None
) -> Iterator[Problem]:
    """ImageStreamTag and ImageStreamImage references checked against the other stream files
    (and, for images, the locks) offline: what ``plan`` would refuse, located."""
    streams = {stream.key: stream for stream, _, _ in found}
    for stream, doc, base in found:
        items = (doc.get(base).get("spec") or {}).get("tags") or ()
        for index, item in enumerate(items):
            spec = stream.tag(item["name"])
            where = (*base, "spec", "tags", index)
            if spec is None or spec.line != doc.position(where)[0]:
                continue
            if spec.source.kind == DOCKER_IMAGE:
                continue
            message = _reference_problem(stream, spec, streams, images)
            if message is not None:
                yield doc.problem((*where, "from", "name"), message)


def _reference_problem(
    stream: ImageStream,
    spec: TagSpec,
    streams: Mapping[tuple[str, str], ImageStream],
    images: LockImages | None,
) -> str | None:
    namespace, name, ref = spec.source.target(stream.namespace, stream.name)
    target = streams.get((namespace, name))
    separator = ":" if spec.source.kind == IMAGE_STREAM_TAG else "@"
    if target is None:
        others = [key[1] for key in streams if key[0] == namespace]
        close = difflib.get_close_matches(name, others, n=1)
        hint = f"; did you mean '{close[0]}{separator}{ref}'?" if close else ""
        return f"image stream {namespace}/{name} does not exist (no stream file defines it){hint}"
    if spec.source.kind == IMAGE_STREAM_TAG:
        if target.tag(ref) is None:
            written = f"{name}:" if ":" in spec.source.name else ""
            close = difflib.get_close_matches(ref, [t.name for t in target.tags], n=1)
            hint = f"; did you mean '{written}{close[0]}'?" if close else ""
            return f"{namespace}/{name}:{ref} is not a tag{hint}"
        return _cycle(stream, spec, streams)
    known = images.get((namespace, name)) if images is not None else None
    if known is not None and ref not in known:
        return (
            f"{ref[:19]}… is not in the lock or history of {namespace}/{name}; "
            f"'streamlock history {namespace}/{name}:TAG' lists its images"
        )
    return None


def _cycle(
    stream: ImageStream, spec: TagSpec, streams: Mapping[tuple[str, str], ImageStream]
) -> str | None:
    """The follow cycle this tag is part of, as plan would name it, else None."""
    start = (stream.namespace, stream.name, spec.name)
    chain = [start]
    current: tuple[str, str, str] = start
    for _ in range(len(streams) * 64 + 1):
        owner = streams.get(current[:2])
        tag = owner.tag(current[2]) if owner is not None else None
        if tag is None or tag.source.kind != IMAGE_STREAM_TAG:
            return None
        current = tag.source.target(current[0], current[1])
        if current == start:
            names = [f"{n}/{s}:{t}" for n, s, t in [*chain, start]]
            return "follow cycle: " + " → ".join(names)
        if current in chain:
            return None  # a cycle further on, reported at its own members
        chain.append(current)
    return None


def _stream(
    doc: schema.Document, base: JsonPath, folder: str | None, config: Config
) -> tuple[ImageStream | None, list[Problem]]:
    """One schema-valid ImageStream object → the model, or the problems that reject it."""
    obj = doc.get(base)
    meta = obj["metadata"]
    namespace = meta.get("namespace") or None  # "" is the API's "not given"
    problems: list[Problem] = []
    if namespace is None and folder is not None:
        namespace = folder
        if not name_patterns()[1].search(folder):
            problems.append(
                doc.problem(
                    (*base, "metadata"),
                    f"folder {folder!r} is not a valid namespace name; "
                    "rename it or set metadata.namespace",
                )
            )
    namespace = namespace or config.default_namespace
    problems += _name_length_problems(doc, base, namespace, meta["name"])
    tags, tag_problems = _tags(doc, base)
    problems += tag_problems
    if problems:
        return None, problems
    stream = ImageStream(
        namespace=namespace,
        name=meta["name"],
        tags=tuple(tags),
        lookup_local=bool(((obj.get("spec") or {}).get("lookupPolicy") or {}).get("local", False)),
        annotations=_string_map(meta.get("annotations")),
        path=doc.path,
        line=doc.position(base)[0],
    )
    return stream, []


def _name_length_problems(
    doc: schema.Document, base: JsonPath, namespace: str, name: str
) -> list[Problem]:
    """Lengths the schema's DNS-1123 limit (253) lets through but a lock file or OpenShift not."""
    where = (*base, "metadata", "name")
    size = len(name.encode())
    if size > MAX_STREAM_NAME:
        return [
            doc.problem(
                where,
                f"a stream name of {size} characters is too long: its lock file "
                f"<name>{LOCK_SUFFIX} would need a file name of {size + len(LOCK_SUFFIX)} bytes, "
                f"over the {NAME_MAX} bytes file systems allow (NAME_MAX); "
                f"use at most {MAX_STREAM_NAME} characters",
            )
        ]
    repository = f"{namespace}/{name}"
    if len(repository) > MAX_REPOSITORY_NAME:
        return [
            doc.problem(
                where,
                f"{namespace}/<name> is {len(repository)} characters long; OpenShift allows at "
                f"most {MAX_REPOSITORY_NAME} for 'namespace/name' (the image repository it "
                f"becomes), so this name may have at most "
                f"{MAX_REPOSITORY_NAME - len(namespace) - 1} characters",
            )
        ]
    return []


def _objects(doc: schema.Document) -> list[JsonPath]:
    """Paths of the ImageStream objects in a schema-valid document."""
    if doc.data.get("kind") in LIST_KINDS:
        return [("items", index) for index in range(len(doc.data.get("items") or ()))]
    return [()]


def _parse_file(
    data: bytes, path: str, config: Config
) -> tuple[list[tuple[ImageStream, schema.Document, JsonPath]], list[Problem]]:
    """The valid streams of one file (with where each is), and the problems of the rest.

    A one-document file that passes the schema is read quickly (the compiled loader and
    positions read from its lines, :func:`schema.quick_document`); any other file, and any
    question the quick read cannot answer for sure, goes through the careful path.
    """
    quick = schema.quick_document(data, path, schema.IMAGESTREAM_SCHEMA)
    if quick is not None:
        documents = [quick]
    else:
        try:
            documents = schema.parse_documents(data, path)
        except ValidationError as exc:
            return [], list(exc.problems)
    folder = folder_namespace(path)
    found: list[tuple[ImageStream, schema.Document, JsonPath]] = []
    problems: list[Problem] = []
    for doc in documents:
        errors = schema.check(doc, schema.IMAGESTREAM_SCHEMA)
        objects = _objects(doc) if isinstance(doc.data, dict) else []
        outside = [p for where, p in errors if not any(where[: len(o)] == o for o in objects)]
        if outside or not objects:
            problems += [p for _, p in errors]
            continue
        for base in objects:
            mine = [p for where, p in errors if where[: len(base)] == base]
            if mine:
                failed = [where for where, _ in errors if where[: len(base)] == base]
                problems += (
                    mine + _duplicate_tags(doc, base) + _sound_tag_problems(doc, base, failed)
                )
                continue
            stream, rejected = _stream(doc, base, folder, config)
            problems += rejected
            if stream is not None:
                found.append((stream, doc, base))
    return found, problems


def _policy_problems(
    stream: ImageStream, doc: schema.Document, base: JsonPath, config: Config
) -> Iterator[Problem]:
    """Rules of ``streamlock.yaml`` a stream breaks.

    ``validate`` reports them for review; a pass still loads the stream, and the registry client
    and the planner refuse the affected tags one by one.
    """
    for index, tag in enumerate(stream.tags):
        where = (*base, "spec", "tags", index)
        source = tag.source
        if source.kind == DOCKER_IMAGE:
            ref = ImageReference.parse(source.name)
            if not config.registry_allowed(ref.registry):
                yield doc.problem(
                    (*where, "from", "name"),
                    f"registry {ref.registry} is not in allowedRegistries of streamlock.yaml",
                )
            registry = config.registry(ref.registry)
            if tag.insecure and not ref.is_loopback and not (registry and registry.insecure):
                yield doc.problem(
                    (*where, "importPolicy", "insecure"),
                    f"registry {ref.registry} is not marked insecure in streamlock.yaml",
                )
        elif source.namespace and not config.may_pull(source.namespace, stream.namespace):
            yield doc.problem(
                (*where, "from", "namespace"),
                f"namespace {stream.namespace} may not use images of {source.namespace} "
                f"(add it to access.{source.namespace}.pullers in streamlock.yaml)",
            )


# --- a memo of parsed files ---------------------------------------------------------------------
# A file's parse is a function of its path, its bytes and the default namespace, so a memo keyed
# by their hash can never be stale; the shell keeps one in ``.git/streamlock/`` because parsing
# thousands of stream files is most of a pass with nothing to do. Records are plain JSON data.

Memo = MutableMapping[str, Any]


def memo_key(path: str, data: bytes, config: Config) -> str:
    digest = hashlib.sha256()
    for part in (path.encode(), config.default_namespace.encode(), data):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _tag_record(tag: TagSpec, namespace: str) -> list[Any]:
    source = tag.source
    return [
        tag.name,
        [source.kind, source.name, source.namespace],
        tag.reference,
        tag.scheduled,
        tag.insecure,
        tag.import_mode,
        tag.reference_policy,
        dict(tag.annotations),
        tag.line,
        tag.spec_hash(namespace),  # a pass asks for it of every tag; hashing is most of that
    ]


def _file_record(
    found: list[tuple[ImageStream, schema.Document, JsonPath]], problems: list[Problem]
) -> dict[str, Any]:
    streams = [
        [
            [s.namespace, s.name, [_tag_record(t, s.namespace) for t in s.tags], s.lookup_local],
            [dict(s.annotations), s.line],
            list(doc.position((*base, "metadata", "name"))),
        ]
        for s, doc, base in found
    ]
    return {"streams": streams, "problems": [[p.line, p.column, p.message] for p in problems]}


def _from_record(
    path: str, record: Mapping[str, Any]
) -> tuple[list[tuple[ImageStream, schema.Document, JsonPath]], list[Problem]]:
    found: list[tuple[ImageStream, schema.Document, JsonPath]] = []
    for (namespace, name, tags, lookup), (notes, line), where in record["streams"]:
        specs = []
        for n, source, ref, sched, unsafe, mode, kind, marks, at, hashed in tags:
            spec = TagSpec(n, TagReference(*source), ref, sched, unsafe, mode, kind, marks, at)
            object.__setattr__(spec, "_hashed", (namespace, hashed))
            specs.append(spec)
        stream = ImageStream(
            namespace=namespace,
            name=name,
            tags=tuple(specs),
            lookup_local=lookup,
            annotations=notes,
            path=path,
            line=line,
        )
        # Where ``metadata.name`` was written: all a pass asks of the document afterwards.
        doc = schema.Document(path, None, {("metadata", "name"): tuple(where)}, {})  # type: ignore[arg-type]
        found.append((stream, doc, ()))
    problems = [Problem(path, line, column, text) for line, column, text in record["problems"]]
    return found, problems


def _parse_remembered(
    data: bytes, path: str, config: Config, memo: Memo | None
) -> tuple[list[tuple[ImageStream, schema.Document, JsonPath]], list[Problem]]:
    """``_parse_file``, through the memo when there is one."""
    if memo is None:
        return _parse_file(data, path, config)
    key = memo_key(path, data, config)
    record = memo.get(key)
    if record is not None:
        try:
            return _from_record(path, record)
        except (TypeError, ValueError, KeyError):
            pass  # a record of another shape: parse again
    found, problems = _parse_file(data, path, config)
    memo[key] = _file_record(found, problems)
    return found, problems


def parse_streams(
    files: Mapping[str, bytes],
    config: Config,
    *,
    policy: bool = False,
    images: LockImages | None = None,
    memo: Memo | None = None,
) -> StreamSet:
    """Streams of several files (pure: path → bytes in); a stream defined twice keeps the first.

    With ``policy`` (``validate``), breaches of the config's rules (registry allowlist, insecure
    registries, cross-namespace grants) and references to stream tags and images that do not
    exist (``images``: what each lock knows) are reported too, without dropping the streams.
    ``memo`` (not with ``policy``, which needs every document) holds earlier parses by content.
    """
    streams: dict[tuple[str, str], ImageStream] = {}
    problems: list[Problem] = []
    kept: list[tuple[ImageStream, schema.Document, JsonPath]] = []
    for path in sorted(files):
        found, file_problems = _parse_remembered(
            files[path], path, config, None if policy else memo
        )
        problems += file_problems
        for stream, doc, base in found:
            earlier = streams.setdefault(stream.key, stream)
            if earlier is not stream:
                problems.append(
                    doc.problem(
                        (*base, "metadata", "name"),
                        f"stream {stream.namespace}/{stream.name} is already defined at "
                        f"{earlier.path}:{earlier.line}",
                    )
                )
            elif policy:
                problems += _policy_problems(stream, doc, base, config)
                kept.append((stream, doc, base))
    if policy:
        problems += _reference_problems(kept, images)
    return StreamSet(
        streams=tuple(streams[key] for key in sorted(streams)),
        problems=tuple(sorted(problems)),
        files=tuple(sorted(files)),
    )


def load_streams(
    root: Path,
    config: Config,
    *,
    policy: bool = False,
    images: LockImages | None = None,
    memo: Memo | None = None,
) -> StreamSet:
    """Read and check every ``streams/**/*.yaml|yml|json`` file under ``root``."""
    paths, problems = schema.repo_files(root, STREAMS_DIR, STREAM_SUFFIXES)
    files: dict[str, bytes] = {}
    for path in paths:
        try:
            files[path] = schema.read_repo_file(root, path)
        except ValidationError as exc:
            problems += exc.problems
    result = parse_streams(files, config, policy=policy, images=images, memo=memo)
    return StreamSet(
        streams=result.streams,
        problems=tuple(sorted([*problems, *result.problems])),
        files=tuple(paths),
    )


# --- validating a repository -------------------------------------------------------------------


def _access_problems(root: Path, config_file: Path | None, namespaces: set[str]) -> list[Problem]:
    """``pullers`` naming no namespace (checked against the streams, so here and not in config)."""
    from reconciler.access.rules import unknown_puller_problems

    try:
        if config_file is None:
            if not config_path(root).is_file():
                return []
            data, shown = schema.read_repo_file(root, CONFIG_FILE), CONFIG_FILE
        else:
            data, shown = config_file.read_bytes(), schema.repo_relative(root, config_file)
    except (OSError, InputError):
        return []  # the config's own loading reports it
    return unknown_puller_problems(data, shown, namespaces)


def validate_repo(root: Path, config_file: Path | None = None) -> list[Problem]:
    """Every located problem of ``streamlock.yaml``, ``streams/**`` and ``locks/**``, sorted.

    Includes the config's rules (allowed registries, insecure registries, cross-namespace
    grants). Offline: nothing here talks to a registry. A broken config is reported and the
    streams are still checked against the defaults, so one run shows everything.
    """
    problems: list[Problem] = []
    try:
        config = load_config(root, config_file)
    except ValidationError as exc:
        problems += exc.problems
        config = Config()
    # Locks are checked by the module that reads them for a pass, which imports this one.
    from reconciler import lockfile

    images: dict[tuple[str, str], frozenset[str]] = {}
    paths, walk_problems = schema.repo_files(root, lockfile.LOCKS_DIR, (lockfile.LOCK_SUFFIX,))
    problems += walk_problems
    for path in paths:
        try:
            data = schema.read_repo_file(root, path, max_bytes=lockfile.MAX_LOCK_BYTES)
            lock = lockfile.loads(data, path)
        except ValidationError as exc:
            problems += exc.problems
            continue
        images[lock.key] = frozenset(
            digest
            for entry in lock.tags.values()
            for digest in (entry.image, *(item.image for item in entry.history))
        )
    streamset = load_streams(root, config, policy=True, images=images)
    problems += streamset.problems
    problems += _access_problems(root, config_file, {s.namespace for s in streamset.streams})
    return sorted(problems)
