"""The web view inside the daemon: ``/ui/``, read-only, rendered from what the daemon holds.

The site is built from the streams and locks of the last pass, the ``/status`` document and
the reconciler's commits up to the pass's revision, once per pass: a request after a pass
ended builds it again (in a worker thread, since reading the commits runs git), every other
request renders from it. Only GET and HEAD are routed; every answer carries the
Content-Security-Policy the pages also state in a ``<meta>`` tag.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from reconciler.config import Config
from reconciler.errors import GitError
from reconciler.gitrepo import TrailerIndex
from reconciler.web import graph, pages
from reconciler.web.model import Inputs, Links, Site, build

if TYPE_CHECKING:
    from reconciler.daemon.service import Daemon

HEADERS = {
    "Content-Security-Policy": pages.CSP + "; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class View:
    """The site of the daemon's last pass, built at most once per pass."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.links = Links.parse(daemon.options.commit_url, daemon.options.edit_url)
        self.urls = pages.Urls(static=False)
        self._built_for: int | None = None
        self._site: Site | None = None
        self._graphs: dict[str | None, str | None] = {}
        self._lock = asyncio.Lock()

    def _inputs(self) -> tuple[Inputs, Any, str | None]:
        """What the site is built from, taken on the event loop (the pass thread replaces
        these attributes whole, never changes them in place)."""
        d = self.daemon
        shard = d.options.shard
        config = d.config
        inputs = Inputs(
            streams=[s for s in d.streams if shard.owns(s.namespace)],
            locks=dict(d.locks),
            config=config or Config(),
            now=datetime.now(UTC).replace(microsecond=0),
            status=d.status(),
            links=self.links,
            revision=d.revision,
        )
        return inputs, d.repo, config.git.author if config is not None else None

    async def site(self) -> Site:
        passes = self.daemon.passes
        if self._site is None or self._built_for != passes:
            async with self._lock:
                if self._site is None or self._built_for != passes:
                    inputs, repo, author = self._inputs()
                    self._site = await run_in_threadpool(_build, inputs, repo, author)
                    self._graphs = {}
                    self._built_for = passes
        assert self._site is not None
        return dataclasses.replace(self._site, reconciling=self.daemon.running)

    async def diagram(self, site: Site, namespace: str | None) -> str | None:
        if namespace not in self._graphs:
            self._graphs[namespace] = await run_in_threadpool(
                graph.promotion_svg, site, self.urls, namespace
            )
        return self._graphs[namespace]


def _build(inputs: Inputs, repo: Any, author: str | None) -> Site:
    """The site, with the reconciler's commits up to the pass's revision (read by sha, so a
    pass that moves the clone meanwhile changes nothing)."""
    commits: list[tuple[str, str]] = []
    if repo is not None and inputs.revision:
        try:
            commits = TrailerIndex(repo, author).trusted(inputs.revision)
        except GitError:
            commits = []
    return build(dataclasses.replace(inputs, commits=commits))


def _html(text: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status_code, headers=HEADERS)


def _page_number(value: str | None) -> int:
    return int(value) if value is not None and value.isdigit() and len(value) < 7 else 1


def build_ui(daemon: Daemon) -> Starlette:
    """The ``/ui`` application (mounted by ``daemon.http``)."""
    view = View(daemon)
    css = resources.files("reconciler.web").joinpath("static", "style.css").read_bytes()

    async def overview(request: Request) -> Response:
        site = await view.site()
        query = request.query_params
        html = pages.overview(
            site,
            view.urls,
            namespace=query.get("namespace") or None,
            state=query.get("state") or None,
            page=_page_number(query.get("page")),
        )
        return _html(html)

    async def stream(request: Request) -> Response:
        site = await view.site()
        row = site.stream(request.path_params["namespace"], request.path_params["name"])
        if row is None:
            return _html(pages.not_found(view.urls, "../../", "such image stream"), 404)
        return _html(pages.stream(site, view.urls, row))

    async def promotion(request: Request) -> Response:
        site = await view.site()
        page = request.path_params["page"]
        namespace = None if page == "index" else page
        if namespace is not None and namespace not in site.namespaces:
            return _html(pages.not_found(view.urls, "../", "such namespace"), 404)
        svg = await view.diagram(site, namespace)
        return _html(pages.promotion(site, view.urls, namespace, svg))

    async def stylesheet(request: Request) -> Response:
        return Response(css, media_type="text/css", headers=HEADERS)

    async def index_redirect(request: Request) -> Response:
        return RedirectResponse("./", status_code=308)

    methods = ["GET", "HEAD"]
    routes = [
        Route("/", overview, methods=methods),
        Route("/index.html", index_redirect, methods=methods),
        Route("/streams/{namespace}/{name}.html", stream, methods=methods),
        Route("/promotion/{page}.html", promotion, methods=methods),
        Route(f"/{pages.CSS_PATH}", stylesheet, methods=methods),
    ]
    return Starlette(routes=routes)
