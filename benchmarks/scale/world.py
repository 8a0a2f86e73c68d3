"""The synthetic world: streams, the images their tags serve, and a year of reconciler history.

Everything is a pure function of the ``Scale`` and a seed, so the 30-day repository is the first
30 days of the year-old one and the registry can be set to either's state.

Names: stream ``s`` is ``team<s // 100>/app<s>``; its tags ``v0…`` import
``<host>/scale/r<i % repos>:t<i>`` (``i = s * half + j``) and its tags ``f0…`` follow the ``v``
tags of its partner stream ``s ^ 1`` (same namespace). A bump of ``app<s>:v<j>`` therefore also
moves ``app<s^1>:f<j>``: each day's pass commits once per stream it changed, as the reconciler does.

Lock bytes: ``lockfile.dumps`` costs milliseconds per lock, far too slow for the ~10⁵ lock
versions of a year, so the generator assembles locks from fragments whose every scalar is
rendered by the same YAML dumper (memoised per value), and ``verify_locks`` checks the result
byte for byte against ``lockfile.dumps`` (all locks in ``--small``, a sample otherwise).
Commit messages come from ``planner.commit_text``, the function a pass uses.
"""

from __future__ import annotations

import functools
import io
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from ruamel.yaml import YAML

from reconciler import lockfile, planner
from reconciler.imagestream import DOCKER_IMAGE, IMAGE_STREAM_TAG, TagReference, TagSpec
from reconciler.lockfile import HistoryItem, LockEntry, StreamLock
from tests.fixtures.images import build_image, sha256

AUTHOR = ("streamlock", "streamlock@example.com")
PERSON = ("Bench Person", "person@example.com")
STREAMS_PER_NAMESPACE = 100
PLATFORM = "linux/amd64"
START = datetime(2025, 12, 1, 6, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Scale:
    streams: int = 5000
    tags_per_stream: int = 20  # half import (v*), half follow the partner stream (f*)
    days: int = 365
    bump_fraction: float = 0.01  # of all tags, per daily pass (followers included)
    bump_streams: int = 100  # streams whose v tags a day's pass bumps
    images: int = 512  # distinct images in the registry
    repos: int = 100  # registry repositories the references spread over
    history_limit: int = 10
    seed: int = 13

    @property
    def half(self) -> int:
        return self.tags_per_stream // 2

    @property
    def tags(self) -> int:
        return self.streams * self.tags_per_stream

    @property
    def tags_per_bump(self) -> int:
        """v tags bumped in each chosen stream (their followers move with them)."""
        wanted = round(self.tags * self.bump_fraction / 2 / self.bump_streams)
        return max(1, min(self.half, wanted))


SMALL = Scale(streams=100, days=30, bump_streams=4, images=64, repos=10)


def namespace(s: int) -> str:
    return f"team{s // STREAMS_PER_NAMESPACE:02d}"


def stream_name(s: int) -> str:
    return f"app{s:04d}"


def stream_path(s: int) -> str:
    return f"streams/{namespace(s)}/{stream_name(s)}.yaml"


def partner(s: int) -> int:
    return s ^ 1


@dataclass(frozen=True, slots=True)
class PoolImage:
    """One distinct image: its manifest, config and layer bytes, and what a lock records."""

    manifest: bytes
    config: bytes
    layer: bytes
    created: str

    @property
    def digest(self) -> str:
        return sha256(self.manifest)


def image_pool(count: int) -> list[PoolImage]:
    images = []
    for i in range(count):
        created = planner.rfc3339(START - timedelta(days=400) + timedelta(hours=i))
        manifest, config, layer = build_image(
            platform=PLATFORM, created=created, salt=f"scale-{i}", share_layer=True
        )
        images.append(PoolImage(manifest, config, layer.blob, created))
    return images


@dataclass
class World:
    """The state of every tag at some day, and the text of files and commits at that state."""

    scale: Scale
    host: str
    pool: list[PoolImage]
    versions: list[list[int]] = field(default_factory=list)  # [stream][j]
    entries: list[dict[str, LockEntry]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.versions:
            self.versions = [[0] * self.scale.half for _ in range(self.scale.streams)]

    # --- names and images ----------------------------------------------------------------
    def ref_index(self, s: int, j: int) -> int:
        return s * self.scale.half + j

    def repository(self, s: int, j: int) -> str:
        return f"scale/r{self.ref_index(s, j) % self.scale.repos:03d}"

    def reference_tag(self, s: int, j: int) -> str:
        return f"t{self.ref_index(s, j):06d}"

    def pull_spec(self, s: int, j: int) -> str:
        return f"{self.host}/{self.repository(s, j)}:{self.reference_tag(s, j)}"

    def image(self, s: int, j: int, version: int) -> PoolImage:
        return self.pool[(self.ref_index(s, j) * 7 + version) % len(self.pool)]

    def current(self, s: int, j: int) -> PoolImage:
        return self.image(s, j, self.versions[s][j])

    # --- files ---------------------------------------------------------------------------
    def stream_yaml(self, s: int, scheduled: bool = False) -> bytes:
        lines = [
            "apiVersion: image.openshift.io/v1",
            "kind: ImageStream",
            f"metadata:\n  name: {stream_name(s)}\n  namespace: {namespace(s)}",
            "spec:\n  tags:",
        ]
        for j in range(self.scale.half):
            lines.append(
                f"  - name: v{j}\n    from:\n      kind: DockerImage\n"
                f"      name: {self.pull_spec(s, j)}"
            )
            if scheduled:
                lines.append("    importPolicy:\n      scheduled: true")
        p = partner(s)
        for j in range(self.scale.half):
            lines.append(
                f"  - name: f{j}\n    from:\n      kind: ImageStreamTag\n"
                f"      name: {stream_name(p)}:v{j}"
            )
        return ("\n".join(lines) + "\n").encode()

    def config_yaml(self) -> bytes:
        return (
            "apiVersion: streamlock/v1\nkind: Config\n"
            f"historyLimit: {self.scale.history_limit}\n"
            f"registries:\n  - host: {self.host}\n    concurrency: 8\n"
            f"git:\n  author: {AUTHOR[0]} <{AUTHOR[1]}>\n  grouping: stream\n"
        ).encode()

    # --- lock entries ----------------------------------------------------------------------
    def _import_entry(self, s: int, j: int, old: LockEntry | None, when: str) -> LockEntry:
        ns = namespace(s)
        source = TagReference(DOCKER_IMAGE, self.pull_spec(s, j))
        image = self.current(s, j)
        reference = f"{self.host}/{self.repository(s, j)}@{image.digest}"
        return _entry(source, ns, image, reference, old, when, self.scale.history_limit)

    def _follow_entry(self, s: int, j: int, old: LockEntry | None, when: str) -> LockEntry:
        p = partner(s)
        source = TagReference(IMAGE_STREAM_TAG, f"{stream_name(p)}:v{j}")
        image = self.current(p, j)
        reference = f"{self.host}/{self.repository(p, j)}@{image.digest}"
        return _entry(source, namespace(s), image, reference, old, when, self.scale.history_limit)

    def lock(self, s: int) -> StreamLock:
        return StreamLock(namespace(s), stream_name(s), self.entries[s], source_path=stream_path(s))

    # --- history ---------------------------------------------------------------------------
    def initial_import(self, when: datetime) -> list[tuple[int, list[planner.TagChange]]]:
        """The first pass: every tag imported, one commit per stream."""
        stamp = planner.rfc3339(when)
        self.entries = [{} for _ in range(self.scale.streams)]
        for s in range(self.scale.streams):
            for j in range(self.scale.half):
                self.entries[s][f"v{j}"] = self._import_entry(s, j, None, stamp)
        for s in range(self.scale.streams):
            for j in range(self.scale.half):
                self.entries[s][f"f{j}"] = self._follow_entry(s, j, None, stamp)
        return [(s, self._changes(s, {}, self.entries[s])) for s in range(self.scale.streams)]

    def bumps(self, day: int) -> list[tuple[int, int]]:
        """``(stream, j)`` of the v tags the registry moved before day ``day``'s pass."""
        rng = random.Random(self.scale.seed * 100_003 + day)
        chosen = rng.sample(range(self.scale.streams), self.scale.bump_streams)
        return [
            (s, j)
            for s in sorted(chosen)
            for j in sorted(rng.sample(range(self.scale.half), self.scale.tags_per_bump))
        ]

    def bump_pass(self, day: int, when: datetime) -> list[tuple[int, list[planner.TagChange]]]:
        """Day ``day``'s pass: the chosen tags and their followers move; a commit per stream."""
        stamp = planner.rfc3339(when)
        touched: dict[int, dict[str, LockEntry]] = {}
        for s, j in self.bumps(day):
            self.versions[s][j] += 1
            mine = touched.setdefault(s, dict(self.entries[s]))
            mine[f"v{j}"] = self._import_entry(s, j, self.entries[s][f"v{j}"], stamp)
            p = partner(s)
            theirs = touched.setdefault(p, dict(self.entries[p]))
            theirs[f"f{j}"] = self._follow_entry(p, j, self.entries[p][f"f{j}"], stamp)
        out = []
        for s in sorted(touched, key=lambda s: (namespace(s), stream_name(s))):
            out.append((s, self._changes(s, self.entries[s], touched[s])))
            self.entries[s] = touched[s]
        return out

    def _changes(
        self, s: int, old: dict[str, LockEntry], new: dict[str, LockEntry]
    ) -> list[planner.TagChange]:
        ns, name = namespace(s), stream_name(s)
        return [
            planner.TagChange(ns, name, tag, old.get(tag), new.get(tag))
            for tag in sorted(set(old) | set(new))
            if old.get(tag) != new.get(tag)
        ]


def _entry(
    source: TagReference,
    ns: str,
    image: PoolImage,
    reference: str,
    old: LockEntry | None,
    when: str,
    limit: int,
) -> LockEntry:
    """What ``planner`` makes of an observed image: history grows only when the digest moves."""
    spec_hash = TagSpec(name="-", source=source).spec_hash(ns)
    base = LockEntry(
        source=source,
        image=image.digest,
        docker_image_reference=reference,
        spec_hash=spec_hash,
        created=image.created,
        platform=PLATFORM,
    )
    if old is not None and old.image == image.digest:
        return replace(base, imported_at=old.imported_at, history=old.history)
    item = HistoryItem(image.digest, reference, image.created, when)
    history = (item, *(old.history if old else ()))[:limit]
    return replace(base, imported_at=when, history=history)


# --- lock bytes ----------------------------------------------------------------------------


@functools.cache
def _dumper() -> YAML:
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    yaml.width = 4096
    yaml.allow_unicode = True
    return yaml


@functools.lru_cache(maxsize=500_000)
def _scalar(value: str) -> str:
    """How the lock dumper writes ``value`` after ``key: `` (quoted when YAML would read it
    as something else)."""
    out = io.StringIO()
    _dumper().dump({"k": value}, out)
    return out.getvalue()[3:-1]


def _item_text(item: HistoryItem) -> str:
    lines = [
        f"    - image: {_scalar(item.image)}",
        f"      dockerImageReference: {_scalar(item.docker_image_reference)}",
    ]
    if item.created:
        lines.append(f"      created: {_scalar(item.created)}")
    if item.imported_at:
        lines.append(f"      importedAt: {_scalar(item.imported_at)}")
    return "\n".join(lines) + "\n"


def entry_text(tag: str, entry: LockEntry) -> str:
    """One tag of a lock, for the fields this world uses (checked by ``verify_locks``)."""
    lines = [
        f"  {_scalar(tag)}:",
        "    from:",
        f"      kind: {_scalar(entry.source.kind)}",
        f"      name: {_scalar(entry.source.name)}",
        f"    image: {_scalar(entry.image)}",
        f"    dockerImageReference: {_scalar(entry.docker_image_reference)}",
    ]
    if entry.created:
        lines.append(f"    created: {_scalar(entry.created)}")
    if entry.platform:
        lines.append(f"    platform: {_scalar(entry.platform)}")
    if entry.imported_at:
        lines.append(f"    importedAt: {_scalar(entry.imported_at)}")
    lines.append(f"    specHash: {_scalar(entry.spec_hash)}")
    text = "\n".join(lines) + "\n"
    if entry.history:
        text += "    history:\n" + "".join(_item_text(item) for item in entry.history)
    return text


class LockWriter:
    """Lock bytes from per-tag fragments, each rendered once per entry value."""

    def __init__(self) -> None:
        self._fragments: dict[tuple[str, str, str], tuple[LockEntry, str]] = {}

    def render(self, lock: StreamLock) -> bytes:
        parts = [
            f"# Generated by streamlock. Do not edit: change {lock.stream_file} instead.\n"
            f"apiVersion: {lockfile.API_VERSION}\nkind: {lockfile.KIND}\n"
            f"metadata:\n  name: {lock.name}\n  namespace: {lock.namespace}\ntags:\n"
        ]
        for tag in sorted(lock.tags):
            entry = lock.tags[tag]
            key = (lock.namespace, lock.name, tag)
            cached = self._fragments.get(key)
            if cached is None or cached[0] is not entry:
                cached = (entry, entry_text(tag, entry))
                self._fragments[key] = cached
            parts.append(cached[1])
        return "".join(parts).encode()


def verify_locks(world: World, writer: LockWriter, streams: Sequence[int]) -> None:
    """Refuse to go on unless the generated bytes are exactly what ``lockfile.dumps`` writes."""
    for s in streams:
        lock = world.lock(s)
        mine, theirs = writer.render(lock), lockfile.dumps(lock)
        if mine != theirs:
            raise AssertionError(f"generated lock of stream {s} differs from lockfile.dumps")


# --- the fast-import stream ------------------------------------------------------------------


def _ident(who: tuple[str, str], when: datetime) -> bytes:
    return f"{who[0]} <{who[1]}> {int(when.timestamp())} +0000".encode()


def _commit(
    ref: str, who: tuple[str, str], when: datetime, message: str, files: dict[str, bytes]
) -> Iterator[bytes]:
    text = message.encode()
    yield f"commit {ref}\n".encode()
    yield b"author " + _ident(who, when) + b"\n"
    yield b"committer " + _ident(who, when) + b"\n"
    yield f"data {len(text)}\n".encode() + text + b"\n"
    for path, data in files.items():
        yield f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n"


@dataclass
class HistoryStats:
    commits: int = 0
    tag_bumps: int = 0  # tag changes with a new digest, followers included
    marks: dict[int, int] = field(default_factory=dict)  # day -> commits so far


def history(world: World, writer: LockWriter, stats: HistoryStats, ref: str) -> Iterator[bytes]:
    """The whole repository as one fast-import stream: the configuration a person commits, the
    first pass (a commit per stream), then one pass a day. ``refs/tags/day<N>`` marks the end
    of each day (``N`` = 0 for the first pass)."""
    scale = world.scale
    files = {"streamlock.yaml": world.config_yaml()}
    files.update({stream_path(s): world.stream_yaml(s) for s in range(scale.streams)})
    yield from _commit(ref, PERSON, START - timedelta(hours=1), "Initial configuration\n", files)
    stats.commits += 1
    for day in range(scale.days + 1):
        when = START + timedelta(days=day)
        passed = world.initial_import(when) if day == 0 else world.bump_pass(day, when)
        for offset, (s, changes) in enumerate(passed):
            _, message = planner.commit_text(changes)
            lock = world.lock(s)
            stamp = when + timedelta(seconds=offset // 50)
            yield from _commit(ref, AUTHOR, stamp, message, {lock.path: writer.render(lock)})
            stats.commits += 1
            if day:
                stats.tag_bumps += sum(1 for c in changes if c.moved)
        stats.marks[day] = stats.commits
        yield f"reset refs/tags/day{day}\nfrom {ref}\n\n".encode()
