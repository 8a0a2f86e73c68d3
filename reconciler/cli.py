"""The ``streamlock`` command line. Data on stdout, messages on stderr.

Exit codes: 0 success / nothing to change, 1 error, 2 changes (``plan``), 64 usage error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import operator
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import stamina

if "structlog" not in sys.modules and "rich" not in sys.modules:
    # structlog looks for rich when first imported (to draw tracebacks), and importing rich
    # costs a quarter of the command's start-up where another tool installed it. streamlock
    # does not depend on rich and logs plain text, so rich is hidden for that one import.
    sys.modules["rich"] = None  # type: ignore[assignment]
    try:
        import structlog
    finally:
        del sys.modules["rich"]

import structlog

from reconciler import __version__, status
from reconciler.cli_report import forge_options
from reconciler.config import Config
from reconciler.console import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    complete_names,
    github_annotation,
    gitlab_issue,
    notify,
    output_option,
    printable,
    repo_option,
    resolve_repo,
    table,
)
from reconciler.errors import ArgumentError, InputError, Problem, StreamlockError
from reconciler.inspect import render_data
from reconciler.lockfile import path_key
from reconciler.reconcile import PassOptions, PassResult, Resolver, run_pass
from reconciler.status import TagStatus

if TYPE_CHECKING:
    from reconciler.credentials import AuthEntry


# ---------------------------------------------------------------------------------------------
# Plumbing


def configure_logging(fmt: str, level: str) -> None:
    """One renderer for our logs and the libraries' (stderr only)."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "logfmt"
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    elif fmt == "logfmt":
        renderer = structlog.processors.LogfmtRenderer(key_order=["ts", "level", "msg"])
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.EventRenamer("msg"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)
    # A retry is progress, not a problem: one short line at info level (stamina's default hook
    # logs a warning with the call's arguments).
    stamina.instrumentation.set_on_retry_hooks([_log_retry])


def _log_retry(details: stamina.instrumentation.RetryDetails) -> None:
    structlog.get_logger("streamlock").info(
        "retrying",
        attempt=details.retry_num,
        wait_seconds=round(details.wait_for, 2),
        error=str(details.caused_by),
    )


AUTH_CONFIG_META = "streamlock.auth_config"  # where the group keeps --auth-config for commands


def _operator_auth(context: click.Context | None) -> tuple[AuthEntry, ...] | None:
    """The operator's credentials named by ``--auth-config``; None leaves the environment's."""
    from reconciler.credentials import load_operator_auth

    named = context.find_root().meta.get(AUTH_CONFIG_META) if context is not None else None
    return load_operator_auth(named) if named is not None else None


def registry_factory(config: Config, root: Path) -> Resolver:
    """The pass's registry client, with the operator's credentials (``--auth-config``); on a
    terminal it shows progress."""
    ctx = click.get_current_context(silent=True)
    fmt = ctx.find_root().params.get("log_format", "auto") if ctx is not None else "auto"
    progress = sys.stderr.isatty() and fmt != "json"
    return _ClientResolver(config, root, _operator_auth(ctx), progress=progress)


class Progress:
    """Tags resolved of the total and what is being waited on, redrawn on one stderr line of a
    terminal; a registry that never answers is never silence."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.waiting: dict[str, float] = {}  # reference -> loop time it started
        self.started = time.monotonic()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        text = f"resolving tags: {self.done}/{self.total} ({elapsed:.0f} s)"
        if self.waiting:
            oldest = min(self.waiting, key=lambda ref: self.waiting[ref])
            waited = time.monotonic() - self.waiting[oldest]
            host = oldest.split("/", 1)[0]
            more = f" and {len(self.waiting) - 1} more" if len(self.waiting) > 1 else ""
            text += f"; waiting on {host} for {oldest} ({waited:.0f} s){more}"
        return text

    async def show(self) -> None:
        """Redraw twice a second until cancelled, then clear the line."""
        try:
            while True:
                width = shutil.get_terminal_size().columns - 1
                sys.stderr.write("\r\033[K" + self.line()[:width])
                sys.stderr.flush()
                await asyncio.sleep(0.5)
        finally:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _tracking_client(base: Any, progress: Progress | None) -> Any:
    """The registry client, each tag's resolution counted for ``progress`` and its log lines
    (retries included) bound to the image they are about."""
    from reconciler.reference import redact

    class TrackingClient(base):  # type: ignore[misc, valid-type]
        async def _resolve_within(self, request: Any, budget: float, **kwargs: Any) -> Any:
            reference = redact(request.reference)
            with structlog.contextvars.bound_contextvars(image=reference):
                if progress is not None:
                    progress.waiting[reference] = time.monotonic()
                try:
                    return await super()._resolve_within(request, budget, **kwargs)
                finally:
                    if progress is not None:
                        progress.waiting.pop(reference, None)
                        progress.done += 1

    return TrackingClient


class _ClientResolver:
    """Opens one pooled registry client for the pass; relative paths in the config (CA files)
    are taken from the repository root. Credentials are the operator's (``--auth-config``)."""

    def __init__(
        self,
        config: Config,
        root: Path,
        operator: Sequence[AuthEntry] | None = None,
        progress: bool = False,
    ) -> None:
        self.config = config
        self.root = root
        self.operator = operator
        self.progress = progress

    def _client(self, progress: Progress | None = None) -> Any:
        from reconciler.credentials import operator_store
        from reconciler.registry import RegistryClient

        store = operator_store(self.config, self.root, operator=self.operator)
        client = _tracking_client(RegistryClient, progress)
        return client(self.config, base_dir=self.root, credentials=store)

    async def resolve_all(self, requests: Sequence[Any]) -> Any:
        progress = Progress(len(requests)) if self.progress and requests else None
        ticker = asyncio.create_task(progress.show()) if progress is not None else None
        try:
            async with self._client(progress) as client:
                return await client.resolve_all(requests)
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker

    async def list_all(self, references: Sequence[str]) -> Any:
        """Tag listings for policy tags, with the same operator credentials."""
        async with self._client() as client:
            return await client.list_all(references)


def short(digest: str | None) -> str:
    if not digest:
        return "-"
    return digest.split(":", 1)[-1][:12]


REPAIRED = "repaired"  # a lock rewritten although none of its tags changed


_LISTED = operator.attrgetter("namespace", "stream", "tag")  # the order every output lists


def _statuses(result: PassResult) -> list[TagStatus]:
    """Every tag's status, plus one ``repaired`` line per lock the pass rewrites or deletes
    without any tag of it changing (nothing is invisible); unsorted."""
    items = list(result.plan.statuses)
    if not result.plan.files:
        return items
    changed = {
        (s.namespace, s.stream)
        for s in items
        if s.action in (status.ADDED, status.UPDATED, status.REMOVED)
    }
    for path, data in result.plan.files.items():
        key = path_key(path)
        if key is None or key in changed:
            continue
        what = "lock rewritten" if data is not None else "lock deleted"
        items.append(
            TagStatus(key[0], key[1], "-", REPAIRED, status.IMPORT_SUCCEEDED, f"{what}: {path}")
        )
    return items


def shown_statuses(result: PassResult) -> list[TagStatus]:
    """Every tag's status and the ``repaired`` lines, sorted as every output lists them."""
    return sorted(_statuses(result), key=_LISTED)


def _noteworthy(item: TagStatus) -> bool:
    """A line the table shows without ``-A``: a change, a failure or a wait."""
    return (
        item.action in (status.ADDED, status.UPDATED, status.REMOVED, REPAIRED)
        or not item.ready
        or item.reason in (status.WAITING_MIN_AGE, status.WAITING_PROMOTION)
    )


def status_rows(result: PassResult, everything: bool) -> list[list[str]]:
    rows = []
    # Picked before sorting: a pass with nothing new sorts nothing.
    items = _statuses(result) if everything else list(filter(_noteworthy, _statuses(result)))
    for item in sorted(items, key=_LISTED):
        image = short(item.image)
        if item.action == status.UPDATED and item.previous and item.previous != item.image:
            image = f"{short(item.previous)} → {short(item.image)}"
        elif item.action == status.REMOVED:
            image = short(item.previous)
        rows.append(
            [
                item.namespace,
                item.stream,
                item.tag,
                item.action,
                image,
                "True" if item.ready else "False",
                item.reason if not item.message else f"{item.reason}: {printable(item.message)}",
            ]
        )
    return rows


def problem_data(problem: Problem) -> dict[str, Any]:
    """A problem as an object, for ``-o json|yaml``."""
    return {
        "path": problem.path,
        "line": problem.line,
        "column": problem.column,
        "message": problem.message,
    }


def emit_result(result: PassResult, output: str, everything: bool = False) -> None:
    if output == "table":
        for problem in result.problems:
            notify(f"✗ {printable(str(problem))}")
        rows = status_rows(result, everything)
        if rows:
            headers = ["NAMESPACE", "STREAM", "TAG", "ACTION", "IMAGE", "READY", "MESSAGE"]
            click.echo(table(rows, headers))
        return
    data = {
        "changed": result.plan.changed,
        "commits": list(result.commits),
        "pushed": result.pushed,
        "problems": [problem_data(p) for p in result.problems],
        "tags": [
            {
                "namespace": s.namespace,
                "stream": s.stream,
                "tag": s.tag,
                "action": s.action,
                "ready": s.ready,
                "reason": s.reason,
                "message": s.message,
                "image": s.image,
                "previous": s.previous,
            }
            for s in shown_statuses(result)
        ],
        "consumers": sorted(p for p in result.plan.files if not p.startswith("locks/")),
    }
    click.echo(render_data(data, output), nl=False)


def with_held_sources(root: Path, result: PassResult) -> PassResult:
    """``plan -A``: each held registry tag's message names what its source serves now, the
    image the hold keeps out (a pass never looks a held tag up)."""
    from dataclasses import replace

    from reconciler.config import load_config
    from reconciler.image import ImportFailure, ImportRequest
    from reconciler.imagestream import DOCKER_IMAGE, load_streams

    held = {s.key: s for s in result.plan.statuses if s.reason == status.HELD}
    if not held:
        return result
    config = load_config(root)
    requests: dict[str, ImportRequest] = {}
    for stream in load_streams(root, config).streams:
        for spec in stream.tags:
            key = f"{stream.namespace}/{stream.name}:{spec.name}"
            if key in held and spec.source.kind == DOCKER_IMAGE and not spec.reference:
                requests[key] = ImportRequest(
                    spec.source.name, spec.import_mode, config.platform, spec.insecure
                )
    if not requests:
        return result
    resolver = registry_factory(config, root)
    found = asyncio.run(resolver.resolve_all(list({r.key: r for r in requests.values()}.values())))
    statuses = []
    for item in result.plan.statuses:
        request = requests.get(item.key)
        answer = found.get(request.key) if request is not None else None
        if answer is not None and not isinstance(answer, ImportFailure):
            served = (
                "the source serves the held image"
                if answer.digest == item.image
                else f"the source serves {short(answer.digest)} now, kept out"
            )
            item = replace(item, message=f"{item.message}; {served}")
        statuses.append(item)
    return replace(result, plan=replace(result.plan, statuses=tuple(statuses)))


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def summary(result: PassResult) -> str:
    """One line on stderr: tags by what happened to them, then locks, consumers, problems and
    commits, each counted apart."""
    items = _statuses(result)  # counted, so in any order
    tags = [s for s in items if s.action != REPAIRED]
    counts: dict[str, int] = {}
    for item in tags:
        counts[item.action] = counts.get(item.action, 0) + 1
    parts = [
        f"{counts[a]} {a}"
        for a in (status.ADDED, status.UPDATED, status.REMOVED, status.FAILED)
        if a in counts
    ]
    repaired = len(items) - len(tags)
    if repaired:
        parts.append(f"{plural(repaired, 'lock')} repaired")
    consumers = sum(1 for path in result.plan.files if not path.startswith("locks/"))
    if consumers:
        parts.append(f"{plural(consumers, 'consumer file')} rewritten")
    problems = result.problems
    if not tags and not problems and not repaired:
        return "✓ no image streams found under streams/"
    text = f"{plural(len(tags), 'tag')}: " + (", ".join(parts) if parts else "nothing to change")
    if problems:
        files = len({p.path for p in problems})
        text += f"; {plural(len(problems), 'problem')} in {plural(files, 'file')}"
    if result.commits:
        text += f"; {plural(len(result.commits), 'commit')}"
        text += " pushed" if result.pushed else " made, not pushed"
    mark = "✓" if result.ok else "✗"
    return f"{mark} {text}"


# ---------------------------------------------------------------------------------------------
# CI output formats: a file name or a message is data, never a command or a second line.


# ---------------------------------------------------------------------------------------------
# Commands


GLOBAL_FLAGS = frozenset({"--debug"})
GLOBAL_VALUED = frozenset({"--log-format", "--log-level", "--auth-config"})
COMMAND_VALUED = frozenset({"--repo"})  # global in the docs, an option of each command


def _take(argv: list[str], i: int, valued: frozenset[str]) -> int:
    """How many tokens the option at ``argv[i]`` spans (1, or 2 with a separate value)."""
    return 2 if argv[i] in valued and i + 1 < len(argv) else 1


def arrange_globals(group: click.Group, argv: Sequence[str]) -> list[str]:
    """Global options may come before or after the subcommand, ``--repo`` too: move
    ``--debug``/``--log-*`` in front of the command and ``--repo`` behind it, where click
    parses them. Everything after ``--`` is left alone."""
    args = list(argv)
    tail: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, tail = args[:cut], args[cut:]
    head: list[str] = []
    repo: list[str] = []
    path: list[str] = []
    rest: list[str] = []
    command: click.Command | None = group
    i = 0
    while i < len(args):
        token = args[i]
        name = token.split("=", 1)[0]
        if name in GLOBAL_FLAGS or name in GLOBAL_VALUED:
            span = 1 if "=" in token else _take(args, i, GLOBAL_VALUED)
            head += args[i : i + span]
        elif name in COMMAND_VALUED and not path:
            span = 1 if "=" in token else _take(args, i, COMMAND_VALUED)
            repo += args[i : i + span]
        elif not token.startswith("-") and isinstance(command, click.Group) and not rest:
            command = command.commands.get(token)
            path.append(token)
            span = 1
            if command is None:
                rest += args[i + 1 :]
                break
        else:
            span = 1
            rest.append(token)
        i += span
    params = getattr(command, "params", [])
    if repo and not any("--repo" in getattr(p, "opts", ()) for p in params):
        head += repo  # left for click to refuse with its own message
        repo = []
    return [*head, *path, *repo, *rest, *tail]


def log_format_of(argv: Sequence[str]) -> str:
    """The ``--log-format`` an argument list asks for (``auto`` when none)."""
    fmt = "auto"
    for i, token in enumerate(argv):
        if token == "--":
            break
        if token == "--log-format" and i + 1 < len(argv):
            fmt = argv[i + 1]
        elif token.startswith("--log-format="):
            fmt = token.split("=", 1)[1]
    return fmt


class StreamlockGroup(click.Group):
    """Turns every error into a one-line message and our exit codes, in one place."""

    def main(self, args: Sequence[str] | None = None, *pargs: Any, **kwargs: Any) -> Any:
        argv = arrange_globals(self, sys.argv[1:] if args is None else args)
        debug = "--debug" in argv or os.environ.get("STREAMLOCK_DEBUG") == "1"
        fmt = log_format_of(argv)
        kwargs["standalone_mode"] = False
        try:
            code = super().main(argv, *pargs, **kwargs)
        except click.UsageError as exc:
            if fmt == "json":
                notify(f"✗ {exc.format_message()}", fmt=fmt)
            else:
                exc.show()
            sys.exit(EXIT_USAGE)
        except click.Abort:
            notify("✗ aborted", fmt=fmt)
            sys.exit(EXIT_ERROR)
        except click.ClickException as exc:
            if fmt == "json":
                notify(f"✗ {exc.format_message()}", fmt=fmt)
            else:
                exc.show()
            sys.exit(EXIT_ERROR)
        except ArgumentError as exc:
            if debug:
                raise
            notify(f"✗ {exc}", fmt=fmt)
            sys.exit(EXIT_USAGE)
        except StreamlockError as exc:
            if debug:
                raise
            notify(f"✗ {exc}", fmt=fmt)
            sys.exit(EXIT_ERROR)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


@click.group(cls=StreamlockGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="streamlock")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "logfmt", "json"]),
    default="auto",
    show_default=True,
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
)
@click.option(
    "--auth-config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="STREAMLOCK_AUTH_CONFIG",
    help="The operator's registry credentials (registries[].auth); the repository's are ignored.",
)
def cli(debug: bool, log_format: str, log_level: str, auth_config: Path | None) -> None:
    """streamlock: OpenShift image streams in plain Git."""
    level = "debug" if debug else log_level
    configure_logging(log_format, level)
    if log_format == "json":  # the libraries' log lines as JSON too: one format on stderr
        from reconciler.daemon.logs import route_stdlib

        route_stdlib(log_format, level)
        logging.getLogger().setLevel(max(logging.getLevelNamesMapping()[level.upper()], 30))
    click.get_current_context().meta[AUTH_CONFIG_META] = auth_config


@cli.command()
@repo_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "github", "gitlab"]),
    default="text",
    show_default=True,
)
def validate(repo: Path | None, fmt: str) -> None:
    """Check streamlock.yaml, every stream file, lock and consumer (offline; for PR CI)."""
    from reconciler.consumers.reader import validate as validate_consumers
    from reconciler.imagestream import validate_repo

    root = resolve_repo(repo)
    problems = sorted(validate_repo(root) + validate_consumers(root))
    if fmt == "github":
        for problem in problems:
            click.echo(github_annotation(problem))
    elif fmt == "gitlab":
        click.echo(json.dumps([gitlab_issue(p) for p in problems], indent=2))
    else:
        for problem in problems:
            click.echo(printable(str(problem)))
    if problems:
        notify(f"✗ {len(problems)} problem{'s' if len(problems) > 1 else ''} found")
        sys.exit(EXIT_ERROR)
    notify("✓ valid")


@cli.command()
@repo_option
@output_option
@click.option("-A", "--all", "everything", is_flag=True, help="List unchanged tags too.")
def plan(repo: Path | None, output: str, everything: bool) -> None:
    """Dry run: show what a pass would change. Exit 0 nothing, 2 changes, 1 errors."""
    root = resolve_repo(repo)
    result = asyncio.run(run_pass(root, registry_factory, PassOptions(write=False)))
    if everything:
        result = with_held_sources(root, result)
    emit_result(result, output, everything)
    notify(summary(result))
    if not result.ok:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_CHANGES if result.plan.changed else EXIT_OK)


@cli.command()
@repo_option
@output_option
@click.option("--no-push", is_flag=True, help="Commit locally, do not push.")
@click.option("-A", "--all", "everything", is_flag=True, help="List unchanged tags too.")
def reconcile(repo: Path | None, output: str, no_push: bool, everything: bool) -> None:
    """One pass: resolve due tags, commit changed locks, push."""
    root = resolve_repo(repo)
    result = asyncio.run(run_pass(root, registry_factory, PassOptions(push=not no_push)))
    emit_result(result, output, everything)
    notify(summary(result))
    sys.exit(EXIT_OK if result.ok else EXIT_ERROR)


@cli.command("import-image")
@click.argument("names", nargs=-1, required=True, shell_complete=complete_names)
@repo_option
@output_option
@click.option(
    "-n",
    "--namespace",
    metavar="NAMESPACE",
    help="Namespace of names given without one (default: defaultNamespace in streamlock.yaml).",
)
@click.option("--no-push", is_flag=True, help="Commit locally, do not push.")
def import_image(
    names: tuple[str, ...], repo: Path | None, output: str, namespace: str | None, no_push: bool
) -> None:
    """Import tags now, scheduled or not (like 'oc import-image').

    NAMES are NAMESPACE/STREAM (every tag of the stream) or NAMESPACE/STREAM:TAG (STREAM and
    STREAM:TAG with -n). Only the named tags and the tags that follow them change.
    """
    root = resolve_repo(repo)
    scope = checked_names(root, names, namespace)
    options = PassOptions(push=not no_push, forced=scope, scope=scope)
    result = asyncio.run(run_pass(root, registry_factory, options))
    emit_result(result, output)
    notify(summary(result))
    sys.exit(EXIT_OK if result.ok else EXIT_ERROR)


def checked_names(root: Path, names: Sequence[str], namespace: str | None) -> frozenset[str]:
    """The names as ``ns/stream[:tag]`` keys, each checked against the stream files before any
    work: a malformed or unknown name is a usage error (with the closest names as a hint)."""
    import difflib

    from reconciler.config import load_config
    from reconciler.imagestream import load_streams
    from reconciler.inspect import parse_stream_name

    config = load_config(root)
    streamset = load_streams(root, config)
    known = {f"{s.namespace}/{s.name}": s for s in streamset.streams}
    keys = set()
    for text in names:
        try:
            name = parse_stream_name(text, namespace or config.default_namespace)
        except InputError as exc:
            raise click.UsageError(str(exc)) from None
        stream = known.get(f"{name.namespace}/{name.stream}")
        key = str(name)
        if stream is not None and (name.tag is None or stream.tag(name.tag) is not None):
            keys.add(key)
            continue
        candidates = (
            sorted(known)
            if stream is None
            else [f"{key.rsplit(':', 1)[0]}:{t.name}" for t in stream.tags]
        )
        close = difflib.get_close_matches(key, candidates, n=3)
        what = "image stream" if stream is None else "tag"
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        if streamset.problems:
            hint += " ('streamlock validate' shows the stream files that did not load)"
        named = "" if text == key else f" {key}"
        raise click.UsageError(f"{text}: no such {what}{named}{hint}")
    return frozenset(keys)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@repo_option
@click.option("--krm", is_flag=True, help="Run as a KRM function: a ResourceList on stdin.")
@click.option("-n", "--namespace", help="Namespace of objects that name none.")
def render(paths: tuple[Path, ...], repo: Path | None, krm: bool, namespace: str | None) -> None:
    """Print manifests with short stream:tag images pinned (lookupPolicy.local; offline).

    PATHS are files or directories (default: the current directory). Only objects go to
    stdout, for kubectl apply -f - and Argo CD; on any error nothing is printed and it exits 1.
    """
    from reconciler.consumers.reader import render_files, render_krm

    root = resolve_repo(repo)
    if krm:
        out = render_krm(root, sys.stdin.read(), namespace)
    else:
        out = render_files(root, paths or (Path.cwd(),), namespace)
    click.echo(out, nl=False)


@cli.command()
@click.option(
    "--repo",
    "url",
    required=True,
    envvar="STREAMLOCK_REPO",
    help="Config repository to clone: a URL or a local path.",
)
@click.option("--branch", default="main", show_default=True, help="Branch to watch and push.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".streamlock-daemon"),
    show_default=True,
    envvar="STREAMLOCK_WORKDIR",
    help="The daemon's own directory (its clone lives in DIR/repo).",
)
@click.option(
    "--listen",
    default="127.0.0.1:8080",
    show_default=True,
    envvar="STREAMLOCK_LISTEN",
    help="HOST:PORT for /healthz, /readyz, /metrics, /status, /hooks/* and /ui/.",
)
@click.option("--poll", default="60s", show_default=True, help="Git poll interval (Go duration).")
@click.option(
    "--shard",
    default=None,
    envvar="STREAMLOCK_SHARD",
    help="I/N: reconcile the namespaces whose hash falls in shard I of N.",
)
@click.option("--namespaces", default=None, help="a,b: reconcile only these namespaces.")
@click.option(
    "--registry-token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Bearer token for POST /hooks/registry (or STREAMLOCK_REGISTRY_TOKEN).",
)
@click.option(
    "--git-secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Secret of POST /hooks/git (or STREAMLOCK_GIT_WEBHOOK_SECRET).",
)
@click.option(
    "--stop-grace",
    default="25s",
    show_default=True,
    help="How long SIGTERM waits for the pass in flight before abandoning it.",
)
@click.option("--no-ui", is_flag=True, help="Do not serve the web view at /ui/.")
@forge_options
@click.pass_context
def run(
    ctx: click.Context,
    url: str,
    branch: str,
    workdir: Path,
    listen: str,
    poll: str,
    shard: str | None,
    namespaces: str | None,
    registry_token_file: Path | None,
    git_secret_file: Path | None,
    stop_grace: str,
    no_ui: bool,
    commit_url: str | None,
    edit_url: str | None,
) -> None:
    """Run as a daemon: keep locks current, react to webhooks, serve status, metrics and the
    web view (/ui/)."""
    from reconciler.config import parse_duration
    from reconciler.daemon import DaemonOptions, Shard
    from reconciler.daemon import run as run_daemon
    from reconciler.daemon.logs import route_stdlib
    from reconciler.web.model import Links

    parent = ctx.parent
    fmt = parent.params["log_format"] if parent else "auto"
    level = parent.params["log_level"] if parent else "info"
    if parent and parent.get_parameter_source("log_level") == click.core.ParameterSource.DEFAULT:
        level = "info"
    fmt = "json" if fmt == "auto" else fmt
    level = "debug" if parent and parent.params.get("debug") else level
    configure_logging(fmt, level)
    route_stdlib(fmt, level)
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise click.UsageError(f"--listen {listen!r}: expected HOST:PORT")
    try:
        parsed_shard = Shard.parse(shard, namespaces)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    seconds = parse_duration(poll)
    if seconds <= 0:
        raise click.UsageError("--poll must be positive")
    links = Links.parse(commit_url, edit_url)

    def secret(path: Path | None, variable: str) -> str | None:
        if path is not None:
            return path.read_text(encoding="utf-8").strip() or None
        return os.environ.get(variable) or None

    if "://" not in url and ":" not in url.split("/", 1)[0]:
        url = str(Path(url).resolve())
    options = DaemonOptions(
        repo=url,
        workdir=workdir.resolve(),
        branch=branch,
        host=host.strip("[]"),
        port=int(port),
        poll=seconds,
        shard=parsed_shard,
        registry_token=secret(registry_token_file, "STREAMLOCK_REGISTRY_TOKEN"),
        git_secret=secret(git_secret_file, "STREAMLOCK_GIT_WEBHOOK_SECRET"),
        stop_grace=parse_duration(stop_grace),
        auth=_operator_auth(ctx),
        ui=not no_ui,
        commit_url=links.commit,
        edit_url=links.edit,
    )
    run_daemon(options)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=None if argv is None else list(argv), prog_name="streamlock")


# Commands for people live in their own modules, which build on the helpers above; each
# module's COMMANDS are registered here, in one place.
from reconciler import cli_access, cli_repo, cli_report, cli_streams  # noqa: E402

for _command in [
    *cli_streams.COMMANDS,
    *cli_repo.COMMANDS,
    *cli_access.COMMANDS,
    *cli_report.COMMANDS,
]:
    cli.add_command(_command)
