"""The pages, rendered with Jinja2 from a :class:`~reconciler.web.model.Site`.

One renderer for both faces: the daemon serves these pages at ``/ui/`` and ``streamlock report
--html`` writes them as files; only :class:`Urls` differs (query parameters in the daemon,
pre-rendered files in the report). Every link is relative, so a report can be opened from disk
or served from any path. Autoescaping is on for every template; the only markup inserted as is
is the promotion diagram, which ``graph.sanitize`` wrote from a parsed SVG tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

import jinja2
from markupsafe import Markup

from reconciler.inspect import short_digest
from reconciler.web.model import (
    PAGE_SIZE,
    STATE_TITLES,
    STATES,
    Site,
    StreamRow,
    paginate,
)

# The Content-Security-Policy of every page: no scripts at all, styles from our own file only.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'self'"
)
CSS_PATH = "static/style.css"
MAX_EDGES = 400  # promotion paths drawn in one diagram at most (more: pick a namespace)


@dataclass(frozen=True, slots=True)
class Urls:
    """Where each page lives, relative to the page linking to it (``root`` leads to the top).

    ``static``: the report's file names (``index.html``, ``page-2.html``, ``ns-shop.html``,
    ``state-failed.html``); else the daemon's query parameters (``?namespace=shop&page=2``).
    """

    static: bool

    def overview(
        self, root: str, namespace: str | None = None, state: str | None = None, page: int = 1
    ) -> str:
        if not self.static:
            query = {"namespace": namespace, "state": state, "page": page if page > 1 else None}
            text = urlencode({k: v for k, v in query.items() if v})
            return f"{root or './'}{'?' + text if text else ''}"
        name = "index" if namespace is None and state is None else ""
        if namespace is not None:
            name = f"ns-{quote(namespace, safe='')}"
        elif state is not None:
            name = f"state-{quote(state, safe='')}"
        if page > 1:
            name = f"{name}-page-{page}" if name != "index" else f"page-{page}"
        return f"{root}{name}.html"

    def stream(self, root: str, namespace: str, name: str, tag: str | None = None) -> str:
        anchor = f"#tag-{quote(tag, safe='')}" if tag else ""
        return f"{root}streams/{quote(namespace, safe='')}/{quote(name, safe='')}.html{anchor}"

    def promotion(self, root: str, namespace: str | None = None) -> str:
        page = "index" if namespace is None else quote(namespace, safe="")
        return f"{root}promotion/{page}.html"

    def css(self, root: str) -> str:
        return f"{root}{CSS_PATH}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reconciler.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["short"] = short_digest
    env.filters["sha7"] = lambda sha: (sha or "")[:7]
    env.globals["STATE_TITLES"] = STATE_TITLES
    env.globals["STATES"] = STATES
    return env


_ENV: jinja2.Environment | None = None


def environment() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    return _ENV


def _render(name: str, **context: object) -> str:
    return environment().get_template(name).render(csp=CSP, **context)


def overview(
    site: Site,
    urls: Urls,
    namespace: str | None = None,
    state: str | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> str:
    """The overview: every stream (of ``namespace``, with a tag in ``state``), one page."""
    if namespace not in site.namespaces:
        namespace = None
    if state not in STATES:
        state = None
    chosen = paginate(site.filtered(namespace, state), page, page_size)
    return _render(
        "overview.html",
        site=site,
        urls=urls,
        root="",
        namespace=namespace,
        state=state,
        page=chosen,
        totals=site.totals,
        title="Image streams",
    )


def stream(site: Site, urls: Urls, row: StreamRow) -> str:
    """One stream: its tags, each with image, state, history and where to edit it."""
    return _render(
        "stream.html",
        site=site,
        urls=urls,
        root="../../",
        stream=row,
        title=f"{row.namespace}/{row.name}",
    )


def promotion(site: Site, urls: Urls, namespace: str | None, svg: str | None) -> str:
    """The promotion paths of ``namespace`` (all when None): the diagram (``svg``, from
    ``graph.diagram``) and the same as a table, which screen readers and text browsers get."""
    edges = site.edges_of(namespace)
    return _render(
        "promotion.html",
        site=site,
        urls=urls,
        root="../",
        namespace=namespace,
        edges=edges,
        diagram=Markup(svg) if svg else None,  # graph.sanitize wrote it from a parsed tree
        max_edges=MAX_EDGES,
        title="Promotion paths" + (f" · {namespace}" if namespace else ""),
    )


def not_found(urls: Urls, root: str, what: str) -> str:
    return _render("missing.html", urls=urls, root=root, what=what, title="Not found", site=None)
