"""The web view's data: states, history with commits, promotion paths, forge links, filters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from reconciler.config import Config
from reconciler.errors import ArgumentError
from reconciler.imagestream import (
    DOCKER_IMAGE,
    HOLD_ANNOTATION,
    IMAGE_STREAM_IMAGE,
    IMAGE_STREAM_TAG,
    ImageStream,
    TagReference,
    TagSpec,
)
from reconciler.lockfile import HistoryItem, LockEntry, StreamLock
from reconciler.trailers import TrailerBlock, format_message
from reconciler.web import model

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


def spec(name: str, kind: str = DOCKER_IMAGE, source: str = "", **extra: Any) -> TagSpec:
    ref = TagReference(kind, source or f"registry.example/shop/app:{name}", extra.pop("ns", None))
    return TagSpec(name, ref, line=extra.pop("line", 10), **extra)


def entry(tag: TagSpec, image: str, *history: str, namespace: str = "shop", **extra: Any):
    items = tuple(HistoryItem(d, f"registry.example/shop/app@{d}") for d in (image, *history))
    return LockEntry(
        tag.source,
        image,
        f"registry.example/shop/app@{image}",
        tag.spec_hash(namespace),
        imported_at="2026-11-29T10:00:00Z",
        history=items,
        **extra,
    )


def stream(name: str, *tags: TagSpec, namespace: str = "shop") -> ImageStream:
    return ImageStream(namespace, name, tags, path=f"streams/{namespace}/{name}.yaml", line=3)


def commit(sha: str, tag: str, source: str, previous: str | None, image: str) -> tuple[str, str]:
    block = TrailerBlock(tag, source, previous, image)
    return sha, format_message(f"{tag.split(':')[0]}: bump", "", [block])


def site(streams, locks, **extra: Any) -> model.Site:
    return model.build(
        model.Inputs(streams=streams, locks=locks, config=Config(), now=NOW, **extra)
    )


def one_tag(built: model.Site, name: str) -> model.TagRow:
    return next(t for s in built.streams for t in s.tags if t.name == name)


def test_held_tag_shows_its_reason():
    """A tag with the hold annotation is Held, with the annotation's reason."""
    held = spec("1.0", annotations={HOLD_ANNOTATION: "frozen for the audit"})
    app = stream("app", held)
    built = site([app], {app.key: StreamLock("shop", "app", {"1.0": entry(held, A)})})
    tag = one_tag(built, "1.0")
    assert (tag.state, tag.reason, tag.hold) == ("held", "Held", "frozen for the audit")


def test_reverted_tag_offline_shows_the_waiting_digest():
    """Offline, a lock moved away from the reconciler's last commit is a respected revert
    waiting on that commit's digest."""
    tag_spec = spec("1.0")
    app = stream("app", tag_spec)
    source = tag_spec.source.identity("shop", "app")
    commits = [commit("1" * 40, "shop/app:1.0", source, A, B)]
    built = site(
        [app], {app.key: StreamLock("shop", "app", {"1.0": entry(tag_spec, A)})}, commits=commits
    )
    tag = one_tag(built, "1.0")
    assert (tag.state, tag.reason, tag.waiting_image) == ("reverted", "RevertRespected", B)


def test_failure_recorded_offline_makes_the_tag_failed():
    """The last failed import a checkout recorded makes the tag Failed with its reason."""
    tag_spec = spec("1.0")
    app = stream("app", tag_spec)
    failures = {"shop/app:1.0": {"reason": "ManifestUnknown", "message": "no such tag", "at": "t"}}
    built = site(
        [app], {app.key: StreamLock("shop", "app", {"1.0": entry(tag_spec, A)})}, failures=failures
    )
    tag = one_tag(built, "1.0")
    assert (tag.state, tag.reason, tag.message) == ("failed", "ManifestUnknown", "no such tag")


def _status(**tag: Any) -> dict[str, Any]:
    item = {
        "name": "shop/app:1.0",
        "state": "ready",
        "conditions": [{"type": "Ready", "status": "True", "reason": "UpToDate", "message": ""}],
        "hold": None,
        "notPinned": None,
        "nextDue": None,
        "lastChecked": "2026-11-30T11:59:00Z",
        "lastError": None,
    }
    item.update(tag)
    return {"observedRevision": "f" * 40, "reconciling": False, "problems": [], "tags": [item]}


def test_daemon_status_revert_names_the_waiting_digest():
    """In the daemon, /status's notPinned RevertRespected digest is the tag's waiting image."""
    tag_spec = spec("1.0")
    app = stream("app", tag_spec)
    doc = _status(
        conditions=[
            {"type": "Ready", "status": "True", "reason": "RevertRespected", "message": ""}
        ],
        notPinned={"reason": "RevertRespected", "image": C},
    )
    built = site(
        [app], {app.key: StreamLock("shop", "app", {"1.0": entry(tag_spec, A)})}, status=doc
    )
    tag = one_tag(built, "1.0")
    assert (tag.state, tag.waiting_image, built.mode) == ("reverted", C, "daemon")


def test_daemon_status_failure_is_the_tags_reason():
    """A tag /status reports not ready is Failed with the Ready condition's reason and message."""
    tag_spec = spec("1.0")
    app = stream("app", tag_spec)
    doc = _status(
        state="failed",
        conditions=[
            {"type": "Ready", "status": "False", "reason": "RegistryUnavailable", "message": "down"}
        ],
    )
    built = site(
        [app], {app.key: StreamLock("shop", "app", {"1.0": entry(tag_spec, A)})}, status=doc
    )
    tag = one_tag(built, "1.0")
    assert (tag.state, tag.reason, tag.failure) == (
        "failed",
        "RegistryUnavailable",
        model.Failure("RegistryUnavailable", "down", "2026-11-30T11:59:00Z"),
    )


def test_daemon_next_due_comes_from_status():
    """A scheduled tag's next look-up is /status's nextDue, and it counts as due once passed."""
    tag_spec = spec("1.0", scheduled=True)
    app = stream("app", tag_spec)
    doc = _status(nextDue="2026-11-30T11:00:00Z")
    built = site(
        [app], {app.key: StreamLock("shop", "app", {"1.0": entry(tag_spec, A)})}, status=doc
    )
    tag = one_tag(built, "1.0")
    assert (tag.next_due, tag.due, built.streams[0].counts["due"]) == (
        "2026-11-30T11:00:00Z",
        True,
        1,
    )


def test_history_is_newest_first_with_the_commit_that_set_each_image():
    """History lists the current image first and links each image to the reconciler commit
    whose trailers set it, through the commit URL template."""
    tag_spec = spec("1.0")
    app = stream("app", tag_spec)
    source = tag_spec.source.identity("shop", "app")
    commits = [
        commit("2" * 40, "shop/app:1.0", source, A, B),
        commit("1" * 40, "shop/app:1.0", source, None, A),
    ]
    links = model.Links.parse("https://forge.example/x/commit/{sha}", None)
    lock = StreamLock("shop", "app", {"1.0": entry(tag_spec, B, A)})
    built = site([app], {app.key: lock}, commits=commits, links=links)
    history = one_tag(built, "1.0").history
    assert [(r.image, r.commit, r.current) for r in history] == [
        (B, "2" * 40, True),
        (A, "1" * 40, False),
    ]
    assert history[0].commit_url == "https://forge.example/x/commit/" + "2" * 40


def test_promotion_edges_name_alias_follow_and_pin():
    """Same-stream followers are aliases, other streams' followers follow (a grant across
    namespaces), ImageStreamImage pins point at the tag holding that image."""
    v1 = spec("1.0")
    latest = spec("latest", IMAGE_STREAM_TAG, "1.0")
    prod = spec("prod", IMAGE_STREAM_IMAGE, f"app@{A}")
    app = stream("app", v1, latest, prod)
    follower = spec("latest", IMAGE_STREAM_TAG, "app:latest", ns="shop")
    staging = stream("app", follower, namespace="staging")
    lock = StreamLock("shop", "app", {"1.0": entry(v1, A)})
    built = site([app, staging], {app.key: lock})
    found = {(e.source, e.target, e.kind, e.cross_namespace) for e in built.edges}
    assert found == {
        ("shop/app:1.0", "shop/app:latest", "alias", False),
        ("shop/app:1.0", "shop/app:prod", "pins", False),
        ("shop/app:latest", "staging/app:latest", "follows", True),
    }
    assert one_tag(built, "1.0").followers == ("shop/app:latest", "shop/app:prod")


def test_counts_and_filters_by_namespace_and_state():
    """Streams are filtered by namespace and by having a tag in a state."""
    held = spec("1.0", annotations={HOLD_ANNOTATION: "x"})
    shop = stream("app", held)
    other = stream("base", spec("1.0"), namespace="platform")
    locks = {shop.key: StreamLock("shop", "app", {"1.0": entry(held, A)})}
    built = site([shop, other], locks)
    assert [s.name for s in built.filtered(state="held")] == ["app"]
    assert [s.name for s in built.filtered(namespace="platform")] == ["base"]
    assert built.totals["held"] == 1 and built.totals["due"] == 1  # base:1.0 was never imported


def test_paginate_clamps_the_page_number():
    """A page past the end shows the last page; page sizes split the list."""
    page = model.paginate(list(range(250)), 9, size=100)
    assert (page.number, page.count, page.items[0], len(page.items)) == (3, 3, 200, 50)


@pytest.mark.parametrize(
    "template",
    [
        "javascript:alert(1)//{sha}",
        "data:text/html,{sha}",
        "//forge.example/{sha}",
        "https://forge.example/commit/{sha}/{other}",
        "https://forge.example/commit/",
        "https://forge.example/{sha!r}",
        "https://forge.example/ {sha}",
    ],
)
def test_commit_template_other_than_http_with_sha_is_refused(template):
    """Only http(s) templates with exactly the known placeholders are accepted."""
    with pytest.raises(ArgumentError):
        model.Links.parse(template, None)


def test_edit_url_quotes_the_path():
    """Values put into a template are URL-quoted: they cannot add a scheme, a query or quotes."""
    links = model.Links.parse(None, "https://forge.example/edit/main/{path}#L{line}")
    assert links.edit_url('streams/a b/"x?.yaml', 7) == (
        "https://forge.example/edit/main/streams/a%20b/%22x%3F.yaml#L7"
    )
