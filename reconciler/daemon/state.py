"""What the daemon knows between passes, as pure functions: due times, shards, per-tag status.

The commit trailers stay the only durable state; everything here is memory that a restart may
lose at no cost (the first pass after a start checks every scheduled tag, as one-shot
``reconcile`` does).

Due times: a scheduled tag checked at ``t`` is due at ``t + importInterval + jitter(tag)``, with
a jitter of up to a tenth of the interval, stable per tag, so a thousand tags imported in one
pass spread out instead of firing together forever. The planner's ``is_due`` compares
``now - last_checked`` with the interval, so the jitter is folded into the recorded time.
A tag whose lookup failed for a transient reason is retried sooner, with backoff.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from reconciler import status
from reconciler.imagestream import DOCKER_IMAGE, ImageStream
from reconciler.lockfile import LockEntry
from reconciler.planner import rfc3339, tag_key
from reconciler.status import TagStatus

JITTER_FRACTION = 0.1
RETRY_BASE = 5.0  # seconds before the first retry of a tag whose lookup failed transiently
# Reasons that will not change until a person edits the spec (kstatus: Stalled).
STALLED_REASONS = frozenset(
    {
        status.MANIFEST_UNKNOWN,
        status.UNAUTHORIZED,
        status.UNSUPPORTED_MANIFEST,
        status.MALFORMED_ANSWER,
        status.DIGEST_MISMATCH,
        status.INVALID_LOCK,
        status.INVALID_SPEC,
        status.FOLLOW_CYCLE,
        status.ACCESS_DENIED,
        status.IMAGE_UNKNOWN,
    }
)
# Reasons that explain why a newer image is not pinned.
WAITING_REASONS = frozenset(
    {
        status.REVERT_RESPECTED,
        status.HELD,
        status.NOT_DUE,
        status.WAITING_MIN_AGE,
        status.WAITING_PROMOTION,
    }
)


@dataclass(frozen=True, slots=True)
class WatchedTag:
    """A tag imported from a registry: what a registry hook or a due time can make re-check."""

    key: str
    namespace: str
    source: str
    identity: str
    scheduled: bool
    import_mode: str = "Legacy"
    insecure: bool = False


def watched_tags(streams: Iterable[ImageStream]) -> dict[str, WatchedTag]:
    """Every ``DockerImage`` tag that is imported (not ``reference: true``), by tag key."""
    tags = {}
    for stream in streams:
        for spec in stream.tags:
            if spec.source.kind != DOCKER_IMAGE or spec.reference:
                continue
            key = tag_key(stream.namespace, stream.name, spec.name)
            identity = spec.source.identity(stream.namespace, stream.name)
            tags[key] = WatchedTag(
                key,
                stream.namespace,
                spec.source.name,
                identity,
                spec.scheduled,
                spec.import_mode,
                spec.insecure,
            )
    return tags


# --- shards -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Shard:
    """Which namespaces this replica owns: ``index/count`` by a stable hash, or a list."""

    index: int = 0
    count: int = 1
    namespaces: frozenset[str] | None = None

    @classmethod
    def parse(cls, shard: str | None, namespaces: str | None) -> Shard:
        """``--shard I/N`` (0 ≤ I < N) or ``--namespaces a,b``; ValueError says what is wrong."""
        if shard and namespaces:
            raise ValueError("--shard and --namespaces exclude each other")
        if namespaces:
            names = frozenset(n.strip() for n in namespaces.split(",") if n.strip())
            if not names:
                raise ValueError("--namespaces needs at least one namespace")
            return cls(namespaces=names)
        if not shard:
            return cls()
        index, sep, count = shard.partition("/")
        if not sep or not index.isdigit() or not count.isdigit():
            raise ValueError(f"--shard {shard!r}: expected I/N, such as 0/3")
        i, n = int(index), int(count)
        if n < 1 or not 0 <= i < n:
            raise ValueError(f"--shard {shard!r}: need 0 ≤ I < N")
        return cls(i, n)

    def owns(self, namespace: str) -> bool:
        if self.namespaces is not None:
            return namespace in self.namespaces
        if self.count == 1:
            return True
        digest = hashlib.sha256(namespace.encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def __str__(self) -> str:
        if self.namespaces is not None:
            return ",".join(sorted(self.namespaces))
        return f"{self.index}/{self.count}"


# --- due times --------------------------------------------------------------------------------
def jitter(key: str, interval: float, fraction: float = JITTER_FRACTION) -> float:
    """Seconds added to a tag's interval: stable per tag, in ``[0, fraction × interval)``."""
    digest = hashlib.sha256(key.encode()).digest()
    return interval * fraction * (int.from_bytes(digest[:8], "big") / 2**64)


@dataclass(frozen=True, slots=True)
class Schedule:
    """When each scheduled tag was (virtually) last checked, and its run of failures."""

    last_checked: Mapping[str, datetime] = field(default_factory=dict)
    failures: Mapping[str, int] = field(default_factory=dict)

    def due_now(self, keys: Iterable[str]) -> Schedule:
        """The tags a registry hook names become due at the next pass."""
        drop = set(keys)
        return Schedule(
            {k: v for k, v in self.last_checked.items() if k not in drop}, dict(self.failures)
        )

    def after_pass(
        self,
        statuses: Sequence[TagStatus],
        tags: Mapping[str, WatchedTag],
        now: datetime,
        interval: float,
        looked_up: Collection[str] = (),
    ) -> Schedule:
        """Record the tags this pass looked up: scheduled ones, except NotDue, and Held ones
        only when ``looked_up`` names them (their source is checked for ``/status`` only)."""
        checked = dict(self.last_checked)
        failures = dict(self.failures)
        for item in statuses:
            tag = tags.get(item.key)
            if tag is None or not tag.scheduled or item.reason == status.NOT_DUE:
                continue
            if item.reason == status.HELD:
                if item.key in looked_up:
                    checked[item.key] = now + timedelta(seconds=jitter(item.key, interval))
                continue
            if item.action == status.FAILED and item.reason not in STALLED_REASONS:
                count = failures.get(item.key, 0) + 1
                failures[item.key] = count
                wait = min(interval, RETRY_BASE * 2 ** (count - 1))
                checked[item.key] = now + timedelta(seconds=wait - interval)
            else:
                failures.pop(item.key, None)
                checked[item.key] = now + timedelta(seconds=jitter(item.key, interval))
        live = set(tags)
        return Schedule(
            {k: v for k, v in checked.items() if k in live},
            {k: v for k, v in failures.items() if k in live},
        )

    def next_due(self, tags: Iterable[WatchedTag], interval: float) -> datetime | None:
        """The earliest due time among scheduled tags checked before; None if none is."""
        times = [
            self.last_checked[t.key] + timedelta(seconds=interval)
            for t in tags
            if t.scheduled and t.key in self.last_checked
        ]
        return min(times) if times else None

    def is_due(self, key: str, now: datetime, interval: float) -> bool:
        due = self.due_at(key, interval)
        return due is None or now >= due

    def due_at(self, key: str, interval: float) -> datetime | None:
        checked = self.last_checked.get(key)
        return None if checked is None else checked + timedelta(seconds=interval)


# --- per-tag status ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TagState:
    """One tag as ``/status`` shows it: the last pass that looked at it, and why it waits."""

    namespace: str
    stream: str
    tag: str
    ready: bool
    reason: str
    message: str = ""
    image: str | None = None
    last_import: str | None = None
    last_checked: str | None = None
    last_error: str | None = None
    hold: str | None = None
    waiting_reason: str | None = None
    waiting_image: str | None = None

    @property
    def key(self) -> str:
        return tag_key(self.namespace, self.stream, self.tag)

    @property
    def stalled(self) -> bool:
        return not self.ready and self.reason in STALLED_REASONS

    @property
    def state(self) -> str:
        """``ready``, ``failed`` (retried) or ``stalled`` (until the spec changes)."""
        return "ready" if self.ready else ("stalled" if self.stalled else "failed")


def tag_state(
    item: TagStatus,
    previous: TagState | None,
    entry: LockEntry | None,
    now: datetime,
    waiting_image: str | None = None,
    hold: str | None = None,
) -> TagState:
    """Fold one pass's status of a tag into what ``/status`` shows.

    A NotDue tag was not looked at: it keeps the outcome of the pass that last did.
    """
    last_import = entry.imported_at if entry is not None else None
    if item.reason == status.NOT_DUE and previous is not None:
        return TagState(
            item.namespace,
            item.stream,
            item.tag,
            previous.ready,
            previous.reason,
            previous.message,
            item.image or previous.image,
            last_import,
            previous.last_checked,
            previous.last_error,
            hold,
            previous.waiting_reason or status.NOT_DUE,
            previous.waiting_image,
        )
    failed = item.action == status.FAILED
    checked = None if item.reason == status.NOT_DUE else rfc3339(now)
    error = f"{item.reason}: {item.message}" if failed else None
    waiting = item.reason if item.reason in WAITING_REASONS else None
    return TagState(
        item.namespace,
        item.stream,
        item.tag,
        not failed,
        item.reason,
        item.message,
        item.image,
        last_import,
        checked or (previous.last_checked if previous else None),
        error or (previous.last_error if previous else None),
        hold,
        waiting,
        _waiting_image(waiting, waiting_image, entry),
    )


def _waiting_image(
    reason: str | None, looked_up: str | None, entry: LockEntry | None
) -> str | None:
    """The digest a tag is kept from: what the source serves (revert, hold), or the digest the
    lock records as waiting for its minimum age."""
    if reason in (status.REVERT_RESPECTED, status.HELD):
        return looked_up
    if reason == status.WAITING_MIN_AGE and entry is not None and entry.waiting is not None:
        return entry.waiting.image
    return None


def conditions(state: TagState, reconciling: bool) -> list[dict[str, str]]:
    """kstatus conditions: Ready always; Reconciling while a pass runs; Stalled when stuck."""
    ready = {
        "type": "Ready",
        "status": "True" if state.ready else "False",
        "reason": state.reason,
        "message": state.message,
    }
    found = [ready]
    if reconciling:
        found.append(
            {"type": "Reconciling", "status": "True", "reason": "Progressing", "message": ""}
        )
    if state.stalled:
        found.append(
            {"type": "Stalled", "status": "True", "reason": state.reason, "message": state.message}
        )
    return found


def status_document(
    states: Mapping[str, TagState],
    schedule: Schedule,
    tags: Mapping[str, WatchedTag],
    interval: float,
    *,
    reconciling: bool,
    revision: str | None,
    problems: Sequence[str],
    last_pass: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The ``/status`` JSON: per tag conditions, image, errors, why a newer image waits."""
    out = []
    for key in sorted(states):
        item = states[key]
        due = schedule.due_at(key, interval) if key in tags and tags[key].scheduled else None
        waiting = None
        if item.waiting_reason is not None:
            waiting = {"reason": item.waiting_reason, "image": item.waiting_image}
        out.append(
            {
                "name": key,
                "namespace": item.namespace,
                "stream": item.stream,
                "tag": item.tag,
                "state": item.state,
                "conditions": conditions(item, reconciling),
                "image": item.image,
                "lastImport": item.last_import,
                "lastChecked": item.last_checked,
                "lastError": item.last_error,
                "hold": item.hold,
                "notPinned": waiting,
                "nextDue": rfc3339(due) if due is not None else None,
            }
        )
    return {
        "observedRevision": revision,
        "reconciling": reconciling,
        "problems": list(problems),
        "lastPass": dict(last_pass) if last_pass else None,
        "tags": out,
    }
