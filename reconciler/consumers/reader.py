"""Finding and reading consumer files: the ``consumers:`` globs of ``streamlock.yaml``.

The shell around the pure consumer modules. A file's scan depends only on its bytes, its path
and the default namespace, so scans are cached by Git blob id in ``.git/streamlock/``: a no-op
pass reads and hashes the files but parses none it has seen before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from reconciler import cachefile, schema
from reconciler.config import Config, load_config
from reconciler.consumers import render
from reconciler.consumers.controller import Consumer
from reconciler.consumers.scan import Scan, is_consumer_file, scan
from reconciler.consumers.slots import Pin, pins
from reconciler.consumers.source import parse
from reconciler.errors import InputError, Problem, ValidationError

log = structlog.get_logger("streamlock")


def blob_id(data: bytes) -> str:
    """The id Git gives these bytes as a blob (so ``git ls-files -s`` agrees)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _code_id() -> str:
    """What the scans depend on besides the bytes: the code that makes them. A cache written by
    another version of these modules is dropped, never trusted."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


class ScanCache:
    """Scans by (blob id, path), kept in ``.git/streamlock/consumers.json``."""

    VERSION = 1

    def __init__(self, path: Path | None, default_namespace: str) -> None:
        self.path = path
        self.namespace = default_namespace
        self.entries: dict[str, Any] = {}
        self.used: set[str] = set()
        self.dirty = False
        self.parsed = 0  # files parsed in this pass (the benchmark counts them)
        self.code = _code_id() if path is not None else ""
        if path is not None:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if (
                    data.get("version") == self.VERSION
                    and data.get("code") == self.code
                    and data.get("namespace") == self.namespace
                ):
                    self.entries = dict(data["scans"])
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                self.entries = {}

    def scan(self, relative: str, data: bytes) -> Scan:
        key = f"{blob_id(data)} {relative}"
        self.used.add(key)
        cached = self.entries.get(key)
        if cached is not None:
            try:
                return Scan.from_dict(cached)
            except (KeyError, TypeError, ValueError):
                pass
        self.parsed += 1
        found = scan(relative, data, self.namespace)
        self.entries[key] = found.to_dict()
        self.dirty = True
        return found

    def remember(self, relative: str, data: bytes, found: Scan) -> None:
        """Add the scan of bytes a pass writes, so the next pass does not parse them again."""
        key = f"{blob_id(data)} {relative}"
        self.used.add(key)
        if key not in self.entries:
            self.entries[key] = found.to_dict()
            self.dirty = True

    def save(self) -> None:
        """Keep what this pass used; a cache that cannot be written is only a slower pass."""
        if self.path is None or not (self.dirty or set(self.entries) - self.used):
            return
        keep = {k: v for k, v in self.entries.items() if k in self.used}
        text = json.dumps(
            {"version": self.VERSION, "code": self.code, "namespace": self.namespace, "scans": keep}
        )
        cachefile.write_text(self.path, text, "consumer cache")


def find(root: Path, patterns: Sequence[str]) -> tuple[list[str], list[Problem]]:
    """Repository-relative consumer paths matching ``patterns``; a pattern matching nothing warns.

    Only regular files inside the repository count: links out of it are refused, ``.git`` and
    ``locks/`` never match.
    """
    real_root = schema._real(root)
    found: set[str] = set()
    problems: list[Problem] = []
    for pattern in patterns:
        if not pattern or Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            problems.append(
                Problem("streamlock.yaml", 1, 1, f"consumer glob {pattern!r} leaves the repository")
            )
            continue
        matched = 0
        for path in root.glob(pattern):
            relative = path.relative_to(root).as_posix()
            parts = relative.split("/")
            if parts[0] in (".git", "locks") or any(p.startswith(".") for p in parts):
                continue
            if not schema._real(path).is_relative_to(real_root):
                problems.append(Problem(relative, 1, 1, "symlink points outside the repository"))
                continue
            if path.is_file() and is_consumer_file(relative):
                found.add(relative)
                matched += 1
        if not matched and tuple(patterns) != Config().consumers:
            log.warning("consumer glob matches no file", glob=pattern)
    return sorted(found), problems


def load(
    root: Path, config: Config, cache: ScanCache, *, skip: Sequence[str] = ()
) -> tuple[list[Consumer], list[Problem]]:
    """Every consumer file under the configured globs, read and scanned."""
    paths, problems = find(root, config.consumers)
    consumers: list[Consumer] = []
    for relative in paths:
        if relative in skip:
            continue
        try:
            data = schema.read_repo_file(root, relative)
        except ValidationError as exc:
            problems.extend(exc.problems)
            continue
        consumers.append(Consumer(relative, data, cache.scan(relative, data)))
    return consumers, problems


# --- render: the lookup policy on manifests on their way to a cluster ----------------------------

_NOT_OBJECTS = ("streamlock.yaml", "kustomization.yaml", "kustomization.yml", "Kustomization")


def _lookup(root: Path, config: Config) -> tuple[frozenset[tuple[str, str]], dict[str, Pin]]:
    """The streams with local lookup, and every locked tag's pin, from the files alone."""
    from reconciler.imagestream import load_streams
    from reconciler.reconcile import load_locks

    streams = load_streams(root, config).streams
    local = frozenset(s.key for s in streams if s.lookup_local)
    return local, pins(load_locks(root))


def _manifests(root: Path, targets: Sequence[Path]) -> list[Path]:
    """The YAML/JSON files named, and those under the directories named (sorted; the streams,
    locks, config and kustomizations of the repository are not manifests)."""
    files: list[Path] = []
    for target in targets:
        if target.is_dir():
            found = sorted(
                p
                for p in target.rglob("*")
                if p.suffix in (".yaml", ".yml", ".json")
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(target).parts)
            )
            for path in found:
                relative = schema.repo_relative(root, path.resolve())
                if (
                    relative.startswith(("locks/", "streams/", ".git/"))
                    or path.name in _NOT_OBJECTS
                ):
                    continue
                files.append(path)
        elif target.is_file():
            files.append(target)
        else:
            raise InputError(f"{target}: no such file or directory")
    return files


def render_files(root: Path, targets: Sequence[Path], namespace: str | None = None) -> str:
    """A YAML stream of the manifests in ``targets``, short local-lookup images pinned.

    Everything is read and rendered before anything is returned, so a failure prints nothing.
    """
    config = load_config(root)
    local, found = _lookup(root, config)
    default = namespace or config.default_namespace
    out: list[str] = []
    for path in _manifests(root, targets):
        shown = schema.repo_relative(root, path.resolve())
        try:
            with path.open("rb") as handle:
                data = handle.read(schema.MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise InputError(f"{shown}: cannot read: {exc.strerror}") from exc
        source = parse(data, shown)
        if not source.documents:
            continue
        text = render.render_source(source, local, found, default).decode("utf-8-sig")
        text = text if text.endswith("\n") else text + "\n"
        out.append(text if text.startswith("---") else "---\n" + text)
    return "".join(out)


def render_krm(root: Path, text: str, namespace: str | None = None) -> str:
    """The KRM function: a ResourceList from kustomize in, the resolved ResourceList out."""
    config = load_config(root)
    local, found = _lookup(root, config)
    return render.render_resource_list(text, local, found, namespace or config.default_namespace)


# --- validate: consumer problems a pull request can fix before it merges -------------------------


def validate(root: Path) -> list[Problem]:
    """Located problems of the consumer files, offline: unreadable files, triggers that match no
    container, and tags the stream files do not declare (a tag added in the same change counts).
    """
    from reconciler.imagestream import load_streams

    try:
        config = load_config(root)
    except ValidationError:
        return []  # validate_repo reports the config itself
    declared = {
        f"{stream.namespace}/{stream.name}:{spec.name}"
        for stream in load_streams(root, config).streams
        for spec in stream.tags
    }
    cache = ScanCache(None, config.default_namespace)
    consumers, problems = load(root, config, cache)
    for consumer in consumers:
        problems += consumer.scan.problems
        problems += [
            Problem(
                consumer.path,
                slot.line,
                slot.column,
                f"{slot.origin}: {slot.tag} is not a tag of any image stream",
            )
            for slot in consumer.scan.slots
            if slot.tag not in declared
        ]
    return sorted(set(problems))
