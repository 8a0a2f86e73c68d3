"""One reconcile pass: read the repo, ask the registry, let the planner decide, commit, push.

The only module that joins the pure planner to the registry and Git shells. Nothing from httpx or a
git process escapes it: the shells translate their errors into ``reconciler.errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import hashlib
import json
import marshal
import random
import sys
from collections.abc import Callable, Collection, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog

from reconciler import (
    __version__,
    cachefile,
    lockfile,
    lockread,
    planner,
    schema,
    status,
    trailers,
)
from reconciler.config import CONFIG_FILE, Config, load_config
from reconciler.consumers import controller, reader
from reconciler.errors import GitError, InputError, Problem, PushRejected, ValidationError
from reconciler.gitrepo import (
    RUN_LOCK_WAIT,
    GitRepo,
    LocalCommit,
    TrailerIndex,
    parse_author,
    review_branch,
)
from reconciler.image import ImportFailure, ImportRequest, Observation
from reconciler.imagestream import load_streams
from reconciler.lockfile import StreamLock, loads
from reconciler.status import TagStatus

log = structlog.get_logger("streamlock")

WATCHED_PATHS = ("streams", "locks", CONFIG_FILE)
PUSH_ATTEMPTS = 5


class Resolver(Protocol):
    """What the pass needs from a registry client (``registry.RegistryClient`` is one)."""

    async def resolve_all(
        self, requests: Sequence[ImportRequest]
    ) -> Mapping[tuple[str, str, str], Observation]: ...


@dataclass(frozen=True, slots=True)
class PassOptions:
    write: bool = True  # False: plan only
    push: bool = True
    forced: Collection[str] = ()
    scope: Collection[str] | None = None  # import-image: only these tags and their followers
    now: datetime | None = None
    last_checked: Mapping[str, datetime] = field(default_factory=dict)
    push_attempts: int = PUSH_ATTEMPTS
    lock_wait: float = RUN_LOCK_WAIT  # seconds a second run on one checkout waits
    # (remote, branch, tip) the caller fetched and checked out just before (the daemon's
    # workdir): a pass pushing there starts at that tip without fetching again.
    synced: tuple[str, str, str] | None = None


@dataclass(frozen=True, slots=True)
class PassResult:
    plan: planner.Plan
    problems: tuple[Problem, ...]  # stream files and locks that were set aside
    commits: tuple[str, ...] = ()
    pushed: bool = False
    push_attempts: int = 0
    revision: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and not self.plan.failed


@functools.cache
def code_identity() -> str:
    """A digest of this package's code and schemas: the caches of parsed files hold what this
    code made of them, so code that parses differently (an upgrade, a checkout of another
    revision) must never read them, even where nobody raised a cache's VERSION."""
    digest = hashlib.sha256(__version__.encode())
    package = Path(__file__).resolve().parent
    sources = sorted(package.rglob("*.py")) + sorted(Path(str(schema.schema_dir())).glob("*.json"))
    for source in sources:
        with contextlib.suppress(OSError):
            digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Build many objects at once without the cyclic collector walking them as they come.

    A pass over 100,000 tags holds millions of small objects (parsed streams and locks, plans,
    statuses), none of them in a reference cycle. The collector, started every few hundred
    allocations, walked that growing heap again and again: about 40% of a pass with nothing to
    do.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def collector_resumed() -> Iterator[None]:
    """The collector runs inside, where a step makes reference cycles (a parse)."""
    enabled = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        if not enabled:
            gc.disable()


@contextlib.contextmanager
def built_in_bulk(pause: bool = True) -> Iterator[None]:
    """Keep the objects a step builds out of the collections the rest of the pass makes.

    Everything alive at the end is frozen (``gc.freeze``), so later collections skip the pass's
    data; the pass unfreezes it when it ends (:func:`release_bulk`), so nothing outlives a pass
    uncollected. With ``pause``, the step itself runs without the collector
    (:func:`collector_paused`): only for steps that make no reference cycles, since a cycle
    made there lives until the pass ends.
    """
    with collector_paused() if pause else contextlib.nullcontext():
        try:
            yield
        finally:
            gc.freeze()


def release_bulk() -> None:
    """Hand what :func:`built_in_bulk` froze back to the collector (at the end of a pass)."""
    gc.unfreeze()


class LockCache:
    """Parsed locks by content hash, kept in ``.git/streamlock/``.

    Parsing YAML is the slowest step of a no-op pass (a 500-stream repo spends seconds in it);
    a lock's bytes fully determine its parse, so a content-addressed cache can never be stale.
    Only locks that passed the schema are kept, so a hit is a verdict too; whether ``metadata``
    matches the path is checked on every load, since the same bytes may sit at another path.
    """

    VERSION = 4  # 1 unchecked locks; 2 no tag/waiting; 3 JSON documents, one object per string
    # marshal keeps one copy of each shared string (digests, pull specs, times) and reads back
    # many times faster than JSON; its format is Python's own, so the cache names the version.
    # It is read only from this checkout's .git, which nothing but this machine writes.

    @property
    def format(self) -> str:
        """What wrote the cache: its version, this Python, and the code that parses locks."""
        return f"streamlock-locks/{self.VERSION}/{sys.version}/{code_identity()}"

    def __init__(self, path: Path | None) -> None:
        self.path = path
        # content hash -> compact lock (as read) or the lock built from it (once used)
        self.entries: dict[str, Any] = {}
        self.used: set[str] = set()
        self.dirty = False
        self.parsed = 0  # locks this process parsed (cache misses)
        # The stream files' cache travels with this one (one object for the pass to carry).
        self.streams = StreamCache(None)
        if path is not None:
            try:
                data = path.read_bytes()
                with collector_paused():
                    found, entries = marshal.loads(data)
                if found == self.format and isinstance(entries, dict):
                    self.entries = entries
            except (OSError, ValueError, TypeError, EOFError):
                self.entries = {}

    @classmethod
    def of(cls, git_dir: Path | None) -> LockCache:
        """The caches a checkout keeps in ``.git/streamlock/`` (none without a repository):
        every reader of locks and stream files shares them."""
        if git_dir is None:
            return cls(None)
        cache = cls(git_dir / "streamlock" / "locks.bin")
        cache.streams = StreamCache(git_dir / "streamlock" / "streams.json")
        return cache

    def load(self, data: bytes, relative: str) -> StreamLock:
        """The lock in ``data``; a ValidationError (path:line:col) when it fails its checks."""
        key = hashlib.sha256(data).hexdigest()
        found = self.entries.get(key)
        lock: StreamLock | None = None
        if isinstance(found, StreamLock):
            lock = found if lockfile.compact_matches(found.key, relative) else None
        elif found is not None and lockfile.compact_matches(found, relative):
            try:
                lock = lockfile.from_compact(found, lockfile.header_stream_file(data))
            except (TypeError, ValueError):
                lock = None
        if lock is None:
            with collector_resumed():
                doc = lockfile.parse(data, relative)
                lock = lockfile.from_document(doc, relative, lockfile.header_stream_file(data))
            self.dirty = True
            self.parsed += 1
        self.entries[key] = lock
        self.used.add(key)
        return lock

    def remember(self, files: Mapping[str, bytes | None], locks: Mapping[Any, StreamLock]) -> None:
        """Add the locks a pass wrote, so the next pass does not parse them again."""
        by_path = {lock.path: lock for lock in locks.values()}
        for path, data in files.items():
            if data is not None and path in by_path:
                key = hashlib.sha256(data).hexdigest()
                self.used.add(key)
                if key not in self.entries:
                    self.entries[key] = by_path[path]
                    self.dirty = True

    def save(self) -> None:
        """Keep what this pass used; a cache that cannot be written is only a slower start."""
        if self.path is None or not (self.dirty or set(self.entries) - self.used):
            return
        keep = {
            key: lockfile.compact(value) if isinstance(value, StreamLock) else value
            for key, value in self.entries.items()
            if key in self.used
        }
        cachefile.write_bytes(self.path, marshal.dumps((self.format, keep)), "lock cache")


class StreamCache(MutableMapping[str, Any]):
    """Parsed stream files by content hash (``imagestream.memo_key``), kept in ``.git/streamlock/``.

    Like :class:`LockCache`: parsing thousands of stream files is most of a pass with nothing to
    do, and a file's bytes, path and the default namespace fully determine its parse, problems
    included, so the cache can never be stale. Only what this pass looked up is kept.
    """

    VERSION = 2  # 2: each tag's spec hash

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, Any] = {}
        self.used: set[str] = set()
        self.dirty = False
        if path is not None:
            try:
                text = path.read_text(encoding="utf-8")
                with collector_paused():
                    data = json.loads(text)
                if data.get("version") == self.VERSION and data.get("by") == code_identity():
                    self.entries = dict(data["files"])
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                self.entries = {}

    def __getitem__(self, key: str) -> Any:
        value = self.entries[key]
        self.used.add(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.entries[key] = value
        self.used.add(key)
        self.dirty = True

    def __delitem__(self, key: str) -> None:
        del self.entries[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def save(self) -> None:
        """Keep what this pass used; a cache that cannot be written is only a slower start."""
        if self.path is None or not (self.dirty or set(self.entries) - self.used):
            return
        keep = {k: v for k, v in self.entries.items() if k in self.used}
        data = {"version": self.VERSION, "by": code_identity(), "files": keep}
        cachefile.write_text(self.path, json.dumps(data, separators=(",", ":")), "stream cache")


def load_locks(root: Path, cache: LockCache | None = None) -> lockfile.LockSet:
    """Every ``locks/<ns>/<name>.lock.yaml`` in the working tree, each checked on its own.

    A lock that cannot be read or fails its checks is set aside under the stream its path names,
    with located problems; the others load. The planner skips the streams set aside.
    """
    return read_locks(root, cache)()


def read_locks(
    root: Path,
    cache: LockCache | None = None,
    *,
    min_bytes: int = lockread.PARALLEL_BYTES,
    workers: int | None = None,
) -> PendingLocks:
    """:func:`load_locks` begun: with nothing cached and at least ``min_bytes`` of locks (a
    fresh clone of a large repository), worker processes parse them while the caller goes on
    (to the stream files); calling the result gives the locks."""
    cache = cache or LockCache(None)
    base = root / lockfile.LOCKS_DIR
    paths = sorted(base.glob(f"*/*{lockfile.LOCK_SUFFIX}")) if base.is_dir() else []
    parsing = None
    if paths and not cache.entries:
        files = []
        for path in paths:
            with contextlib.suppress(OSError):
                files.append((path.relative_to(root).as_posix(), str(path), path.lstat().st_size))
        parsing = lockread.start(files, min_bytes, workers)
    return PendingLocks(root, paths, cache, parsing)


@dataclass(slots=True)
class PendingLocks:
    """Locks being read (:func:`read_locks`): call it for them, or :meth:`cancel` it."""

    root: Path
    paths: Sequence[Path]
    cache: LockCache
    parsing: lockread.Parsing | None

    def cancel(self) -> None:
        """Stop the workers, if any (the caller failed before it needed the locks)."""
        if self.parsing is not None:
            self.parsing.stop()
            self.parsing = None

    def __call__(self) -> lockfile.LockSet:
        cache = self.cache
        if self.parsing is not None:
            rows = self.parsing.rows()
            self.parsing = None
            if rows:
                cache.entries.update(rows)
                cache.dirty = True
        locks: dict[tuple[str, str], StreamLock] = {}
        broken: dict[tuple[str, str], tuple[Problem, ...]] = {}
        for path in self.paths:
            relative = path.relative_to(self.root).as_posix()
            key = lockfile.path_key(relative)
            assert key is not None  # the glob only finds locks/<ns>/<name>.lock.yaml
            try:
                lock = cache.load(_read_lock(path, relative), relative)
            except ValidationError as exc:
                broken[key] = tuple(exc.problems)
                continue
            locks[lock.key] = lock
        return lockfile.LockSet(locks, broken)


def _read_lock(path: Path, relative: str) -> bytes:
    """A lock's bytes, bounded; a symlink or an unreadable entry is that lock's problem."""
    if path.is_symlink():
        raise ValidationError([Problem(relative, 1, 1, "lock files may not be symlinks")])
    try:
        with path.open("rb") as handle:
            data = handle.read(lockfile.MAX_LOCK_BYTES + 1)
    except OSError as exc:
        raise ValidationError([Problem(relative, 1, 1, f"cannot read: {exc.strerror}")]) from exc
    if len(data) > lockfile.MAX_LOCK_BYTES:
        raise ValidationError(
            [Problem(relative, 1, 1, f"larger than {lockfile.MAX_LOCK_BYTES} bytes")]
        )
    return data


async def _observe(
    resolver: Resolver,
    requests: Sequence[ImportRequest],
    seen: dict[tuple[str, str, str], Observation],
) -> dict[tuple[str, str, str], Observation]:
    """Resolve what this attempt needs; a retry after a push race reuses earlier answers."""
    missing = [r for r in requests if r.key not in seen]
    if missing:
        seen.update(await resolver.resolve_all(missing))
    return {r.key: seen[r.key] for r in requests if r.key in seen}


async def _list(
    resolver: Resolver, repositories: Sequence[str], seen: dict[str, planner.Listing]
) -> dict[str, planner.Listing]:
    """The tag listings policy tags need, each repository once per pass (a retry reuses them).

    A resolver that cannot list tags fails those tags alone, as an unreachable registry would.
    """
    missing = [r for r in repositories if r not in seen]
    if missing:
        lister = getattr(resolver, "list_all", None)
        if lister is None:
            failure = ImportFailure("ImportFailed", "this resolver cannot list tags")
            seen.update({r: failure for r in missing})
        else:
            seen.update(await lister(missing))
    return {r: seen[r] for r in repositories if r in seen}


async def observe_pass(
    resolver: Resolver,
    streams: Sequence[Any],
    locks: Mapping[tuple[str, str], StreamLock],
    config: Config,
    now: datetime,
    options: PassOptions,
    seen: dict[tuple[str, str, str], Observation],
    listed: dict[str, planner.Listing],
) -> tuple[dict[tuple[str, str, str], Observation], dict[str, planner.Listing]]:
    """Everything the planner needs from registries: listings for policy tags, then lookups in
    rounds (a candidate refused for a missing platform asks for the next one)."""
    due = dict(last_checked=options.last_checked, forced=options.forced, scope=options.scope)
    repositories = planner.listing_requests(streams, locks, config, now, **due)  # type: ignore[arg-type]
    listings = await _list(resolver, repositories, listed)
    observations: dict[tuple[str, str, str], Observation] = {}
    for _ in range(planner.MAX_ROUNDS):
        requests = planner.import_requests(
            streams,
            locks,
            config,
            now,
            listings=listings,
            observations=observations,
            **due,  # type: ignore[arg-type]
        )
        if all(r.key in observations for r in requests):
            break
        observations.update(await _observe(resolver, requests, seen))
    return observations, listings


async def run_pass(
    root: Path,
    resolver_factory: Callable[[Config, Path], Resolver],
    options: PassOptions = PassOptions(),
) -> PassResult:
    """Plan (and with ``options.write``, commit and push) one pass over the repo at ``root``.

    A writing pass holds the checkout (a second run waits, then fails clearly), first finishes
    whatever a killed run left half done, and starts from the remote's tip: its own commits
    that never reached the remote are dropped and recomputed, a person's are never touched.
    """
    root = root.resolve()
    config = load_config(root)
    if not options.write:
        return await _run(root, config, options, None, None, resolver_factory)
    repo = GitRepo.open(root)
    with repo.run_lock(options.lock_wait) as crashed:
        target = push_target(repo, config) if options.push else None
        repaired = repo.heal(crashed, *(target or (None, None)))
        if repaired:
            log.warning("finished a commit a killed run left half written", paths=repaired)
        changed = repo.changed_paths(WATCHED_PATHS)
        if changed:
            raise InputError(
                f"uncommitted changes under streams/, locks/ or streamlock.yaml: "
                f"{', '.join(changed[:5])}{' …' if len(changed) > 5 else ''}",
                hint="'git status' and 'git diff HEAD' show them; commit the ones you meant "
                "(a lock edit acts as a pin), drop the others with 'git restore --staged "
                "--worktree -- PATH' (streamlock plan works on a dirty tree)",
            )
        if target is not None and options.synced != (*target, repo.head()):
            start_from_remote(repo, config, *target)
        return await _run(root, config, options, repo, target, resolver_factory)


def push_target(repo: GitRepo, config: Config) -> tuple[str, str]:
    """``(remote, branch)`` a pass fetches from and pushes to.

    ``git.remote`` and ``git.branch`` of the config when set, else what the branch checked out
    tracks. Refuses rather than commit forever without pushing: no upstream and no
    ``git.remote``, no such remote, or another branch checked out than ``git.branch``.
    """
    current = repo.branch()
    if config.git.branch is not None and config.git.branch != current:
        raise InputError(
            f"branch {current!r} is checked out, but git.branch in {CONFIG_FILE} is "
            f"{config.git.branch!r}",
            hint=f"switch with 'git switch {config.git.branch}', or run with --no-push",
        )
    tracked = repo.upstream()
    remote = config.git.remote or (tracked[0] if tracked else None)
    if remote is None:
        raise GitError(
            f"branch {current!r} has no upstream to push to",
            hint=f"set one with 'git branch --set-upstream-to=origin/{current}', name the remote "
            f"in git.remote of {CONFIG_FILE}, or run with --no-push to commit locally",
        )
    if not repo.has_remote(remote):
        raise GitError(
            f"no remote {remote!r} to push to",
            hint=f"add it with 'git remote add {remote} URL', name another in git.remote of "
            f"{CONFIG_FILE}, or run with --no-push to commit locally",
        )
    if tracked is not None and tracked[0] == remote and config.git.branch is None:
        return remote, tracked[1]
    return remote, config.git.branch or current


def is_own_commit(commit: LocalCommit, config: Config) -> bool:
    """A commit this reconciler made: its identity as author and committer, no merge, and only
    lock files or its own trailers (so a person's commit under that name is still theirs)."""
    identity = parse_author(config.git.author)
    return (
        commit.author == identity
        and commit.committer == identity
        and len(commit.parents) <= 1
        and bool(commit.paths)
        and (
            all(path.startswith("locks/") for path in commit.paths)
            or bool(trailers.parse_message(commit.message))
            or controller.is_repair(commit.message)
        )
    )


def start_from_remote(repo: GitRepo, config: Config, remote: str, branch: str) -> None:
    """Move the branch to the remote's tip, dropping our unpushed commits; refuse for a person's.

    Our own unpushed commits (a push declined, the remote gone, a kill after the commit) are
    dropped, not pushed: the trailers of what did land are the only state, so recomputing on
    the tip gives the right bumps with the right ``Streamlock-Previous``, while pushing stale
    commits could land a pin the registry has since moved on from.
    """
    tip = repo.fetch(remote, branch)
    head = repo.head()
    if head is None or head == tip:
        if head is None:
            repo.reset_keep(tip)
        return
    ahead = repo.commits(f"{tip}..HEAD")
    people = [c for c in ahead if not is_own_commit(c, config)]
    if people:
        listed = "; ".join(f"{c.sha[:12]} {c.subject[:60]}" for c in people[:3])
        more = f" and {len(people) - 3} more" if len(people) > 3 else ""
        raise GitError(
            f"{branch} has {len(people)} commit{'s' if len(people) > 1 else ''} that "
            f"{remote}/{branch} does not and that streamlock did not make: {listed}{more}",
            hint=f"push them with 'git push {remote} HEAD:{branch}', or set them aside with "
            f"'git branch saved-work && git reset --keep {remote}/{branch}' "
            "(streamlock drops and recomputes only its own unpushed commits)",
        )
    if ahead:
        log.warning(
            "dropping unpushed streamlock commits; this pass recomputes them",
            commits=len(ahead),
            subjects=[c.subject for c in ahead[:5]],
        )
    repo.reset_keep(tip)


async def _run(
    root: Path,
    config: Config,
    options: PassOptions,
    repo: GitRepo | None,
    target: tuple[str, str] | None,
    resolver_factory: Callable[[Config, Path], Resolver],
) -> PassResult:
    now = options.now or datetime.now(UTC).replace(microsecond=0)
    resolver = resolver_factory(config, root)
    git = repo if repo is not None else _open_quietly(root)
    index = TrailerIndex(git, config.git.author) if git is not None else None
    git_dir = git.git_dir / "streamlock" if git is not None else None
    scans = reader.ScanCache(
        git_dir / "consumers.json" if git_dir is not None else None, config.default_namespace
    )
    try:
        # The caches' records are read once and make no cycles: no collection walks them again.
        with built_in_bulk():
            cache = LockCache.of(git.git_dir if git is not None else None)
        try:
            result = await _attempts(
                root, config, options, now, repo, target, resolver, cache, index, scans
            )
        finally:
            cache.save()
            cache.streams.save()
            scans.save()
    finally:
        release_bulk()
    if git_dir is not None:
        record_failures(git_dir / FAILURES_FILE, result.plan.statuses, now)
    return result


FAILURES_FILE = "last-failures.json"


def record_failures(path: Path, statuses: Sequence[TagStatus], now: datetime) -> None:
    """Keep each tag's last failed import in ``.git/streamlock/`` for ``describe``.

    Failures are never committed (DESIGN.md §11), but a person asking why a tag is not pinned
    should see the last failure this checkout met: a tag that imported since is forgotten, a
    tag that was not looked at keeps its record. A file that cannot be written costs nothing.
    """
    records = last_failures(path)
    for item in statuses:
        if item.action == status.FAILED:
            records[item.key] = {
                "reason": item.reason,
                "message": item.message,
                "at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        elif item.reason not in (status.NOT_DUE, status.HELD):
            records.pop(item.key, None)
    cachefile.write_text(path, json.dumps(records, indent=1, sort_keys=True), "last failures")


def last_failures(path: Path) -> dict[str, dict[str, str]]:
    """``tag key -> {reason, message, at}`` as the last passes in this checkout left them."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(key): {k: str(v) for k, v in value.items() if k in ("reason", "message", "at")}
        for key, value in data.items()
        if isinstance(value, dict)
    }


def follow_consumers(
    root: Path,
    config: Config,
    plan: planner.Plan,
    locks: Mapping[tuple[str, str], StreamLock],
    repo: GitRepo | None,
    scans: reader.ScanCache,
) -> tuple[planner.Plan, tuple[Problem, ...]]:
    """Join the consumers' rewrites to the plan; a consumer with uncommitted changes is left
    alone (its problem says so), so a pass never commits or overwrites a person's edit."""
    consumers, problems = reader.load(root, config, scans)
    following = controller.follow(plan, consumers, locks, config.default_namespace)
    dirty = repo.changed_paths(following.rewritten) if repo and following.rewritten else []
    if dirty:
        problems += [
            Problem(path, 1, 1, "uncommitted changes: not rewritten; commit them first")
            for path in dirty
        ]
        kept = [c for c in consumers if c.path not in dirty]
        following = controller.follow(plan, kept, locks, config.default_namespace)
    for path, (data, found) in following.scans.items():
        scans.remember(path, data, found)
    return following.plan, (*problems, *following.problems)


async def _attempts(
    root: Path,
    config: Config,
    options: PassOptions,
    now: datetime,
    repo: GitRepo | None,
    upstream: tuple[str, str] | None,
    resolver: Resolver,
    cache: LockCache,
    index: TrailerIndex | None,
    scans: reader.ScanCache,
) -> PassResult:
    """Compute and write the pass; after a lost push race, recompute it on the new tip."""
    seen: dict[tuple[str, str, str], Observation] = {}
    listed: dict[str, planner.Listing] = {}
    attempts = 0
    while True:
        attempts += 1
        locks_read = read_locks(root, cache)  # in workers, when many and none cached
        # Parsing files (a cache miss) makes cycles, so the collector runs while the stream
        # files are read, the locks built from the cache are made without it, and the last
        # cycles of parses in this process are collected before the rest is frozen.
        try:
            with built_in_bulk(pause=False):
                streamset = load_streams(root, config, memo=cache.streams)
                if cache.streams.dirty:
                    gc.collect()
        except BaseException:
            locks_read.cancel()
            raise
        with built_in_bulk():
            locks = locks_read()
            if cache.parsed:
                gc.collect()
        bases = index.bases() if index is not None else {}
        observations, listings = await observe_pass(
            resolver, streamset.streams, locks, config, now, options, seen, listed
        )
        # Writing a lock makes cycles (the YAML emitter's), so the collector runs while planning.
        with built_in_bulk(pause=False):
            plan = planner.plan(
                streamset.streams,
                locks,
                bases,
                observations,
                config,
                now,
                last_checked=options.last_checked,
                forced=options.forced,
                prune=not streamset.problems,
                scope=options.scope,
                listings=listings,
            )
        plan, consumer_problems = follow_consumers(root, config, plan, locks, repo, scans)
        # Stream files that did not load, locks set aside and consumers that cannot follow,
        # sorted by file and line.
        problems = tuple(sorted([*streamset.problems, *plan.problems, *consumer_problems]))
        if repo is None:
            return PassResult(plan, problems, push_attempts=0)
        cache.remember(plan.files, plan.locks)
        if config.git.push == "branch":
            shas = _push_review_branches(repo, plan, config, upstream)
            return PassResult(plan, problems, shas, upstream is not None, 1, repo.head())
        shas = commit_plan(repo, plan, config)
        if upstream is None or not shas:
            return PassResult(plan, problems, shas, False, 0, repo.head())
        remote, branch = upstream
        if _push(repo, remote, branch):
            log.info("pushed", remote=remote, branch=branch, commits=len(shas))
            return PassResult(plan, problems, shas, True, attempts, repo.head())
        if attempts >= options.push_attempts:
            raise PushRejected(
                f"push to {remote}/{branch} rejected {attempts} times",
                hint="another writer keeps moving the branch; the next pass will try again",
            )
        log.warning("push rejected; recomputing on the new tip", attempt=attempts)
        # Drop our commits and recompute on the new tip; never rebase a lock over a
        # change someone else made to it.
        repo.reset_keep(repo.fetch(remote, branch))
        await asyncio.sleep(random.uniform(0.05, 0.25) * attempts)


def commit_plan(repo: GitRepo, plan: planner.Plan, config: Config) -> tuple[str, ...]:
    """The pass's commits on the checked-out branch, built together and landed with one move
    of the branch; returns their shas, oldest first."""
    shas = tuple(repo.commit_chain([(c.files, c.message) for c in plan.commits], config.git.author))
    for sha, commit in zip(shas, plan.commits, strict=True):
        log.info("committed", revision=sha[:12], subject=commit.subject)
    return shas


def _push(repo: GitRepo, remote: str, branch: str) -> bool:
    """Push; after a failure, fetch to learn whether it landed anyway (a hook that outlived a
    timeout, an answer lost on the way back) before anyone decides on a stale tracking ref."""
    try:
        return repo.push(remote, branch)
    except GitError as exc:
        try:
            tip = repo.fetch(remote, branch)
        except GitError:
            raise exc from None
        if tip == repo.head():
            log.warning("push reported a failure but the remote has the commits", error=str(exc))
            return True
        raise


def _push_review_branches(
    repo: GitRepo, plan: planner.Plan, config: Config, upstream: tuple[str, str] | None
) -> tuple[str, ...]:
    """``git.push: branch``: each stream's change on ``streamlock/<ns>-<stream>`` for review.

    Branches are built on the watched branch's tip without touching the working tree; a branch
    that already holds the same content is left alone, so passes do not churn review branches.
    """
    base = repo.head()
    chains: dict[tuple[str, str], list[planner.PlannedCommit]] = {}
    for commit in plan.commits:
        # locks/<ns>/<name>.lock.yaml: one stream per commit, except with grouping: pass
        streams = {tuple(p.split("/")[1:3]) for p in commit.files if p.startswith("locks/")}
        only = streams.pop() if len(streams) == 1 else None
        key = (only[0], only[1].removesuffix(".lock.yaml")) if only else ("all", "streams")
        if not commit.changes and controller.is_repair(commit.message):
            key = ("consumers", "follow")
        chains.setdefault(key, []).append(commit)
    ordered = sorted(chains.items())
    built = repo.create_chains(
        [[(c.files, c.message) for c in commits] for _, commits in ordered],
        config.git.author,
        base,
    )
    shas = []
    for ((namespace, stream), commits), made in zip(ordered, built, strict=True):
        parent = made[-1]
        name = review_branch(namespace, stream)
        if upstream is None:
            shas.append(parent)
            continue
        remote = upstream[0]
        current = repo.remote_sha(remote, name)
        if current is not None:
            repo.fetch(remote, name)
            if _same_pins(repo, current, parent, commits):
                continue
        if not repo.push_branch(remote, parent, name, current):
            raise PushRejected(f"review branch {name} moved while updating it")
        log.info("review branch pushed", branch=name, revision=parent[:12])
        shas.append(parent)
    return tuple(shas)


def _same_pins(repo: GitRepo, old: str, new: str, commits: Sequence[planner.PlannedCommit]) -> bool:
    """Whether a review branch already proposes these pins (import times aside)."""
    if repo.tree(old) == repo.tree(new):
        return True
    paths = {path for commit in commits for path in commit.files}
    return all(
        _unstamped(repo.read(p, old)) == _unstamped(repo.read(p, new))
        if p.startswith("locks/")
        else repo.read(p, old) == repo.read(p, new)  # a consumer: its bytes
        for p in paths
    )


def _unstamped(data: bytes | None) -> StreamLock | None:
    if data is None:
        return None
    lock = loads(data)
    tags = {
        tag: replace(
            entry,
            imported_at=None,
            history=tuple(replace(item, imported_at=None) for item in entry.history),
        )
        for tag, entry in lock.tags.items()
    }
    return replace(lock, tags=tags)


def _open_quietly(root: Path) -> GitRepo | None:
    """``plan`` also works outside Git (then the revert rule has no bases)."""
    try:
        return GitRepo.open(root)
    except GitError:
        return None
