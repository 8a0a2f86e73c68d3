"""``streamlock report --html DIR``: the web view written as static files, offline.

Reads what ``describe`` and ``history`` read (the stream files, the locks, the reconciler's own
commits and the last failures this checkout recorded), builds the site once and writes every
page: filters are pre-rendered as one page list per namespace and one per state (a static site
has no query parameters), each paginated like the daemon's.
"""

from __future__ import annotations

import multiprocessing
import shutil
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from reconciler.config import Config, load_config
from reconciler.errors import GitError, InputError
from reconciler.gitrepo import GitRepo, TrailerIndex
from reconciler.imagestream import STREAMS_DIR, load_streams
from reconciler.lockfile import LockSet
from reconciler.reconcile import FAILURES_FILE, LockCache, last_failures, load_locks
from reconciler.web import graph, pages
from reconciler.web.model import PAGE_SIZE, STATES, Inputs, Links, Site, build, paginate

MARKER = ".streamlock-report"  # a folder holding it was written by this command
PARALLEL_FILES = 500  # stream files from which parsing them in a second process pays off


@dataclass(frozen=True, slots=True)
class Written:
    directory: Path
    pages: int
    streams: int
    tags: int


def gather(root: Path, links: Links, now: datetime | None = None) -> Inputs:
    """The inputs of a site from the repository at ``root`` (its working tree and Git).

    In a large repository the stream files are parsed in a forked second process while this
    one reads the locks (with workers of their own in a fresh clone, see ``lockread``) and the
    commits: both are pure CPU work, and most of the report's time. (Forked: the child starts
    with everything imported, and the command runs no other threads.)
    """
    config = load_config(root)
    streams_dir = root / STREAMS_DIR
    files = sum(1 for _ in streams_dir.rglob("*")) if streams_dir.is_dir() else 0
    if files < PARALLEL_FILES:
        streamset = load_streams(root, config)
        locks, commits, bases, failures, revision = _git_side(root, config)
    else:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            streams_future = pool.submit(load_streams, root, config)
            locks, commits, bases, failures, revision = _git_side(root, config)
            streamset = streams_future.result()
    problems = [str(p) for p in streamset.problems]
    problems += [str(p) for found in locks.broken.values() for p in found]
    return Inputs(
        streams=streamset.streams,
        locks=dict(locks),
        config=config,
        now=now or datetime.now(UTC).replace(microsecond=0),
        commits=commits,
        bases=bases,
        failures=failures,
        problems=problems,
        links=links,
        revision=revision,
    )


def _git_side(
    root: Path, config: Config
) -> tuple[
    LockSet,
    list[tuple[str, str]],
    dict[tuple[str, str], str],
    dict[str, dict[str, str]],
    str | None,
]:
    """The locks (through the lock cache passes keep), the reconciler's commits, the revert
    rule's bases and the last failures this checkout recorded."""
    commits: list[tuple[str, str]] = []
    bases: dict[tuple[str, str], str] = {}
    failures: dict[str, dict[str, str]] = {}
    revision = None
    cache = None
    try:
        repo = GitRepo.open(root)
    except GitError:
        repo = None
    if repo is not None:
        revision = repo.head()
        cache = LockCache.of(repo.git_dir)
        failures = last_failures(repo.git_dir / "streamlock" / FAILURES_FILE)
        if revision is not None:
            # The commits whose trailers count, as the revert rule reads them (author, and
            # signatures when configured); anyone can type trailer lines.
            index = TrailerIndex(repo, config.git.author)
            commits = index.trusted(revision)
            bases = index.bases()
    locks = load_locks(root, cache)
    if cache is not None:
        cache.save()
    return locks, commits, bases, failures, revision


def _list_pages(site: Site, urls: pages.Urls) -> Iterator[tuple[str, str]]:
    """``(relative path, html)`` of the overview and its pre-rendered filters."""
    choices: list[tuple[str | None, str | None]] = [(None, None)]
    choices += [(ns, None) for ns in site.namespaces]
    choices += [(None, state) for state in STATES]
    for namespace, state in choices:
        count = paginate(site.filtered(namespace, state), 1).count
        for number in range(1, count + 1):
            path = urls.overview("", namespace, state, number)
            yield path, pages.overview(site, urls, namespace, state, number, PAGE_SIZE)


def _prepare(directory: Path) -> None:
    """An empty folder, or one an earlier report wrote (its pages are replaced)."""
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory} is not a directory")
    if directory.is_dir() and any(directory.iterdir()):
        if not (directory / MARKER).is_file():
            raise InputError(
                f"{directory} is not empty and holds no earlier report",
                hint="name a new or empty directory",
            )
        for name in ("streams", "promotion", "static"):
            shutil.rmtree(directory / name, ignore_errors=True)
        for page in directory.glob("*.html"):
            page.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("written by streamlock report --html\n", encoding="utf-8")


def write(site: Site, directory: Path) -> Written:
    """Every page of ``site`` under ``directory``."""
    _prepare(directory)
    urls = pages.Urls(static=True)
    count = 0

    def put(relative: str, text: str) -> None:
        nonlocal count
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        count += 1

    css = resources.files("reconciler.web").joinpath("static", "style.css").read_text("utf-8")
    put(pages.CSS_PATH, css)
    count -= 1
    # dot lays out the diagrams in processes of its own while the pages are rendered here.
    with ThreadPoolExecutor(max_workers=2) as pool:
        namespaces = (None, *site.namespaces)
        diagrams = [(ns, pool.submit(graph.promotion_svg, site, urls, ns)) for ns in namespaces]
        for relative, html in _list_pages(site, urls):
            put(relative, html)
        for row in site.streams:
            put(urls.stream("", row.namespace, row.name), pages.stream(site, urls, row))
        for namespace, svg in diagrams:
            put(
                urls.promotion("", namespace),
                pages.promotion(site, urls, namespace, svg.result()),
            )
    return Written(directory, count, len(site.streams), site.tag_count)


def report(root: Path, directory: Path, links: Links) -> Written:
    """Gather, build and write: what ``streamlock report --html`` does."""
    return write(build(gather(root, links)), directory)
