"""What the web pages show, as plain data: built once from the stream files, the locks, the
reconciler's commits and (in the daemon) the ``/status`` document.

Pure: no I/O. The report (``report.py``) and the daemon (``daemon/http.py``) gather the inputs
their own way and hand them to :func:`build`; the pages (``pages.py``) only render the result.
Per-tag facts come from the same places the CLI reads them: ``inspect.describe`` (hold, a
respected revert, the last failure), ``inspect.revisions`` (history, newest first),
``planner.is_due`` (what the next pass imports) and the trailers of the reconciler's own
commits (the commit that made each change). Forge links are built here, and only here, from
operator-given templates whose scheme is checked once; every value put into them is quoted.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from reconciler import inspect, planner, status, trailers
from reconciler.config import Config
from reconciler.errors import ArgumentError
from reconciler.imagestream import (
    DOCKER_IMAGE,
    IMAGE_STREAM_IMAGE,
    IMAGE_STREAM_TAG,
    ImageStream,
    TagSpec,
)
from reconciler.lockfile import StreamLock

READY = "ready"
HELD = "held"
REVERTED = "reverted"
FAILED = "failed"
PENDING = "pending"  # never imported yet: the next pass imports it
DUE = "due"  # a flag, not a state: the next pass looks this tag up
STATES = (READY, HELD, REVERTED, FAILED, DUE)
STATE_TITLES = {
    READY: "Ready",
    HELD: "Held",
    REVERTED: "Revert respected",
    FAILED: "Failed",
    DUE: "Due",
    PENDING: "Not imported yet",
}
PAGE_SIZE = 100  # streams per overview page
NOT_LOOKED_AT = "NotLookedAt"  # the daemon's /status has no word on the tag

# --- forge links --------------------------------------------------------------------------------

COMMIT_FIELDS = frozenset({"sha"})
EDIT_FIELDS = frozenset({"path", "line"})


def _checked_template(template: str | None, fields: frozenset[str], option: str) -> str | None:
    """``template`` when it is an http(s) URL whose only placeholders are ``fields``."""
    if template is None or template == "":
        return None
    hint = f"give an http(s) URL with {', '.join('{' + f + '}' for f in sorted(fields))}"
    parts = urlsplit(template)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ArgumentError(
            f"{option} {template!r}: only http and https URLs are allowed", hint=hint
        )
    if any(c.isspace() or not c.isprintable() for c in template):
        raise ArgumentError(f"{option} {template!r}: contains blanks or control characters")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ArgumentError(f"{option} {template!r}: {exc}", hint=hint) from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in fields or spec or conversion:
            raise ArgumentError(f"{option} {template!r}: unknown placeholder {{{name}}}", hint=hint)
    if not any(name for _, name, _, _ in parsed):
        raise ArgumentError(f"{option} {template!r}: no placeholder", hint=hint)
    return template


@dataclass(frozen=True, slots=True)
class Links:
    """Forge URL templates: ``commit`` with ``{sha}``, ``edit`` with ``{path}`` and ``{line}``.

    Both are the operator's (flags of ``report`` and ``run``), never the repository's, and only
    http(s) templates are accepted: a URL attribute on a page is never anything else.
    """

    commit: str | None = None
    edit: str | None = None

    @classmethod
    def parse(cls, commit: str | None, edit: str | None) -> Links:
        return cls(
            _checked_template(commit, COMMIT_FIELDS, "--commit-url"),
            _checked_template(edit, EDIT_FIELDS, "--edit-url"),
        )

    def commit_url(self, sha: str | None) -> str | None:
        if self.commit is None or not sha:
            return None
        return self.commit.format(sha=quote(sha, safe=""))

    def edit_url(self, path: str, line: int) -> str | None:
        if self.edit is None or not path:
            return None
        return self.edit.format(path=quote(path, safe="/"), line=str(int(line)))


# --- the view data ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Revision:
    """One image a tag pointed at, newest first, with the reconciler commit that set it."""

    image: str
    pull_spec: str
    created: str | None
    imported_at: str | None
    commit: str | None
    commit_url: str | None
    current: bool


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    message: str
    at: str | None = None


@dataclass(frozen=True, slots=True)
class Edge:
    """A promotion path: ``target`` follows (or pins an image of) ``source``."""

    source: str  # tag key of the upstream tag
    target: str  # tag key of the follower
    kind: str  # "alias" (same stream), "follows" (another stream), "pins"

    @property
    def namespaces(self) -> tuple[str, str]:
        return (self.source.split("/", 1)[0], self.target.split("/", 1)[0])

    @property
    def cross_namespace(self) -> bool:
        first, second = self.namespaces
        return first != second


@dataclass(frozen=True, slots=True)
class TagRow:
    """One tag as its stream page shows it."""

    namespace: str
    stream: str
    name: str
    source_kind: str
    source: str  # in ``oc describe`` words
    source_name: str  # the pull spec or ``ns/stream:tag`` it comes from
    upstream: str | None  # tag key of a followed or pinned stream tag
    image: str | None
    pull_spec: str | None
    platforms: tuple[tuple[str, str], ...]
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]
    state: str
    due: bool
    reason: str
    message: str
    waiting_image: str | None
    hold: str | None
    failure: Failure | None
    last_import: str | None
    last_checked: str | None
    last_error: str | None
    next_due: str
    history: tuple[Revision, ...]
    path: str
    line: int
    edit_url: str | None
    followers: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return planner.tag_key(self.namespace, self.stream, self.name)


@dataclass(frozen=True, slots=True)
class StreamRow:
    namespace: str
    name: str
    path: str
    line: int
    edit_url: str | None
    lock_path: str | None
    tags: tuple[TagRow, ...]
    counts: Mapping[str, int]

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class Site:
    """Everything every page needs; built once per pass (daemon) or per report."""

    streams: tuple[StreamRow, ...]
    edges: tuple[Edge, ...]
    problems: tuple[str, ...]
    generated: str
    revision: str | None = None
    mode: str = "report"  # or "daemon"
    reconciling: bool = False
    last_pass: Mapping[str, Any] | None = None
    _index: Mapping[tuple[str, str], StreamRow] = field(default_factory=dict, repr=False)

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(sorted({s.namespace for s in self.streams}))

    @property
    def totals(self) -> dict[str, int]:
        return _sum_counts(s.counts for s in self.streams)

    @property
    def tag_count(self) -> int:
        return sum(len(s.tags) for s in self.streams)

    def stream(self, namespace: str, name: str) -> StreamRow | None:
        return self._index.get((namespace, name))

    def filtered(self, namespace: str | None = None, state: str | None = None) -> list[StreamRow]:
        """Streams of ``namespace`` with at least one tag in ``state`` (either may be None)."""
        return [
            s
            for s in self.streams
            if (namespace is None or s.namespace == namespace)
            and (state is None or s.counts.get(state, 0) > 0)
        ]

    def edges_of(self, namespace: str | None) -> list[Edge]:
        """The promotion paths with at least one end in ``namespace`` (all for None)."""
        return [e for e in self.edges if namespace is None or namespace in e.namespaces]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list: its items, its number (from 1) and how many there are."""

    items: tuple[Any, ...]
    number: int
    count: int
    total: int


def paginate(items: Sequence[Any], number: int, size: int = PAGE_SIZE) -> Page:
    """Page ``number`` (clamped to the pages there are) of ``items``."""
    count = max(1, -(-len(items) // size))
    number = min(max(number, 1), count)
    start = (number - 1) * size
    return Page(tuple(items[start : start + size]), number, count, len(items))


def _sum_counts(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total = dict.fromkeys(STATES, 0)
    for item in counts:
        for key, value in item.items():
            total[key] = total.get(key, 0) + value
    return total


# --- building -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Inputs:
    """What a site is built from. ``commits`` are the reconciler's own (trusted) commits as
    ``(sha, message)``, newest first; ``status`` is the daemon's ``/status`` document (None
    offline); ``failures`` the last failed imports a checkout recorded (offline only)."""

    streams: Sequence[ImageStream]
    locks: Mapping[tuple[str, str], StreamLock]
    config: Config
    now: datetime
    commits: Sequence[tuple[str, str]] = ()
    bases: Mapping[tuple[str, str], str] | None = None  # the revert rule's B; None: from commits
    failures: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    status: Mapping[str, Any] | None = None
    problems: Sequence[str] = ()
    links: Links = field(default_factory=Links)
    revision: str | None = None


def commit_index(commits: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """``(tag key, image) -> sha`` of the newest reconciler commit that set that image."""
    found: dict[tuple[str, str], str] = {}
    for sha, message in commits:
        for block in trailers.parse_message(message):
            found.setdefault((block.tag, block.image), sha)
    return found


def _status_tags(doc: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    if not doc:
        return {}
    return {str(t.get("name")): t for t in doc.get("tags") or () if isinstance(t, Mapping)}


def _ready_condition(item: Mapping[str, Any]) -> tuple[str, str]:
    for condition in item.get("conditions") or ():
        if condition.get("type") == "Ready":
            return str(condition.get("reason") or ""), str(condition.get("message") or "")
    return "", ""


@dataclass(frozen=True, slots=True)
class _Condition:
    """What a tag's state rests on: the repository's view, overlaid by the daemon's."""

    reason: str
    message: str = ""
    failure: Failure | None = None
    waiting: str | None = None
    hold: str | None = None
    due: bool = False
    next_due: str = "on a spec change"
    last_checked: str | None = None
    last_error: str | None = None


def _offline(
    tag: inspect.TagView, stream: ImageStream, config: Config, now: datetime
) -> _Condition:
    """As the repository alone tells it: ``describe``'s revert and last failure, and what a
    one-shot pass would look up (a one-shot pass treats every scheduled tag as due)."""
    spec = tag.spec
    assert spec is not None
    key = planner.tag_key(stream.namespace, stream.name, spec.name)
    due = planner.is_due(
        spec, stream.namespace, tag.entry, key=key, config=config, now=now, last_checked={},
        forced=(),
    )  # fmt: skip
    failure = None
    if tag.last_failure is not None:
        found = tag.last_failure
        failure = Failure(
            str(found.get("reason", "")), str(found.get("message", "")), found.get("at")
        )
    return _Condition(
        reason=status.HELD if spec.hold is not None else status.UP_TO_DATE,
        failure=failure,
        waiting=tag.reverted_from,
        hold=spec.hold,
        due=due,
        next_due=_offline_next_due(
            spec.scheduled, spec.source.kind, spec.reference, due, spec.hold
        ),
    )


def _live(item: Mapping[str, Any], hold: str | None, locked: bool, now: datetime) -> _Condition:
    """As the daemon's ``/status`` tells it: its last look at the tag and its schedule."""
    reason, message = _ready_condition(item)
    hold = item.get("hold") or hold
    not_pinned = item.get("notPinned") or {}
    waiting = (
        not_pinned.get("image") if not_pinned.get("reason") == status.REVERT_RESPECTED else None
    )
    failure = None
    if item.get("state") != READY:
        failure = Failure(reason, message, item.get("lastChecked"))
    due_at = item.get("nextDue")
    if not locked:
        due, next_due = True, "next pass"
    elif hold is not None:
        due, next_due = False, "never while held"
    elif due_at:
        due, next_due = str(due_at) <= planner.rfc3339(now), str(due_at)
    else:
        due, next_due = False, "on a spec change"
    return _Condition(
        reason=reason,
        message=message,
        failure=failure,
        waiting=waiting,
        hold=hold,
        due=due,
        next_due=next_due,
        last_checked=item.get("lastChecked"),
        last_error=item.get("lastError"),
    )


def build(inputs: Inputs) -> Site:
    """The site: one row per stream (sorted by namespace and name), its tags in spec order."""
    by_image = commit_index(inputs.commits)
    bases = inputs.bases
    if bases is None:
        bases = trailers.summarize(inputs.commits).bases
    status_tags = _status_tags(inputs.status)
    daemon = inputs.status is not None
    edges: list[Edge] = []
    rows: list[StreamRow] = []
    for stream in sorted(inputs.streams, key=lambda s: s.key):
        lock = inputs.locks.get(stream.key)
        failures = None if daemon else inputs.failures
        view = inspect.describe(stream, lock, bases=bases, failures=failures)
        tags = []
        for tag in view.tags:
            if tag.spec is None:
                continue  # only in the lock: the next pass removes it
            key = planner.tag_key(stream.namespace, stream.name, tag.name)
            upstream = _upstream(stream, tag.spec, inputs.locks)
            if upstream is not None:
                edges.append(upstream)
            live = status_tags.get(key)
            if live is not None:
                condition = _live(live, tag.spec.hold, tag.entry is not None, inputs.now)
            elif daemon:  # another replica's namespace, or before the first pass
                condition = _Condition(
                    reason=NOT_LOOKED_AT,
                    message="this daemon has not looked at the tag (yet)",
                    hold=tag.spec.hold,
                    next_due="—",
                )
            else:
                condition = _offline(tag, stream, inputs.config, inputs.now)
            tags.append(
                _tag_row(stream, tag, condition, upstream, by_image, inputs.links, inputs.config)
            )
        rows.append(
            StreamRow(
                namespace=stream.namespace,
                name=stream.name,
                path=stream.path,
                line=stream.line,
                edit_url=inputs.links.edit_url(stream.path, stream.line),
                lock_path=lock.path if lock is not None else None,
                tags=tuple(tags),
                counts=_counts(tags),
            )
        )
    followers: dict[str, list[str]] = {}
    for edge in edges:
        followers.setdefault(edge.source, []).append(edge.target)
    if followers:
        rows = [_with_followers(row, followers) for row in rows]
    doc = inputs.status or {}
    return Site(
        streams=tuple(rows),
        edges=tuple(sorted(set(edges), key=lambda e: (e.source, e.target))),
        problems=tuple(inputs.problems) + tuple(str(p) for p in doc.get("problems") or ()),
        generated=planner.rfc3339(inputs.now),
        revision=inputs.revision or doc.get("observedRevision"),
        mode="daemon" if daemon else "report",
        reconciling=bool(doc.get("reconciling")),
        last_pass=doc.get("lastPass"),
        _index={row.key: row for row in rows},
    )


def _upstream(
    stream: ImageStream, spec: TagSpec, locks: Mapping[tuple[str, str], StreamLock]
) -> Edge | None:
    """The promotion path ending at this tag: the tag it follows or whose image it pins."""
    kind = spec.source.kind
    if kind not in (IMAGE_STREAM_TAG, IMAGE_STREAM_IMAGE):
        return None
    key = planner.tag_key(stream.namespace, stream.name, spec.name)
    namespace, name, ref = spec.source.target(stream.namespace, stream.name)
    if kind == IMAGE_STREAM_TAG:
        same = (namespace, name) == stream.key
        return Edge(planner.tag_key(namespace, name, ref), key, "alias" if same else "follows")
    pinned = _pinned_tag(locks.get((namespace, name)), namespace, name, ref)
    return Edge(pinned, key, "pins") if pinned is not None else None


def _tag_row(
    stream: ImageStream,
    tag: inspect.TagView,
    condition: _Condition,
    upstream: Edge | None,
    by_image: Mapping[tuple[str, str], str],
    links: Links,
    config: Config,
) -> TagRow:
    spec, entry = tag.spec, tag.entry
    assert spec is not None
    key = planner.tag_key(stream.namespace, stream.name, spec.name)
    history = tuple(
        Revision(
            item.image,
            item.docker_image_reference,
            item.created,
            item.imported_at,
            by_image.get((key, item.image)),
            links.commit_url(by_image.get((key, item.image))),
            number == 0,
        )
        for number, item in enumerate(inspect.revisions(entry))
    )
    state = _state(entry is not None, condition.failure, condition.hold, condition.waiting)
    reason, message = condition.reason, condition.message
    if state == FAILED and condition.failure is not None:
        reason, message = condition.failure.reason, condition.failure.message
    elif state == REVERTED:
        reason = status.REVERT_RESPECTED
    elif state == HELD:
        reason = status.HELD
    source = spec.source
    written = f"{source.namespace}/{source.name}" if source.namespace else source.name
    line = spec.line or stream.line
    return TagRow(
        namespace=stream.namespace,
        stream=stream.name,
        name=spec.name,
        source_kind=source.kind,
        source=inspect.source_line(spec, config.import_interval),
        source_name=written,
        upstream=upstream.source if upstream is not None else None,
        image=entry.image if entry else None,
        pull_spec=entry.docker_image_reference if entry else None,
        platforms=tuple(sorted((entry.platforms or {}).items())) if entry else (),
        labels=tuple(sorted(entry.labels.items())) if entry else (),
        annotations=tuple(sorted(spec.annotations.items())),
        state=state,
        due=condition.due or entry is None,
        reason=reason,
        message=message,
        waiting_image=condition.waiting,
        hold=condition.hold,
        failure=condition.failure,
        last_import=entry.imported_at if entry else None,
        last_checked=condition.last_checked,
        last_error=condition.last_error,
        next_due=condition.next_due,
        history=history,
        path=stream.path,
        line=line,
        edit_url=links.edit_url(stream.path, line),
    )


def _pinned_tag(lock: StreamLock | None, namespace: str, name: str, digest: str) -> str | None:
    """The tag of ``namespace/name`` whose current image is ``digest`` (a pin's upstream)."""
    if lock is None:
        return None
    for tag in sorted(lock.tags):
        if lock.tags[tag].image == digest:
            return planner.tag_key(namespace, name, tag)
    for tag in sorted(lock.tags):
        if any(item.image == digest for item in lock.tags[tag].history):
            return planner.tag_key(namespace, name, tag)
    return None


def _offline_next_due(
    scheduled: bool, kind: str, reference: bool, due: bool, hold: str | None
) -> str:
    """When the next look-up comes, as far as the repository alone can tell."""
    if hold is not None:
        return "never while held"
    if due:
        return "next pass"
    if kind == DOCKER_IMAGE and scheduled and not reference:
        return "every pass (scheduled)"
    return "on a spec change"


def _state(locked: bool, failure: Failure | None, hold: str | None, waiting: str | None) -> str:
    """One word per tag: failed beats held beats a respected revert beats ready."""
    if failure is not None:
        return FAILED
    if hold is not None:
        return HELD
    if waiting is not None:
        return REVERTED
    return READY if locked else PENDING


def _counts(tags: Sequence[TagRow]) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for tag in tags:
        if tag.state in counts:
            counts[tag.state] += 1
        if tag.due:
            counts[DUE] += 1
    return counts


def _with_followers(row: StreamRow, followers: Mapping[str, Sequence[str]]) -> StreamRow:
    tags = tuple(
        replace(tag, followers=tuple(sorted(followers.get(tag.key, ())))) for tag in row.tags
    )
    return replace(row, tags=tags)
