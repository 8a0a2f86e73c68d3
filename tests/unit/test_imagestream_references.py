"""validate cross-checks stream tag and stream image references offline, located, all at once."""

from __future__ import annotations

from pathlib import Path

from reconciler.imagestream import TagReference, validate_repo
from reconciler.lockfile import HistoryItem, LockEntry, StreamLock, dumps

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def stream(name: str, tags: str, namespace: str = "shop") -> str:
    return (
        "apiVersion: image.openshift.io/v1\n"
        "kind: ImageStream\n"
        f"metadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"spec:\n  tags:\n{tags}"
    )


def tag(name: str, kind: str, source: str) -> str:
    return f"  - name: {name}\n    from:\n      kind: {kind}\n      name: {source}\n"


APP = stream("app", tag("test", "DockerImage", "quay.io/shop/app:1"))


def problems(root: Path, files: dict[str, str]) -> list[str]:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return [str(p) for p in validate_repo(root)]


def test_a_follow_of_a_tag_that_does_not_exist_is_located_with_did_you_mean(tmp_path: Path):
    """name: tset names no tag of the stream: path:line:col of from.name, 'did you mean test'."""
    web = stream("web", tag("latest", "ImageStreamTag", "app:tset"))
    found = problems(tmp_path, {"streams/shop/app.yaml": APP, "streams/shop/web.yaml": web})
    assert found == [
        "streams/shop/web.yaml:11:13: spec.tags[0].from.name: shop/app:tset is not a tag; "
        "did you mean 'app:test'?"
    ]


def test_a_follow_of_a_stream_that_does_not_exist_suggests_the_close_one(tmp_path: Path):
    """name: ap:test names no stream: the message says so and suggests app:test."""
    web = stream("web", tag("latest", "ImageStreamTag", "ap:test"))
    found = problems(tmp_path, {"streams/shop/app.yaml": APP, "streams/shop/web.yaml": web})
    assert len(found) == 1
    assert "image stream shop/ap does not exist" in found[0]
    assert found[0].endswith("did you mean 'app:test'?")


def test_a_follow_of_a_tag_of_its_own_stream_by_short_name(tmp_path: Path):
    """A same-stream follow (name: tset) suggests the tag name as written."""
    text = stream(
        "app", tag("test", "DockerImage", "quay.io/shop/app:1") + tag("x", "ImageStreamTag", "tset")
    )
    [found] = problems(tmp_path, {"streams/shop/app.yaml": text})
    assert found.endswith("shop/app:tset is not a tag; did you mean 'test'?")


def test_a_follow_cycle_is_reported_at_each_member(tmp_path: Path):
    """a follows b and b follows a: both tags are reported, as plan would fail them."""
    text = stream("app", tag("a", "ImageStreamTag", "b") + tag("b", "ImageStreamTag", "a"))
    found = problems(tmp_path, {"streams/shop/app.yaml": text})
    assert len(found) == 2 and all("follow cycle" in line for line in found)


def test_a_stream_image_not_in_the_lock_is_reported(tmp_path: Path):
    """An ImageStreamImage pin of a digest the stream's lock does not know is located."""
    lock = StreamLock(
        "shop",
        "app",
        {
            "test": LockEntry(
                source=TagReference("DockerImage", "quay.io/shop/app:1"),
                image=DIGEST,
                docker_image_reference=f"quay.io/shop/app@{DIGEST}",
                spec_hash="0" * 16,
                history=(HistoryItem(DIGEST, f"quay.io/shop/app@{DIGEST}"),),
            )
        },
    )
    good = stream("prod", tag("ok", "ImageStreamImage", f"app@{DIGEST}"))
    bad = stream("stage", tag("no", "ImageStreamImage", f"app@{OTHER}"))
    files = {
        "streams/shop/app.yaml": APP,
        "streams/shop/prod.yaml": good,
        "streams/shop/stage.yaml": bad,
        "locks/shop/app.lock.yaml": dumps(lock).decode(),
    }
    [found] = problems(tmp_path, files)
    assert found.startswith("streams/shop/stage.yaml:11:13: spec.tags[0].from.name: ")
    assert "is not in the lock or history of shop/app" in found


def test_every_problem_of_a_stream_is_reported_in_one_run(tmp_path: Path):
    """A schema error in one tag does not hide a bad pull spec in another tag of the stream."""
    text = stream(
        "app",
        tag("one", "Nonsense", "quay.io/shop/app:1") + tag("two", "DockerImage", "quay.io/A/b::x"),
    )
    found = problems(tmp_path, {"streams/shop/app.yaml": text})
    assert len(found) == 2, found
    assert "spec.tags[0].from.kind" in found[0] and "spec.tags[1].from.name" in found[1]
