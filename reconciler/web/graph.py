"""Promotion paths as an SVG diagram: Graphviz's ``dot`` lays it out, we only say what it holds.

The DOT source is written by the ``graphviz`` package (it quotes every name); ``dot`` runs once
per diagram. Its SVG is then parsed and written again with the standard library's XML tools, so
what reaches a page is well-formed XML whose text is escaped, without comments, scripts, event
handlers, ``style`` attributes or links other than the relative ones built here: names are
validated when stream files are read, but the diagram does not count on it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence

import graphviz
import structlog

from reconciler.errors import StreamlockError
from reconciler.web.model import Edge, Site
from reconciler.web.pages import MAX_EDGES, Urls

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)
# Elements dot writes for a diagram; anything else is dropped.
ALLOWED = frozenset(
    {"svg", "g", "title", "polygon", "ellipse", "path", "text", "a", "polyline", "defs"}
)
# Relative links only: no scheme, no ``//host``, nothing to quote.
_SAFE_HREF = re.compile(r"^(?!//)[A-Za-z0-9._~%/#-]+$")
EDGE_STYLE = {
    "alias": {"label": "alias"},
    "follows": {"label": "follows"},
    "pins": {"label": "pins", "style": "dashed"},
}


class GraphError(StreamlockError):
    """``dot`` is missing, failed, or wrote something that is not SVG."""


def _split(key: str) -> tuple[str, str, str]:
    namespace, rest = key.split("/", 1)
    stream, _, tag = rest.rpartition(":")
    return namespace, stream, tag


def node_ids(edges: Sequence[Edge]) -> dict[str, str]:
    """Tag key -> node id (n0, n1, …): DOT would read ``a:b`` in an edge as node a, port b."""
    keys = sorted({e.source for e in edges} | {e.target for e in edges})
    return {key: f"n{i}" for i, key in enumerate(keys)}


def dot_source(edges: Sequence[Edge], href: Callable[[str, str, str], str]) -> str:
    """DOT text of ``edges``: one cluster per namespace, one per stream, a node per tag.

    ``href(namespace, stream, tag)`` gives the relative link of a tag's node.
    """
    graph = graphviz.Digraph("promotion", graph_attr={"rankdir": "LR", "bgcolor": "transparent"})
    graph.attr("node", shape="box", style="rounded", fontname="sans-serif", fontsize="11")
    graph.attr("edge", fontname="sans-serif", fontsize="10")
    ids = node_ids(edges)
    keys = sorted(ids)
    tree: dict[str, dict[str, list[str]]] = {}
    for key in keys:
        namespace, stream, _ = _split(key)
        tree.setdefault(namespace, {}).setdefault(stream, []).append(key)
    for n, namespace in enumerate(sorted(tree)):
        with graph.subgraph(name=f"cluster_ns{n}") as outer:
            outer.attr(label=f"namespace {namespace}", style="dashed", fontname="sans-serif")
            for s, stream in enumerate(sorted(tree[namespace])):
                with outer.subgraph(name=f"cluster_ns{n}_s{s}") as inner:
                    inner.attr(label=stream, style="solid", fontname="sans-serif")
                    for key in tree[namespace][stream]:
                        _, _, tag = _split(key)
                        inner.node(
                            ids[key],
                            label=tag,
                            tooltip=key,
                            URL=href(namespace, stream, tag),
                            **{"class": "tag"},
                        )
    for edge in sorted(edges, key=lambda e: (e.source, e.target)):
        attrs = dict(EDGE_STYLE.get(edge.kind, {"label": edge.kind}))
        if edge.cross_namespace:
            attrs["label"] = f"{attrs['label']} (grant)"
            attrs["class"] = f"{edge.kind} cross"
        else:
            attrs["class"] = edge.kind
        attrs["tooltip"] = f"{edge.target} {edge.kind} {edge.source}"
        graph.edge(ids[edge.source], ids[edge.target], **attrs)
    return graph.source


def render_svg(source: str, names: Mapping[str, str] | None = None) -> str:
    """Lay out ``source`` with ``dot`` and return sanitised inline SVG (no XML prolog);
    ``names`` (node id -> tag key) puts the tag keys into the ``<title>`` of nodes and edges."""
    try:
        raw = graphviz.pipe("dot", "svg", source.encode("utf-8"), quiet=True)
    except graphviz.ExecutableNotFound as exc:
        raise GraphError(
            "Graphviz's dot is not installed", hint="apt-get install graphviz"
        ) from exc
    except graphviz.CalledProcessError as exc:
        raise GraphError(f"dot failed: {exc.stderr!r}") from exc
    return sanitize(raw, names)


def sanitize(svg: bytes, names: Mapping[str, str] | None = None) -> str:
    """SVG as dot wrote it, parsed and written again: only the elements a diagram uses, no
    ``on*``/``style`` attributes, links only to relative pages; text escaped by the writer."""
    try:
        root = ET.fromstring(svg)  # no external entities: the stdlib parser never fetches any
    except ET.ParseError as exc:
        raise GraphError(f"dot wrote malformed SVG: {exc}") from exc
    if root.tag != f"{{{SVG_NS}}}svg":
        raise GraphError("dot did not write SVG")
    _clean(root)
    if names:
        for title in root.iter(f"{{{SVG_NS}}}title"):
            ends = (title.text or "").split("->")
            if all(end in names for end in ends):
                title.text = " → ".join(names[end] for end in ends)
    root.set("role", "img")
    root.set("aria-label", "promotion paths")
    root.set("class", "promotion")
    return ET.tostring(root, encoding="unicode")


def _clean(element: ET.Element) -> None:
    for child in list(element):
        local = child.tag.rsplit("}", 1)[-1]
        if not child.tag.startswith(f"{{{SVG_NS}}}") or local not in ALLOWED:
            element.remove(child)
            continue
        _clean(child)
    for name in list(element.attrib):
        local = name.rsplit("}", 1)[-1].lower()
        value = element.attrib[name]
        unsafe_link = local == "href" and not _SAFE_HREF.match(value)
        if local.startswith("on") or local == "style" or unsafe_link:
            del element.attrib[name]


def diagram(edges: Sequence[Edge], href: Callable[[str, str, str], str]) -> str | None:
    """Inline SVG of ``edges``; None when there are none."""
    if not edges:
        return None
    ids = node_ids(edges)
    return render_svg(dot_source(edges, href), {node: key for key, node in ids.items()})


def promotion_svg(site: Site, urls: Urls, namespace: str | None) -> str | None:
    """The diagram of a promotion page (which sits one folder below the top); None when there
    is nothing to draw, more than ``MAX_EDGES`` paths (the page then asks for a namespace), or
    no ``dot`` to draw with (the page keeps its table; the error is logged once)."""
    edges = site.edges_of(namespace)
    if len(edges) > MAX_EDGES:
        return None
    try:
        return diagram(edges, lambda ns, stream, tag: urls.stream("../", ns, stream, tag))
    except GraphError as exc:
        _warn_once(str(exc))
        return None


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        structlog.get_logger("streamlock.web").warning("promotion diagram not drawn", error=message)
