"""Commands for people, mirroring ``oc``: describe, history, resolve, tag, rollback, set.

Thin: read the repository, call the pure views (``inspect.py``) and edits (``streamedit.py``),
write the files. Writing commands only change what people own in review (stream files) — except
``rollback``, which writes the lock the way ``git revert`` of a bump would. ``--commit`` commits
the changed files with the user's own git identity; without it the files are only edited, ready
for a pull request. Data goes to stdout, messages to stderr.
"""

from __future__ import annotations

import codecs
import difflib
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from reconciler import inspect, streamedit, trailers
from reconciler.config import Config, load_config
from reconciler.console import (
    complete_names,
    notify,
    output_option,
    repo_option,
    resolve_repo,
    table,
)
from reconciler.errors import GitError, InputError
from reconciler.gitrepo import GitRepo, TrailerIndex
from reconciler.imagestream import (
    DOCKER_IMAGE,
    HOLD_ANNOTATION,
    IMAGE_STREAM_IMAGE,
    IMAGE_STREAM_TAG,
    ImageStream,
    StreamSet,
    TagReference,
    TagSpec,
    load_streams,
    parse_streams,
)
from reconciler.inspect import ObjectName, short_digest
from reconciler.lockfile import LockEntry, StreamLock, dumps, loads, lock_path
from reconciler.reconcile import FAILURES_FILE, last_failures
from reconciler.reference import ImageReference

SOURCE_KINDS = {
    "docker": DOCKER_IMAGE,
    "istag": IMAGE_STREAM_TAG,
    "imagestreamtag": IMAGE_STREAM_TAG,
    "isimage": IMAGE_STREAM_IMAGE,
    "imagestreamimage": IMAGE_STREAM_IMAGE,
}
RECOVER_COMMITS = 20  # reconciler commits searched for a rolled-back image's full lock entry


# --- reading the repository ----------------------------------------------------------------------


@dataclass(slots=True)
class _Repo:
    """The repository as the commands see it, loaded once per command."""

    root: Path
    config: Config
    streamset: StreamSet
    locks: dict[tuple[str, str], StreamLock | None] = field(default_factory=dict)

    @classmethod
    def load(cls, repo: Path | None) -> _Repo:
        root = resolve_repo(repo).resolve()
        config = load_config(root)
        return cls(root, config, load_streams(root, config))

    @property
    def streams(self) -> dict[tuple[str, str], ImageStream]:
        return {stream.key: stream for stream in self.streamset.streams}

    def default_namespace(self, option: str | None) -> str:
        return option or self.config.default_namespace

    def stream(self, name: ObjectName) -> ImageStream:
        stream = self.streams.get(name.key)
        if stream is not None:
            return stream
        hint = "'streamlock validate' shows why a stream file is skipped"
        if not self.streamset.problems:
            hint = f"no file under streams/ defines it (namespace {name.namespace!r})"
        raise InputError(f"image stream {name.namespace}/{name.stream} not found", hint=hint)

    def lock(self, namespace: str, name: str) -> StreamLock | None:
        """One stream's lock (only that file is read), or None before the first reconcile."""
        key = (namespace, name)
        if key not in self.locks:
            relative = lock_path(namespace, name)
            data = _read(self.root, relative)
            self.locks[key] = loads(data, relative) if data is not None else None
        return self.locks[key]

    def location(self, namespace: str, name: str, path: str) -> streamedit.StreamLocation:
        implied = streamedit.implied_namespace(path, self.config.default_namespace)
        return streamedit.StreamLocation(path, namespace, name, implied)


def _checked(root: Path, relative: str) -> Path:
    """A path inside the repository with no symlink on the way (DESIGN.md §9)."""
    target = root
    for part in Path(relative).parts:
        if part in ("..", "") or Path(part).is_absolute():
            raise InputError(f"refusing path {relative!r}: not inside the repository")
        target = target / part
        if target.is_symlink():
            raise InputError(f"refusing {relative}: {target.relative_to(root)} is a symlink")
    return target


def _read(root: Path, relative: str) -> bytes | None:
    path = _checked(root, relative)
    return path.read_bytes() if path.is_file() else None


def _decode(data: bytes | None, relative: str) -> str:
    """A stream file's text, without a byte-order mark (``_encode`` puts it back)."""
    if data is None:
        raise InputError(f"{relative} is gone", hint="run the command again")
    try:
        return data.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{relative}: not valid UTF-8") from exc


def _encode(text: str, like: bytes | None) -> bytes:
    """Text back to bytes, keeping a byte-order mark the file had."""
    data = text.encode("utf-8")
    return codecs.BOM_UTF8 + data if like is not None and like.startswith(codecs.BOM_UTF8) else data


# --- writing and committing ----------------------------------------------------------------------


def _in_git(git: GitRepo, root: Path, relative: str) -> str:
    """A path relative to the repository ``root`` as Git names it (``root`` may be a subfolder)."""
    return (root / relative).relative_to(git.root).as_posix()


@dataclass(frozen=True, slots=True)
class _Change:
    """What a writing command changes, and what it tells the person about it."""

    files: Mapping[str, bytes]
    subject: str
    body: str
    said: tuple[str, ...] = ()  # lines printed once the change is sure to happen
    next_step: str = ""  # printed after the files are written or committed


def _diff(repo: _Repo, changed: Mapping[str, bytes]) -> str:
    """A unified diff of what a change would write, for --dry-run."""
    out: list[str] = []
    for path in sorted(changed):
        before = _read(repo.root, path)
        old = _decode(before, path).splitlines(keepends=True) if before is not None else []
        new = _decode(changed[path], path).splitlines(keepends=True)
        label = "/dev/null" if before is None else f"a/{path}"
        out += difflib.unified_diff(old, new, label, f"b/{path}")
    return "".join(line if line.endswith("\n") else line + "\n" for line in out)


def _apply(repo: _Repo, change: _Change, commit: bool, dry_run: bool = False) -> bool:
    """Write (or commit) the files whose bytes change; False when nothing changes. With
    ``dry_run`` print the diff on stdout and write nothing."""
    changed = {path: data for path, data in change.files.items() if _read(repo.root, path) != data}
    if not changed:
        notify("✓ nothing to change: the files already say this")
        return False
    if dry_run:
        for line in change.said:
            notify(line)
        click.echo(_diff(repo, changed), nl=False)
        notify(f"✓ dry run: {', '.join(sorted(changed))} not written")
        return True
    git = GitRepo.open(repo.root) if commit else None
    paths = dict(changed)
    if git is not None:
        paths = {_in_git(git, repo.root, path): data for path, data in changed.items()}
        if not git.is_clean(sorted(paths)):
            raise InputError(
                f"{', '.join(sorted(changed))} has uncommitted changes",
                hint="commit or stash them first, or run without --commit",
            )
        try:
            author = git.user_identity()
        except GitError as exc:
            raise GitError(exc.message, hint=f"{exc.hint}, or run without --commit") from exc
    for line in change.said:
        notify(line)
    if git is None:
        for path in sorted(changed):
            target = _checked(repo.root, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.streamlock-tmp")
            tmp.write_bytes(changed[path])
            tmp.replace(target)
        notify(f"✓ edited {', '.join(sorted(changed))}")
        notify("  review the change and commit it, or run again with --commit")
    else:
        message = trailers.format_message(change.subject, change.body, [])
        sha = git.commit(paths, message, author)
        notify(f"✓ committed {sha[:12]} {change.subject}")
    if change.next_step:
        notify(f"  {change.next_step}")
    return True


# --- options -------------------------------------------------------------------------------------


def _namespace_option(func: Any) -> Any:
    return click.option(
        "-n",
        "--namespace",
        "namespace",
        metavar="NAMESPACE",
        help="Namespace of names given without one (default: defaultNamespace in streamlock.yaml).",
    )(func)


def _commit_option(func: Any) -> Any:
    return click.option(
        "--commit",
        is_flag=True,
        help="Commit the change with your git identity (default: only edit the files).",
    )(func)


def _view_command(name: str, metavar: str) -> Callable[[Callable[..., None]], click.Command]:
    """A read command: one NAME argument, then -n, -o and --repo."""

    def wrap(func: Callable[..., None]) -> click.Command:
        for option in (repo_option, output_option, _namespace_option):
            func = option(func)
        argument = click.argument("name", metavar=metavar, shell_complete=complete_names)
        return click.command(name)(argument(func))

    return wrap


def _emit(data: Any, output: str, text: Callable[[], str]) -> None:
    if output == "table":
        click.echo(text(), nl=False)
    else:
        click.echo(inspect.render_data(data, output), nl=False)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# --- describe / history / resolve ----------------------------------------------------------------


@_view_command("describe", "NAMESPACE/STREAM[:TAG]")
def describe(name: str, namespace: str | None, output: str, repo: Path | None) -> None:
    """Show an image stream, like 'oc describe is'.

    For each tag: where its image comes from, the current image and the images before it.
    """
    ctx = _Repo.load(repo)
    target = inspect.parse_stream_name(name, ctx.default_namespace(namespace))
    stream = ctx.stream(target)
    view = inspect.describe(stream, ctx.lock(*target.key), target.tag, _bases(ctx), _failures(ctx))
    now = _now()
    _emit(
        view.to_dict(),
        output,
        lambda: inspect.render_describe(view, now, ctx.config.import_interval),
    )


@_view_command("history", "NAMESPACE/STREAM:TAG")
def history(name: str, namespace: str | None, output: str, repo: Path | None) -> None:
    """List the images a tag pointed at, newest first.

    REVISION is what 'rollback --to' takes; IMAGE is a digest prefix that
    NAMESPACE/STREAM@sha256:PREFIX names accept.
    """
    ctx = _Repo.load(repo)
    target = inspect.parse_tag_name(name, ctx.default_namespace(namespace))
    assert target.tag is not None
    entry = inspect.tag_entry(ctx.stream(target), ctx.lock(*target.key), target.tag)
    items = inspect.revisions(entry)
    now = _now()
    _emit(
        [inspect.revision_data(revision, item) for revision, item in enumerate(items)],
        output,
        lambda: table(inspect.history_rows(items, now), inspect.HISTORY_HEADERS) + "\n",
    )


@_view_command("resolve", "NAMESPACE/STREAM:TAG|NAMESPACE/STREAM@sha256:PREFIX")
def resolve(name: str, namespace: str | None, output: str, repo: Path | None) -> None:
    """Print the pull spec a tag or a stream image resolves to.

    Only the pull spec (the lock's dockerImageReference) goes to stdout, for scripts.
    """
    ctx = _Repo.load(repo)
    target = inspect.parse_image_name(name, ctx.default_namespace(namespace))
    found = inspect.resolve(ctx.stream(target), ctx.lock(*target.key), target)
    _emit(found.to_dict(), output, lambda: found.docker_image_reference + "\n")


# --- tag -----------------------------------------------------------------------------------------


_WORDS = {DOCKER_IMAGE: "import", IMAGE_STREAM_TAG: "alias", IMAGE_STREAM_IMAGE: "promotion"}


def _written_in(source: TagReference, namespace: str) -> TagReference:
    """``source`` as a tag in ``namespace`` writes it: ``from.namespace`` only for another one."""
    return replace(source, namespace=None) if source.namespace == namespace else source


def _shown(ref: TagReference, digits: int = inspect.MIN_PREFIX) -> str:
    """A ``from`` for messages: the pull spec, ``app:test``, or ``app@sha256:`` and ``digits``."""
    if ref.kind == IMAGE_STREAM_IMAGE:
        stream, _, digest = ref.name.partition("@")
        return f"{stream}@{short_digest(digest, digits)}"
    return ref.name


def _is_pull_spec(text: str) -> bool:
    """True when ``text`` reads as a registry image (SRC given without --source=docker?)."""
    try:
        ImageReference.parse(text)
    except InputError:
        return False
    return True


def _names_registry(text: str) -> bool:
    """True when SRC starts with a registry host (``quay.io/…``, ``localhost:5000/…``), which no
    image stream name can: then it is a registry image, as ``oc tag`` infers."""
    first, slash, _ = text.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost")


def _tag_source(
    ctx: _Repo,
    text: str,
    default_namespace: str,
    kind: str | None,
    alias: bool,
) -> tuple[TagReference, ObjectName | None]:
    """The ``from`` a ``tag`` writes (with the namespace of a stream source), and the stream name
    it came from (None for a pull spec)."""
    if kind == DOCKER_IMAGE:
        if alias:
            raise click.UsageError("--alias needs an image stream tag as SRC, not --source=docker")
        reference = ImageReference.parse(text)
        if not ctx.config.registry_allowed(reference.registry):
            raise InputError(
                f"registry {reference.registry} is not in allowedRegistries",
                hint="add it to allowedRegistries in streamlock.yaml",
            )
        return TagReference(DOCKER_IMAGE, text), None
    try:
        src = inspect.parse_image_name(text, default_namespace)
        if kind == IMAGE_STREAM_TAG and src.tag is None:
            raise click.UsageError(f"--source=istag needs SRC as STREAM:TAG, got {text!r}")
        if kind == IMAGE_STREAM_IMAGE and src.digest is None:
            raise click.UsageError(f"--source=isimage needs SRC as STREAM@sha256:…, got {text!r}")
        stream = ctx.stream(src)
    except InputError as exc:
        if kind is not None or not _is_pull_spec(text):
            raise
        hints = [exc.hint] if exc.hint else []
        hint = "; ".join([*hints, "for a registry image, add --source=docker"])
        raise click.UsageError(f"{exc.message}; {hint}") from exc
    if alias:
        if src.tag is None:
            raise click.UsageError("--alias needs SRC as STREAM:TAG, not an image digest")
        if stream.tag(src.tag) is None:
            raise InputError(
                f"{src} is not a tag",
                hint=f"'streamlock describe {src.namespace}/{src.stream}' lists the tags",
            )
        return TagReference(IMAGE_STREAM_TAG, f"{src.stream}:{src.tag}", src.namespace), src
    lock = ctx.lock(*src.key)
    if src.tag is not None:
        digest = inspect.tag_entry(stream, lock, src.tag).image
    else:
        assert src.digest is not None
        digest = inspect.match_digest(src.digest, inspect.lock_digests(lock), str(src))
    return TagReference(IMAGE_STREAM_IMAGE, f"{src.stream}@{digest}", src.namespace), src


def _edit_streams(
    ctx: _Repo,
    destinations: Sequence[ObjectName],
    edit: Callable[[str, streamedit.StreamLocation, ObjectName], str],
    *,
    create: bool,
) -> dict[str, bytes]:
    """Apply ``edit`` for each destination to its stream file; new files for new streams."""
    texts: dict[str, str] = {}
    originals: dict[str, bytes | None] = {}
    streams = ctx.streams
    for dst in destinations:
        stream = streams.get(dst.key)
        if stream is None and not create:
            stream = ctx.stream(dst)  # raises "not found"
        if stream is not None:
            path = stream.path
        else:
            path = streamedit.stream_file_path(dst.namespace, dst.stream)
        if path not in texts:
            originals[path] = _read(ctx.root, path)
            if stream is None:
                _check_new_stream(ctx, dst, path, originals[path])
                texts[path] = streamedit.new_stream_text(dst.namespace, dst.stream)
            else:
                texts[path] = _decode(originals[path], path)
        texts[path] = edit(texts[path], ctx.location(dst.namespace, dst.stream, path), dst)
    files = {path: _encode(texts[path], originals[path]) for path in texts}
    _check_edited(ctx, files, destinations)
    return files


def _check_edited(ctx: _Repo, files: Mapping[str, bytes], edited: Sequence[ObjectName]) -> None:
    """Refuse an edit after which an edited stream no longer loads.

    The other fields of a tag are kept, and some of them do not go with every ``from``
    (``reference: true`` needs a digest pull spec): the loader says so before anything is written.
    """
    result = parse_streams(files, ctx.config)
    loaded = {stream.key for stream in result.streams}
    broken = sorted(
        {f"{name.namespace}/{name.stream}" for name in edited if name.key not in loaded}
    )
    if broken:
        problems = "; ".join(str(problem) for problem in result.problems)
        raise InputError(
            f"the edit would make image stream {', '.join(broken)} invalid: {problems}",
            hint="change the conflicting fields by hand, or pick another destination",
        )


def _check_new_stream(ctx: _Repo, dst: ObjectName, path: str, existing: bytes | None) -> None:
    if existing is not None:
        raise InputError(
            f"{path} exists but does not define image stream {dst.namespace}/{dst.stream}",
            hint="add the stream to that file by hand, or fix it (streamlock validate)",
        )
    if ctx.streamset.problems:
        raise InputError(
            f"image stream {dst.namespace}/{dst.stream} not found, and some stream files do not "
            "load, so it may be defined in one of them",
            hint="fix them first (streamlock validate)",
        )


def _subject(destinations: Sequence[ObjectName], action: str) -> str:
    """``shop/app: tag prod, stage …`` for one stream, ``tag shop/app:prod, …`` for several."""
    streams = sorted({dst.key for dst in destinations})
    if len(streams) == 1:
        namespace, stream = streams[0]
        tags = ", ".join(dst.tag or "" for dst in destinations)
        return f"{namespace}/{stream}: {action} {tags}"
    return f"{action} " + ", ".join(str(dst) for dst in destinations)


def _followers(ctx: _Repo, targets: Sequence[ObjectName]) -> list[tuple[ObjectName, TagSpec]]:
    """The tags (other than ``targets``) that follow one of ``targets``."""
    wanted = {str(t) for t in targets}
    found = []
    for stream in ctx.streamset.streams:
        for spec in stream.tags:
            if spec.source.kind != IMAGE_STREAM_TAG:
                continue
            name = ObjectName(stream.namespace, stream.name, spec.name)
            upstream = inspect.followed(spec.source, stream.namespace, stream.name)
            if str(upstream) in wanted and str(name) not in wanted:
                found.append((name, spec))
    return found


def _held(ctx: _Repo, names: Sequence[ObjectName]) -> list[str]:
    """Warnings for tags whose spec edit will not reach the lock: a hold keeps their image."""
    lines = []
    for name in names:
        stream = ctx.streams.get(name.key)
        spec = stream.tag(name.tag) if stream is not None and name.tag else None
        lock = ctx.lock(*name.key) if spec is not None and spec.hold is not None else None
        if spec is not None and lock is not None and name.tag in lock.tags:
            lines.append(
                f"! {name} is held ({spec.hold}): its lock keeps the current image until the "
                f"{HOLD_ANNOTATION} annotation is removed"
            )
    return lines


@click.command("tag")
@click.argument(
    "names", nargs=-1, required=True, metavar="[SRC] DST...", shell_complete=complete_names
)
@click.option(
    "--alias",
    is_flag=True,
    help="Make DST follow SRC (ImageStreamTag) instead of copying its current image.",
)
@click.option(
    "--source",
    "source_kind",
    type=click.Choice(sorted(SOURCE_KINDS)),
    help="What SRC is; docker: a registry pull spec (default: an image stream tag or image).",
)
@click.option(
    "--scheduled",
    is_flag=True,
    help="Re-import DST from the registry periodically (with --source=docker).",
)
@click.option("-d", "--delete", is_flag=True, help="Delete the DST tags from the spec.")
@click.option("--dry-run", is_flag=True, help="Print the change as a diff; write nothing.")
@_namespace_option
@_commit_option
@repo_option
def tag(
    names: tuple[str, ...],
    alias: bool,
    source_kind: str | None,
    scheduled: bool,
    delete: bool,
    dry_run: bool,
    namespace: str | None,
    commit: bool,
    repo: Path | None,
) -> None:
    """Point DST tags at SRC, like 'oc tag'.

    Only the stream files are edited; the next reconcile updates the locks.

    \b
    streamlock tag shop/app:test shop/app:prod          promote: pin prod to test's image
    streamlock tag --alias shop/app:test shop/app:prod  prod follows test
    streamlock tag --source=docker quay.io/org/app:1.4 shop/app:stable [--scheduled]
    streamlock tag -d shop/app:old
    """
    kind = SOURCE_KINDS.get(source_kind or "")
    if delete:
        if alias or source_kind or scheduled:
            raise click.UsageError("-d takes only the tags to delete")
        _delete_tags(names, namespace, commit, repo, dry_run)
        return
    if dry_run and commit:
        raise click.UsageError("--dry-run writes nothing, so it cannot --commit")
    if len(names) < 2:
        raise click.UsageError("expected SRC and at least one DST (or -d DST...)")
    if kind is None and _names_registry(names[0]):
        kind = DOCKER_IMAGE  # as oc tag infers: stream names have no registry host
    if scheduled and kind != DOCKER_IMAGE:
        raise click.UsageError("--scheduled applies to registry sources: add --source=docker")
    ctx = _Repo.load(repo)
    default = ctx.default_namespace(namespace)
    destinations = [inspect.parse_tag_name(text, default) for text in names[1:]]
    if len({str(d) for d in destinations}) != len(destinations):
        raise click.UsageError("a DST is given twice")
    source, src = _tag_source(ctx, names[0], default, kind, alias)
    for dst in destinations:
        if src is not None and not ctx.config.may_pull(src.namespace, dst.namespace):
            raise InputError(
                f"namespace {dst.namespace!r} may not use images of {src.namespace!r}",
                hint=f"grant it in streamlock.yaml access.{src.namespace}.pullers",
            )
        if alias and src is not None and inspect.follows(ctx.streams, src, dst):
            raise click.UsageError(
                f"{src} follows {dst} already; making {dst} follow it would be a cycle"
            )

    written = {str(dst): _written_in(source, dst.namespace) for dst in destinations}

    def edit(text: str, where: streamedit.StreamLocation, dst: ObjectName) -> str:
        assert dst.tag is not None
        return streamedit.set_tag(
            text, where, dst.tag, written[str(dst)], scheduled=scheduled or None
        )

    files = _edit_streams(ctx, destinations, edit, create=True)
    said = []
    lines = []
    for dst in destinations:
        ref = written[str(dst)]
        where = f"{ref.namespace}/" if ref.namespace else ""
        said.append(f"✓ {dst} → {ref.kind} {where}{_shown(ref)}")
        lines.append(f"{dst.tag}: {ref.kind} {ref.name}")
    held = _held(ctx, destinations)
    said += held
    word = f"{_WORDS[source.kind]}, scheduled" if scheduled else _WORDS[source.kind]
    origin = f" from {src}" if src is not None else ""
    change = _Change(
        files,
        subject=f"{_subject(destinations, 'tag')} ← {_shown(source, 7)} ({word})",
        body="\n".join([*lines, "", f"Made with streamlock tag{origin}."]),
        said=tuple(said),
        next_step="the next reconcile updates the lock" + (" of tags not held" if held else ""),
    )
    _apply(ctx, change, commit, dry_run)


def _delete_tags(
    names: Sequence[str],
    namespace: str | None,
    commit: bool,
    repo: Path | None,
    dry_run: bool = False,
) -> None:
    ctx = _Repo.load(repo)
    default = ctx.default_namespace(namespace)
    destinations = [inspect.parse_tag_name(text, default) for text in names]

    def edit(text: str, where: streamedit.StreamLocation, dst: ObjectName) -> str:
        assert dst.tag is not None
        return streamedit.delete_tag(text, where, dst.tag)

    files = _edit_streams(ctx, destinations, edit, create=False)
    said = [f"✓ {dst} deleted from the spec" for dst in destinations]
    said += [
        f"! {follower} follows a deleted tag and will fail until it changes"
        for follower, _ in _followers(ctx, destinations)
    ]
    step = "the next reconcile removes the lock entries; Git history keeps their past"
    change = _Change(
        files,
        subject=_subject(destinations, "delete tag"),
        body=step[0].upper() + step[1:] + ".",
        said=tuple(said),
        next_step=step,
    )
    _apply(ctx, change, commit, dry_run)


# --- rollback ------------------------------------------------------------------------------------


def _recover_entry(ctx: _Repo, name: ObjectName, digest: str) -> LockEntry | None:
    """The lock entry a reconciler commit wrote for this tag and image, for its platform details.

    Best effort: outside Git, or when no such commit is found, the history item alone is used.
    """
    assert name.tag is not None
    key = f"{name.namespace}/{name.stream}:{name.tag}"
    relative = lock_path(name.namespace, name.stream)
    try:
        git = GitRepo.open(ctx.root)
        path = _in_git(git, ctx.root, relative)
        for sha, message in git.messages("HEAD", grep=digest)[:RECOVER_COMMITS]:
            blocks = trailers.parse_message(message)
            if not any(b.tag == key and b.image == digest for b in blocks):
                continue
            data = git.read(path, sha)
            entry = loads(data, relative).tags.get(name.tag) if data is not None else None
            if entry is not None and entry.image == digest:
                return entry
    except (GitError, InputError, ValueError):
        return None
    return None


def _refuse_uncommitted(ctx: _Repo, paths: Sequence[str]) -> None:
    """--commit on files with uncommitted edits (an earlier rollback without --commit): say so
    before anything is computed from them."""
    git = GitRepo.open(ctx.root)
    dirty = [path for path in paths if not git.is_clean([_in_git(git, ctx.root, path)])]
    if dirty:
        raise InputError(
            f"{', '.join(dirty)} has uncommitted changes (an earlier rollback or edit not "
            "committed yet), so --commit would build on them",
            hint=f"commit them with 'git commit {' '.join(dirty)}', or drop them with "
            f"'git restore {' '.join(dirty)}' and run again",
        )


def _failures(ctx: _Repo) -> Mapping[str, Mapping[str, str]]:
    """The last failed imports this checkout's passes met (never in Git); empty outside Git."""
    try:
        git_dir = GitRepo.open(ctx.root).git_dir
    except GitError:
        return {}
    return last_failures(git_dir / "streamlock" / FAILURES_FILE)


def _bases(ctx: _Repo) -> Mapping[tuple[str, str], str]:
    """The revert rule's B per tag and source, from the trailers; empty outside Git."""
    try:
        return TrailerIndex(GitRepo.open(ctx.root), ctx.config.git.author).bases()
    except GitError:
        return {}


def _last_committed(ctx: _Repo, name: ObjectName, spec: TagSpec) -> str | None:
    """B of the revert rule: the image of the reconciler's newest commit for this tag and its
    ``from``, from the trailers on the checked-out branch; None outside Git or when none says."""
    try:
        bases = TrailerIndex(GitRepo.open(ctx.root), ctx.config.git.author).bases()
    except GitError:
        return None
    return bases.get((str(name), spec.source.identity(name.namespace, name.stream)))


def _roll_forward(
    ctx: _Repo,
    target: ObjectName,
    stream: ImageStream,
    spec: TagSpec,
    entry: LockEntry,
    waiting: str,
    commit: bool,
) -> None:
    """Back to the image a person reverted away from: the lock entry the reconciler committed
    for it (found through its trailers), as 'git revert' of the revert would leave it."""
    assert target.tag is not None
    recovered = _recover_entry(ctx, target, waiting)
    if recovered is None or recovered.source != spec.source:
        raise InputError(
            f"{target}: no reconciler commit on this branch records {short_digest(waiting)} "
            "for this source",
            hint=f"'git log --grep {waiting[7:19]}' shows where it went",
        )
    lock = ctx.lock(*target.key)
    assert lock is not None
    new_lock = replace(lock, tags={**lock.tags, target.tag: recovered}, source_path=stream.path)
    change = _Change(
        {lock_path(*target.key): dumps(new_lock)},
        subject=(
            f"{target.namespace}/{target.stream}: roll {target.tag} forward "
            f"{trailers.short_hex(entry.image)} → {trailers.short_hex(waiting)}"
        ),
        body="Back to the image the reconciler committed before a revert.",
        said=(
            f"✓ {target} rolled forward to {short_digest(waiting)}, the image a revert moved it "
            f"away from (was {short_digest(entry.image)})",
        ),
        next_step="the reconciler keeps following the source from here",
    )
    _apply(ctx, change, commit)


@click.command("rollback")
@click.argument("name", metavar="NAMESPACE/STREAM:TAG", shell_complete=complete_names)
@click.option(
    "--to",
    "to",
    metavar="N|+1|sha256:PREFIX",
    help="The revision (from 'streamlock history') or image to go back to (default: 1); +1 "
    "(or its digest) rolls forward to an image a revert moved the tag away from.",
)
@click.option(
    "--pin",
    is_flag=True,
    help="Pin the image in the spec (ImageStreamImage) instead of rolling back the lock.",
)
@_namespace_option
@_commit_option
@repo_option
def rollback(
    name: str,
    to: str | None,
    pin: bool,
    namespace: str | None,
    commit: bool,
    repo: Path | None,
) -> None:
    """Go back to an earlier image of a tag.

    A tag imported from a registry or following another tag is rolled back in its lock, exactly
    as 'git revert' of the bumps would; the output says how long the revert rule keeps it. With
    --pin (and for tags that are pins already) the spec is changed instead, and the image stays
    until a person changes the spec.
    """
    ctx = _Repo.load(repo)
    target = inspect.parse_tag_name(name, ctx.default_namespace(namespace))
    assert target.tag is not None
    stream = ctx.stream(target)
    spec = stream.tag(target.tag)
    if spec is None:
        raise InputError(
            f"{target} is not a tag",
            hint=f"'streamlock describe {target.namespace}/{target.stream}' lists the tags",
        )
    if commit:
        _refuse_uncommitted(ctx, [lock_path(*target.key), stream.path])
    lock = ctx.lock(*target.key)
    entry = inspect.tag_entry(stream, lock, target.tag)
    waiting = _last_committed(ctx, target, spec)
    if (
        to is not None
        and waiting is not None
        and waiting != entry.image
        and (to == "+1" or waiting.startswith(inspect.SHA256 + to.removeprefix(inspect.SHA256)))
        and len(to.removeprefix(inspect.SHA256)) >= (2 if to == "+1" else inspect.MIN_PREFIX)
        and waiting not in {item.image for item in inspect.revisions(entry)}
    ):
        _roll_forward(ctx, target, stream, spec, entry, waiting, commit)
        return
    revision = inspect.rollback_revision(entry, to, str(target))
    item = inspect.revisions(entry)[revision]
    was = short_digest(entry.image)
    goal = short_digest(item.image)
    when = inspect.age(item.imported_at, _now())
    mode = inspect.rollback_mode(spec, pin)
    if mode == inspect.ROLLBACK_SPEC:
        source = inspect.pin_source(stream, spec, item.image)

        def edit(text: str, where: streamedit.StreamLocation, dst: ObjectName) -> str:
            assert dst.tag is not None
            return streamedit.set_tag(text, where, dst.tag, source)

        files = _edit_streams(ctx, [target], edit, create=False)
        held = _held(ctx, [target])
        said = (
            f"✓ {target} pinned to {_shown(source)} (revision {revision}, imported {when}) "
            f"in {stream.path}",
            "  The spec now pins this image: it stays until someone changes the tag's 'from' "
            f"(it was {spec.source.kind} {spec.source.name}).",
            *held,
        )
        change = _Change(
            files,
            subject=(
                f"{target.namespace}/{target.stream}: pin {target.tag} to "
                f"{_shown(source)} (rollback)"
            ),
            body=(
                f"{target.tag}: {source.kind} {source.name}\n"
                f"It was {spec.source.kind} {spec.source.name}, image {entry.image}."
            ),
            said=said,
            next_step="" if held else "the next reconcile updates the lock",
        )
        _apply(ctx, change, commit)
        return
    assert lock is not None
    if entry.source != spec.source or entry.spec_hash != spec.spec_hash(target.namespace):
        raise InputError(
            f"the spec of {target} changed since its last import, so the next reconcile "
            "re-imports it anyway",
            hint="reconcile first, or use --pin",
        )
    recovered = _recover_entry(ctx, target, item.image)
    new_entry = inspect.rolled_back(entry, revision, recovered)
    new_lock = replace(lock, tags={**lock.tags, target.tag: new_entry}, source_path=stream.path)
    bumps = "bump" if revision == 1 else f"{revision} bumps"
    followers = [str(tag) for tag, tag_spec in _followers(ctx, [target]) if tag_spec.hold is None]
    follow = "follows" if len(followers) == 1 else "follow"
    explanation = " ".join(
        [
            f"The lock now pins {goal}, as 'git revert' of the last {bumps} would.",
            inspect.rollback_outlook(stream, spec, item.image, _last_committed(ctx, target, spec)),
            *(
                [f"{', '.join(followers)} {follow} it back on the next reconcile."]
                if followers
                else []
            ),
            "For a pin that stays until someone changes the spec, use --pin.",
        ]
    )
    change = _Change(
        {lock_path(*target.key): dumps(new_lock)},
        subject=(
            f"{target.namespace}/{target.stream}: roll back {target.tag} "
            f"{trailers.short_hex(entry.image)} → {trailers.short_hex(item.image)}"
        ),
        body=textwrap.fill(explanation, 72),
        said=(
            f"✓ {target} rolled back to revision {revision}: {goal} (imported {when}), was {was}",
            textwrap.fill(explanation, 98, initial_indent="  ", subsequent_indent="  "),
        ),
    )
    _apply(ctx, change, commit)


# --- set image-lookup ----------------------------------------------------------------------------


@click.group("set")
def set_group() -> None:
    """Change a setting of image streams, like 'oc set'."""


@set_group.command("image-lookup")
@click.argument(
    "names", nargs=-1, required=True, metavar="NAMESPACE/STREAM...", shell_complete=complete_names
)
@click.option(
    "--enabled/--disabled",
    default=True,
    show_default=True,
    help="Let consumers in the namespace use short stream:tag image names.",
)
@_namespace_option
@_commit_option
@repo_option
def image_lookup(
    names: tuple[str, ...], enabled: bool, namespace: str | None, commit: bool, repo: Path | None
) -> None:
    """Set spec.lookupPolicy.local, like 'oc set image-lookup'.

    With it, 'streamlock render' resolves short stream:tag image names in the namespace's
    manifests.
    """
    ctx = _Repo.load(repo)
    default = ctx.default_namespace(namespace)
    targets = [inspect.parse_stream_name(text, default) for text in names]
    for target in targets:
        if target.tag is not None:
            raise click.UsageError(f"{target}: image lookup is set per stream, not per tag")

    def edit(text: str, where: streamedit.StreamLocation, dst: ObjectName) -> str:
        return streamedit.set_lookup_policy(text, where, enabled)

    files = _edit_streams(ctx, targets, edit, create=False)
    value = "true" if enabled else "false"
    streams = sorted({f"{t.namespace}/{t.stream}" for t in targets})
    subject = (
        f"{streams[0]}: set image lookup local={value}"
        if len(streams) == 1
        else f"set image lookup local={value} on {', '.join(streams)}"
    )
    said = tuple(f"✓ {name}: image lookup local={value}" for name in streams)
    spaces = ", ".join(sorted({t.namespace for t in targets}))
    step = (
        f"'streamlock render' then resolves short stream:tag images in namespace {spaces}"
        if enabled
        else f"'streamlock render' leaves short stream:tag images in namespace {spaces} alone"
    )
    _apply(ctx, _Change(files, subject, "", said, next_step=step), commit)


# --- hold / unhold -------------------------------------------------------------------------------


def _hold_edit(
    names: Sequence[str], namespace: str | None, repo: Path | None, reason: str | None
) -> tuple[_Repo, list[ObjectName], dict[str, bytes]]:
    ctx = _Repo.load(repo)
    default = ctx.default_namespace(namespace)
    targets = [inspect.parse_tag_name(text, default) for text in names]
    for target in targets:
        assert target.tag is not None
        if ctx.stream(target).tag(target.tag) is None:
            raise InputError(
                f"{target} is not a tag",
                hint=f"'streamlock get istag -n {target.namespace}' lists the tags",
            )

    def edit(text: str, where: streamedit.StreamLocation, dst: ObjectName) -> str:
        assert dst.tag is not None
        return streamedit.set_tag_annotation(text, where, dst.tag, HOLD_ANNOTATION, reason)

    return ctx, targets, _edit_streams(ctx, targets, edit, create=False)


@click.command("hold")
@click.argument(
    "names",
    nargs=-1,
    required=True,
    metavar="NAMESPACE/STREAM:TAG...",
    shell_complete=complete_names,
)
@click.option("--reason", default="held", show_default=True, help="Why; shown by plan/describe.")
@_namespace_option
@_commit_option
@repo_option
def hold(
    names: tuple[str, ...], reason: str, namespace: str | None, commit: bool, repo: Path | None
) -> None:
    """Keep tags on their current image: writes the streamlock.dev/hold annotation.

    The reconciler then never moves them (import-image neither) until 'streamlock unhold'.
    """
    if not reason.strip():
        raise click.UsageError("--reason must say something")
    ctx, targets, files = _hold_edit(names, namespace, repo, reason)
    said = tuple(f"✓ {target} held: {reason}" for target in targets)
    change = _Change(
        files,
        subject=f"{_subject(targets, 'hold')} ({reason})",
        body=f"Held with streamlock hold: {reason}.",
        said=said,
        next_step="the reconciler leaves these tags on their current image until unhold",
    )
    _apply(ctx, change, commit)


@click.command("unhold")
@click.argument(
    "names",
    nargs=-1,
    required=True,
    metavar="NAMESPACE/STREAM:TAG...",
    shell_complete=complete_names,
)
@_namespace_option
@_commit_option
@repo_option
def unhold(names: tuple[str, ...], namespace: str | None, commit: bool, repo: Path | None) -> None:
    """Let held tags move again: removes the streamlock.dev/hold annotation."""
    ctx, targets, files = _hold_edit(names, namespace, repo, None)
    change = _Change(
        files,
        subject=_subject(targets, "unhold"),
        body="Released with streamlock unhold.",
        said=tuple(f"✓ {target} no longer held" for target in targets),
        next_step="the next reconcile moves them to what their sources serve",
    )
    _apply(ctx, change, commit)


# --- get -----------------------------------------------------------------------------------------

_KINDS = {
    "is": "is",
    "imagestream": "is",
    "imagestreams": "is",
    "istag": "istag",
    "imagestreamtag": "istag",
    "imagestreamtags": "istag",
}


@click.command("get")
@click.argument("kind", type=click.Choice(sorted(_KINDS)), metavar="is|istag")
@click.argument("name", required=False, shell_complete=complete_names)
@_namespace_option
@output_option
@repo_option
def get(kind: str, name: str | None, namespace: str | None, output: str, repo: Path | None) -> None:
    """List image streams or stream tags, like 'oc get is' and 'oc get istag' (offline).

    Every namespace unless -n names one; NAME narrows to one stream (is) or STREAM[:TAG]
    (istag).
    """
    ctx = _Repo.load(repo)
    wanted = inspect.parse_stream_name(name, ctx.default_namespace(namespace)) if name else None
    now = _now()
    streams = [
        stream
        for key, stream in sorted(ctx.streams.items())
        if (namespace is None or stream.namespace == namespace)
        and (wanted is None or key == wanted.key)
    ]
    if wanted is not None and not streams:
        ctx.stream(wanted)  # raises "not found" with its hint
    if _KINDS[kind] == "is":
        data: list[dict[str, Any]] = []
        for stream in streams:
            lock = ctx.lock(stream.namespace, stream.name)
            times = [e.imported_at for e in (lock.tags.values() if lock else ()) if e.imported_at]
            data.append(
                {
                    "namespace": stream.namespace,
                    "name": stream.name,
                    "tags": [t.name for t in stream.tags],
                    "updated": max(times) if times else None,
                    "file": f"{stream.path}:{stream.line}",
                }
            )
        rows = [
            [d["namespace"], d["name"], ",".join(d["tags"]), inspect.age(d["updated"], now)]
            for d in data
        ]
        headers = ["NAMESPACE", "NAME", "TAGS", "UPDATED"]
    else:
        data = []
        for stream in streams:
            lock = ctx.lock(stream.namespace, stream.name)
            for spec in stream.tags:
                if wanted is not None and wanted.tag is not None and spec.name != wanted.tag:
                    continue
                entry = lock.tags.get(spec.name) if lock else None
                data.append(
                    {
                        "namespace": stream.namespace,
                        "name": f"{stream.name}:{spec.name}",
                        "image": entry.docker_image_reference if entry else None,
                        "updated": entry.imported_at if entry else None,
                        "held": spec.hold,
                    }
                )
        data.sort(key=lambda d: (d["namespace"], d["name"]))  # as plan's table: by name
        rows = [
            [
                d["namespace"],
                d["name"],
                d["image"] or "<not resolved yet>",
                inspect.age(d["updated"], now),
            ]
            for d in data
        ]
        headers = ["NAMESPACE", "NAME", "IMAGE REFERENCE", "UPDATED"]

    def text() -> str:
        return table(rows, headers) + "\n" if rows else ""

    _emit(data, output, text)
    if not rows and output == "table":
        notify("✓ no image streams" + (f" in namespace {namespace}" if namespace else ""))


COMMANDS: list[click.Command] = [
    describe,
    history,
    resolve,
    tag,
    rollback,
    set_group,
    hold,
    unhold,
    get,
]
