"""The pages escape everything they did not write, link only where the operator said, and
state their Content-Security-Policy; the diagram's SVG is escaped and stripped too."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from reconciler.config import Config
from reconciler.imagestream import (
    DOCKER_IMAGE,
    HOLD_ANNOTATION,
    IMAGE_STREAM_TAG,
    ImageStream,
    TagReference,
    TagSpec,
)
from reconciler.lockfile import HistoryItem, LockEntry, StreamLock
from reconciler.web import graph, model, pages
from tests.fixtures.tools import require

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "d" * 64
SCRIPT = "<script>window.__pwned=1</script>"
BREAKOUT = '"><img src=x onerror=window.__pwned=2>'
SINGLE = "'><svg onload=window.__pwned=3>"
JS_URL = "javascript:window.__pwned=4"
HOSTILE = (SCRIPT, BREAKOUT, SINGLE, JS_URL)
FORGE = "https://forge.example/"
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href"}


class Collector(HTMLParser):
    """Every tag, attribute and text node of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(name, value or "") for name, value in attrs]

    def handle_data(self, data):
        self.text.append(data)


def parsed(html: str) -> Collector:
    collector = Collector()
    collector.feed(html)
    return collector


def hostile_site(status: bool = False) -> model.Site:
    """Foreign text in every field a page shows: labels, annotations, a hold reason, a
    failure, a problem, and (bypassing validation) the stream and tag names themselves."""
    text = " ".join(HOSTILE)
    annotations = {f"note-{i}": value for i, value in enumerate(HOSTILE)}
    annotations[HOLD_ANNOTATION] = text
    bad_name = 'x"><script>window.__pwned=5</script>'
    held = TagSpec(
        "1.0", TagReference(DOCKER_IMAGE, f"registry.example/a:{text}"), annotations=annotations
    )
    follower = TagSpec(bad_name, TagReference(IMAGE_STREAM_TAG, "1.0"))
    stream = ImageStream(
        "shop", bad_name, (held, follower), path=f"streams/shop/{text}.yaml", line=2
    )
    labels = {value: value for value in HOSTILE}
    entry = LockEntry(
        held.source,
        DIGEST,
        f"registry.example/a@{DIGEST}",
        held.spec_hash("shop"),
        created=text,
        imported_at=text,
        labels=labels,
        platforms={text: DIGEST},
        history=(HistoryItem(DIGEST, text, text, text),),
    )
    lock = StreamLock("shop", bad_name, {"1.0": entry})
    doc = None
    if status:
        doc = {
            "observedRevision": text,
            "reconciling": True,
            "problems": [text],
            "lastPass": {"result": text, "finished": text},
            "tags": [
                {
                    "name": f"shop/{bad_name}:1.0",
                    "state": "failed",
                    "conditions": [
                        {"type": "Ready", "status": "False", "reason": text, "message": text}
                    ],
                    "hold": text,
                    "notPinned": {"reason": "RevertRespected", "image": text},
                    "nextDue": text,
                    "lastChecked": text,
                    "lastError": text,
                }
            ],
        }
    return model.build(
        model.Inputs(
            streams=[stream],
            locks={stream.key: lock},
            config=Config(),
            now=NOW,
            failures={f"shop/{bad_name}:1.0": {"reason": text, "message": text, "at": text}},
            status=doc,
            problems=[text],
            links=model.Links.parse(FORGE + "commit/{sha}", FORGE + "edit/{path}#L{line}"),
        )
    )


def every_page(site: model.Site, urls: pages.Urls) -> dict[str, str]:
    found = {"overview": pages.overview(site, urls)}
    for row in site.streams:
        found[f"stream {row.name}"] = pages.stream(site, urls, row)
    found["promotion"] = pages.promotion(site, urls, None, None)
    found["missing"] = pages.not_found(urls, "", "such image stream")
    return found


@pytest.mark.parametrize("status", [False, True], ids=["report", "daemon"])
def test_foreign_text_never_becomes_markup(status):
    """No hostile field adds an element or an attribute: no script, img or svg tag, no
    event handler, on any page."""
    site = hostile_site(status)
    for static in (True, False):
        for name, html in every_page(site, pages.Urls(static=static)).items():
            page = parsed(html)
            assert not {"script", "img", "svg"} & set(page.tags), name
            assert not [a for a, _ in page.attributes if a.startswith("on")], name


@pytest.mark.parametrize("status", [False, True], ids=["report", "daemon"])
def test_foreign_text_is_shown_as_text(status):
    """The hostile label and annotation values are on the stream page as visible text."""
    site = hostile_site(status)
    html = pages.stream(site, pages.Urls(static=True), site.streams[0])
    text = "".join(parsed(html).text)
    for value in HOSTILE:
        assert value in text


@pytest.mark.parametrize("status", [False, True], ids=["report", "daemon"])
def test_links_are_relative_or_the_operators_forge(status):
    """Every URL attribute is a relative link or starts with the configured forge template:
    a javascript: URL from a stream or a registry never becomes a link."""
    site = hostile_site(status)
    for static in (True, False):
        for name, html in every_page(site, pages.Urls(static=static)).items():
            for attribute, value in parsed(html).attributes:
                if attribute not in URL_ATTRIBUTES or value.startswith("data:,"):
                    continue
                relative = ":" not in value.split("/", 1)[0] and not value.startswith("//")
                assert relative or value.startswith(FORGE), (name, value)


def test_every_page_states_the_content_security_policy():
    """Each page carries the CSP in a meta tag: no scripts, styles from our own file only."""
    site = hostile_site()
    for name, html in every_page(site, pages.Urls(static=True)).items():
        metas = [
            dict(a)
            for a in _meta_tags(html)
            if dict(a).get("http-equiv") == "Content-Security-Policy"
        ]
        assert metas and metas[0]["content"] == pages.CSP, name
        assert "default-src 'none'" in pages.CSP and "script-src" not in pages.CSP


def _meta_tags(html: str) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []

    class Meta(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "meta":
                found.append([(k, v or "") for k, v in attrs])

    Meta().feed(html)
    return found


def test_diagram_escapes_hostile_names():
    """Names in the diagram are text in the SVG, never elements or attributes."""
    require("dot", "graphviz")
    bad = "shop/x\"><script>window.__pwned=1</script>:y'><img src=x onerror=1>"
    edges = [model.Edge("shop/app:1.0", bad, "follows")]
    svg = graph.diagram(edges, lambda ns, stream, tag: "../x.html")
    assert svg is not None
    page = parsed(svg)
    assert not {"script", "img", "foreignobject"} & set(page.tags)
    assert not [a for a, _ in page.attributes if a.startswith("on")]
    assert "window.__pwned=1" in "".join(page.text)


def test_sanitize_drops_scripts_handlers_styles_and_foreign_links():
    """SVG that is not a plain diagram loses scripts, foreign objects, handlers, style
    attributes and links that are not relative."""
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        b"<script>alert(1)</script><foreignObject><p>x</p></foreignObject>"
        b'<g onclick="alert(2)" style="x"><a xlink:href="javascript:alert(3)"><text>t</text></a>'
        b'<a xlink:href="//evil.example/x"><text>u</text></a>'
        b'<a xlink:href="../streams/shop/app.html#tag-1.0"><text>v</text></a></g>'
        b"<!-- --><script>alert(4)</script> --></svg>"
    )
    clean = graph.sanitize(svg)
    page = parsed(clean)
    assert "script" not in page.tags and "foreignobject" not in page.tags
    assert [v for a, v in page.attributes if a == "xlink:href"] == [
        "../streams/shop/app.html#tag-1.0"
    ]
    assert not [a for a, _ in page.attributes if a.startswith("on") or a == "style"]


def test_overview_paginates_and_keeps_filters_in_links():
    """Past a page of streams the overview links to the next page, keeping its filters."""
    streams = [
        ImageStream("shop", f"s{i:03d}", (), path=f"streams/shop/s{i:03d}.yaml") for i in range(120)
    ]
    site = model.build(model.Inputs(streams=streams, locks={}, config=Config(), now=NOW))
    daemon = pages.overview(site, pages.Urls(static=False), namespace="shop", page=1)
    static = pages.overview(site, pages.Urls(static=True), namespace="shop", page=2)
    assert 'href="./?namespace=shop&amp;page=2"' in daemon
    assert "s100" not in daemon and "s100" in static and "s000" not in static


def test_promotion_page_without_dot_keeps_the_table(tmp_path, monkeypatch):
    """Where Graphviz is missing the promotion page says so and still lists every path."""
    monkeypatch.setenv("PATH", str(tmp_path))
    v1 = TagSpec("1.0", TagReference(DOCKER_IMAGE, "registry.example/shop/app:1.0"))
    latest = TagSpec("latest", TagReference(IMAGE_STREAM_TAG, "1.0"))
    app = ImageStream("shop", "app", (v1, latest), path="streams/shop/app.yaml")
    site = model.build(model.Inputs(streams=[app], locks={}, config=Config(), now=NOW))
    urls = pages.Urls(static=True)
    svg = graph.promotion_svg(site, urls, None)
    html = pages.promotion(site, urls, None, svg)
    assert svg is None and "No diagram" in html
    assert "shop/app:1.0" in html and "shop/app:latest" in html
