"""The rules of ``check-access``: one located violation per problem in a pull request.

Pure: the shell (``cli_access``) reads the facts out of Git (the changed files at the merge base
and at the head, the pull request's commits with what they did to locks) and this module judges
them. The rules in force are the base's ``streamlock.yaml``: a pull request cannot grant itself
what it asks for, except when its author is a config owner, whose config change is theirs to make.

- **stream-owner**: a changed stream file belongs to the namespaces of the streams it held before
  and holds after (and of its folder); the actor must be an owner of each one that has owners.
  So must the actor of a revert or rollback of a namespace's lock: which image runs is the
  owners' call.
- **lock-edit**: only the reconciler's commits (its identity as author and committer, signed when
  git verifies signatures), a ``git revert`` of them (exactly undoing one of its commits) and
  ``streamlock rollback --commit`` output (a lock where one tag went back to an image of its own
  history, nothing else changed) may touch ``locks/``; a merge may only take a parent's lock.
- **puller-grant**: a new cross-namespace reference needs a ``pullers`` grant of the source
  namespace.
- **config-owner**: changing ``streamlock.yaml`` (anything but a few pace settings) needs a config
  owner.

A namespace (or the config) without owners is open to everyone, as a CODEOWNERS path without owners
is; set ``configOwners`` first, or a pull request may name its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler import inspect, lockfile, schema, trailers
from reconciler.config import CONFIG_FILE, Config, parse_config
from reconciler.errors import InputError, Problem
from reconciler.imagestream import (
    LIST_KINDS,
    STREAM_SUFFIXES,
    STREAMS_DIR,
    ImageStream,
    folder_namespace,
    parse_streams,
)
from reconciler.schema import JsonPath

STREAM_OWNER = "stream-owner"
LOCK_EDIT = "lock-edit"
PULLER_GRANT = "puller-grant"
CONFIG_OWNER = "config-owner"
RULES = (STREAM_OWNER, LOCK_EDIT, PULLER_GRANT, CONFIG_OWNER)

# Settings anyone may change: how often and how much, not who, where from or what is trusted.
FREE_SETTINGS = frozenset({"importInterval", "historyLimit", "platform", "timeouts"})
GOOD_SIGNATURE = "G"
_REVERTS = re.compile(r"^This reverts commit ([0-9a-f]{40})\b", re.MULTILINE)
# Descriptive fields a rollback may take from an earlier reconciler commit (or leave empty).
_DESCRIPTIVE = {"platform": None, "labels": {}, "platforms": None, "index_digest": None}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who opened the pull request: a forge user name (or e-mail) and the teams they are in."""

    name: str
    teams: tuple[str, ...] = ()

    def is_one_of(self, owners: Iterable[str]) -> bool:
        """True when an owner names this actor: ``@name``, the e-mail, or one of its teams."""
        name = self.name.removeprefix("@").lower()
        teams = {team.removeprefix("@").lower() for team in self.teams}
        for owner in owners:
            bare = owner.removeprefix("@").lower()
            if bare == name or bare in teams:
                return True
        return False

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Violation:
    """One problem a pull request has, with the rule it breaks."""

    rule: str
    problem: Problem

    def __str__(self) -> str:
        return str(self.problem)


@dataclass(frozen=True, slots=True)
class FileChange:
    """A file the pull request changes: its bytes at the merge base and at the head."""

    path: str
    base: bytes | None  # None: the pull request adds it
    head: bytes | None  # None: the pull request deletes it


@dataclass(frozen=True, slots=True)
class CommitFacts:
    """One commit of the pull request, with what it did to ``locks/``."""

    sha: str
    author: tuple[str, str]
    committer: tuple[str, str]
    parents: tuple[str, ...]
    message: str
    paths: tuple[str, ...]  # every path it changes (for a merge: against its first parent)
    signature: str = "N"  # git's %G?
    locks: Mapping[str, tuple[bytes | None, bytes | None]] = field(default_factory=dict)
    parent_locks: Mapping[str, tuple[bytes | None, ...]] = field(default_factory=dict)  # merges
    reverted: CommitFacts | None = None  # the commit its message says it reverts, if found
    exact_revert: bool = False  # its changes are exactly that commit's, undone

    @property
    def subject(self) -> str:
        return self.message.strip().split("\n", 1)[0]

    @property
    def reverts(self) -> str | None:
        """The sha ``git revert`` wrote into the message, if any."""
        return reverted_sha(self.message)


def reverted_sha(message: str) -> str | None:
    """The commit a ``git revert`` message names (``This reverts commit <sha>.``), if any."""
    match = _REVERTS.search(message)
    return match.group(1) if match else None


@dataclass(frozen=True, slots=True)
class PullRequest:
    """Everything ``check-access`` judges, read by the shell."""

    actor: Actor
    config: Config  # the base's: the rules in force
    changes: tuple[FileChange, ...] = ()
    commits: tuple[CommitFacts, ...] = ()
    bot: tuple[str, str] = ("streamlock", "streamlock@localhost")  # git.author, parsed
    signed: bool = False  # git verifies signatures: the reconciler's commits must verify


def check(request: PullRequest) -> list[Violation]:
    """Every violation of the pull request, sorted by file and line."""
    found = [
        *config_violations(request),
        *stream_violations(request),
        *lock_owner_violations(request),
        *puller_violations(request),
        *lock_violations(request),
    ]
    return sorted(found, key=lambda v: (v.problem, v.rule))


# --- who is who ------------------------------------------------------------------------------


def is_config_owner(config: Config, actor: Actor) -> bool:
    """True for a config owner, and for everyone while no config owner is named."""
    return not config.config_owners or actor.is_one_of(config.config_owners)


def namespace_owners(config: Config, namespace: str) -> tuple[str, ...]:
    rule = config.access.get(namespace)
    return rule.owners if rule is not None else ()


def is_reconciler_commit(commit: CommitFacts, bot: tuple[str, str], signed: bool) -> bool:
    """The reconciler's own commit: its identity as author and committer, one parent at most,
    signed when signatures are verified, and only locks or its own trailer blocks."""
    return (
        commit.author == bot
        and commit.committer == bot
        and len(commit.parents) <= 1
        and (not signed or commit.signature == GOOD_SIGNATURE)
        and bool(commit.paths)
        and (
            all(path.startswith(f"{lockfile.LOCKS_DIR}/") for path in commit.paths)
            or bool(trailers.parse_message(commit.message))
        )
    )


# --- config-owner ----------------------------------------------------------------------------


def _document(data: bytes | None) -> schema.Document | None:
    if data is None:
        return None
    try:
        documents = schema.parse_documents(data, CONFIG_FILE)
    except InputError:
        return None
    return documents[0] if documents else None


def config_violations(request: PullRequest) -> Iterator[Violation]:
    """Changes to ``streamlock.yaml`` beyond the free settings, by someone not a config owner."""
    if is_config_owner(request.config, request.actor):
        return
    for change in request.changes:
        if change.path != CONFIG_FILE:
            continue
        before, after = _document(change.base), _document(change.head)
        if change.head is not None and after is None:
            yield Violation(
                CONFIG_OWNER,
                Problem(
                    CONFIG_FILE,
                    1,
                    1,
                    f"{request.actor} may not change {CONFIG_FILE} (it does not read as YAML "
                    f"any more); config owners: {_owners(request.config.config_owners)}",
                ),
            )
            continue
        old = before.data if before is not None and isinstance(before.data, Mapping) else {}
        new = after.data if after is not None and isinstance(after.data, Mapping) else {}
        for key in sorted(set(old) | set(new), key=str):
            if key in FREE_SETTINGS or old.get(key) == new.get(key):
                continue
            line, column = after.position((key,), key=True) if after and key in new else (1, 1)
            yield Violation(
                CONFIG_OWNER,
                Problem(
                    CONFIG_FILE,
                    line,
                    column,
                    f"{key}: {request.actor} may not change it; only config owners "
                    f"({_owners(request.config.config_owners)}) may",
                ),
            )


def _owners(owners: Sequence[str]) -> str:
    return ", ".join(owners) if owners else "none"


# --- stream-owner ----------------------------------------------------------------------------


def is_stream_file(path: str) -> bool:
    return path.startswith(f"{STREAMS_DIR}/") and path.endswith(STREAM_SUFFIXES)


def _streams(path: str, data: bytes | None, config: Config) -> tuple[ImageStream, ...]:
    if data is None:
        return ()
    return parse_streams({path: data}, config).streams


def _objects(path: str, data: bytes | None) -> dict[str, tuple[schema.Document, JsonPath]]:
    """``stream name -> (document, where its object is)`` of a stream file, for locations."""
    if data is None:
        return {}
    try:
        documents = schema.parse_documents(data, path)
    except InputError:
        return {}
    found: dict[str, tuple[schema.Document, JsonPath]] = {}
    for doc in documents:
        body = doc.data if isinstance(doc.data, Mapping) else {}
        items = body.get("items") if body.get("kind") in LIST_KINDS else None
        bases: list[JsonPath] = (
            [("items", i) for i in range(len(items))] if isinstance(items, list) else [()]
        )
        for base in bases:
            try:
                name = doc.get((*base, "metadata", "name"))
            except (KeyError, IndexError, TypeError):
                continue
            if isinstance(name, str):
                found.setdefault(name, (doc, base))
    return found


def _where(
    objects: Mapping[str, tuple[schema.Document, JsonPath]],
    path: str,
    stream: str,
    tail: JsonPath = ("metadata", "name"),
) -> tuple[int, int]:
    """Where ``tail`` of a stream's object was written (the object itself, else the file)."""
    if stream not in objects:
        return (1, 1)
    doc, base = objects[stream]
    return doc.position((*base, *tail))


def file_namespaces(change: FileChange, config: Config) -> dict[str, tuple[int, int]]:
    """``namespace -> (line, column)`` of the streams a stream file held before and holds
    after, and its folder's namespace (also for a file that does not parse)."""
    found: dict[str, tuple[int, int]] = {}
    for data in (change.head, change.base):
        objects = _objects(change.path, data) if data is change.head else {}
        for stream in _streams(change.path, data, config):
            found.setdefault(stream.namespace, _where(objects, change.path, stream.name))
    folder = folder_namespace(change.path)
    found.setdefault(folder if folder is not None else config.default_namespace, (1, 1))
    return found


def stream_violations(request: PullRequest) -> Iterator[Violation]:
    """Stream files of namespaces the actor does not own."""
    for change in request.changes:
        if not is_stream_file(change.path):
            continue
        for namespace, (line, column) in sorted(file_namespaces(change, request.config).items()):
            owners = namespace_owners(request.config, namespace)
            if owners and not request.actor.is_one_of(owners):
                verb = "delete" if change.head is None else "change"
                yield Violation(
                    STREAM_OWNER,
                    Problem(
                        change.path,
                        line,
                        column,
                        f"{request.actor} may not {verb} streams of namespace {namespace}; "
                        f"owners: {_owners(owners)}",
                    ),
                )


# --- puller-grant ----------------------------------------------------------------------------


def _references(streams: Iterable[ImageStream]) -> Iterator[tuple[ImageStream, Any]]:
    """(stream, tag) of every tag following or pinning another namespace's tag or image."""
    for stream in streams:
        for tag in stream.tags:
            source = tag.source
            if source.namespace and source.namespace != stream.namespace:
                yield stream, tag


def grants(request: PullRequest) -> Config:
    """The config whose ``pullers`` count: the head's when a config owner changed it."""
    if not is_config_owner(request.config, request.actor):
        return request.config
    for change in request.changes:
        if change.path == CONFIG_FILE and change.head is not None:
            try:
                return parse_config(change.head, CONFIG_FILE)
            except InputError:
                return request.config
    return request.config


def puller_violations(request: PullRequest) -> Iterator[Violation]:
    """Cross-namespace references the pull request adds without a ``pullers`` grant."""
    rules = grants(request)
    for change in request.changes:
        if not is_stream_file(change.path) or change.head is None:
            continue
        before = {
            (stream.key, tag.name, tag.source)
            for stream, tag in _references(_streams(change.path, change.base, request.config))
        }
        objects = _objects(change.path, change.head)
        for stream, tag in _references(_streams(change.path, change.head, request.config)):
            if (stream.key, tag.name, tag.source) in before:
                continue
            source = tag.source.namespace
            if rules.may_pull(source, stream.namespace):
                continue
            index = next(i for i, t in enumerate(stream.tags) if t is tag)
            line, column = _where(
                objects, change.path, stream.name, ("spec", "tags", index, "from", "namespace")
            )
            yield Violation(
                PULLER_GRANT,
                Problem(
                    change.path,
                    line,
                    column,
                    f"{stream.namespace}/{stream.name}:{tag.name} uses {tag.source.kind} "
                    f"{source}/{tag.source.name}, but namespace {stream.namespace} is not in "
                    f"access.{source}.pullers",
                ),
            )


# --- lock-edit -------------------------------------------------------------------------------


def _plain(entry: lockfile.LockEntry) -> lockfile.LockEntry:
    return replace(entry, **_DESCRIPTIVE)


def is_rollback(path: str, before: bytes | None, after: bytes | None) -> bool:
    """True when ``after`` is ``before`` with one tag rolled back to an image of its own
    history, as ``streamlock rollback --commit`` writes it (in the lock's canonical form)."""
    if before is None or after is None:
        return False
    try:
        old, new = lockfile.loads(before, path), lockfile.loads(after, path)
    except (InputError, ValueError):
        return False
    if old.key != new.key or set(old.tags) != set(new.tags) or lockfile.dumps(new) != after:
        return False
    changed = [tag for tag in old.tags if old.tags[tag] != new.tags[tag]]
    if len(changed) != 1:
        return False
    entry, goal = old.tags[changed[0]], _plain(new.tags[changed[0]])
    return any(
        _plain(inspect.rolled_back(entry, revision)) == goal
        for revision in range(1, len(inspect.revisions(entry)))
    )


def _lock_change_allowed(
    commit: CommitFacts, path: str, bot: tuple[str, str], signed: bool
) -> bool:
    if is_reconciler_commit(commit, bot, signed):
        return True
    if len(commit.parents) > 1:
        after = commit.locks.get(path, (None, None))[1]
        return after in commit.parent_locks.get(path, ())
    reverted = commit.reverted
    if (
        reverted is not None
        and commit.exact_revert
        and is_reconciler_commit(reverted, bot, signed)
        and set(commit.paths) <= set(reverted.paths)
    ):
        return True
    before, after = commit.locks.get(path, (None, None))
    return is_rollback(path, before, after)


def lock_violations(request: PullRequest) -> Iterator[Violation]:
    """Lock files changed by a commit that is none of the reconciler's, a revert of one, or a
    rollback; one violation per commit and lock."""
    for commit in request.commits:
        for path in sorted(commit.locks):
            if _lock_change_allowed(commit, path, request.bot, request.signed):
                continue
            yield Violation(
                LOCK_EDIT,
                Problem(
                    path,
                    1,
                    1,
                    f"changed by hand in {commit.sha[:12]} ({trailers.one_line(commit.subject)}): "
                    "only the reconciler's commits, a 'git revert' of them, or 'streamlock "
                    "rollback --commit' may change locks",
                ),
            )


# --- validate: pullers name namespaces that exist -----------------------------------------------


def unknown_puller_problems(data: bytes, path: str, known: Iterable[str]) -> list[Problem]:
    """``access.<ns>.pullers`` entries naming a namespace that has no streams and no ``access``
    entry: a typo there grants nobody, silently. ``known`` are the namespaces with streams."""
    try:
        documents = schema.parse_documents(data, path)
    except InputError:
        return []  # the config's own check reports it
    if not documents or not isinstance(documents[0].data, Mapping):
        return []
    doc = documents[0]
    access = doc.data.get("access")
    if not isinstance(access, Mapping):
        return []
    names = {*known, *(str(ns) for ns in access)}
    default = doc.data.get("defaultNamespace")
    names.add(default if isinstance(default, str) else Config().default_namespace)
    problems = []
    for namespace, rule in access.items():
        pullers = rule.get("pullers") if isinstance(rule, Mapping) else None
        for index, puller in enumerate(pullers if isinstance(pullers, list) else ()):
            if puller != "*" and puller not in names:
                problems.append(
                    doc.problem(
                        ("access", namespace, "pullers", index),
                        f"unknown namespace {puller!r}: no streams and no access entry name it",
                    )
                )
    return problems


def lock_owner_violations(request: PullRequest) -> Iterator[Violation]:
    """Locks a person's commit changes (a revert or a rollback) in namespaces the actor does not
    own; the reconciler's commits, and merges taking a parent's lock, belong to nobody."""
    seen: set[str] = set()
    for commit in request.commits:
        if is_reconciler_commit(commit, request.bot, request.signed):
            continue
        for path in sorted(commit.locks):
            after = commit.locks[path][1]
            if path in seen or (
                len(commit.parents) > 1 and after in commit.parent_locks.get(path, ())
            ):
                continue
            key = lockfile.path_key(path)
            if key is None:
                continue
            owners = namespace_owners(request.config, key[0])
            if owners and not request.actor.is_one_of(owners):
                seen.add(path)
                yield Violation(
                    STREAM_OWNER,
                    Problem(
                        path,
                        1,
                        1,
                        f"{request.actor} may not change the lock of namespace {key[0]} "
                        f"(in {commit.sha[:12]}); owners: {_owners(owners)}",
                    ),
                )
