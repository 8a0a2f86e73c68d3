"""The pure planner: import decisions, the revert rule, following, pins, history, commits."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from reconciler import status
from reconciler.config import AccessRule, Config, GitConfig
from reconciler.errors import Problem
from reconciler.image import Image, ImportFailure, ImportRequest
from reconciler.imagestream import ImageStream, TagReference, TagSpec
from reconciler.lockfile import LockSet, loads
from reconciler.planner import import_requests, plan
from reconciler.trailers import parse_message

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
REG = "registry.example.com"


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def docker(tag: str, source: str, **kw: object) -> TagSpec:
    return TagSpec(tag, TagReference("DockerImage", source), **kw)  # type: ignore[arg-type]


def follow(tag: str, target: str, namespace: str | None = None, **kw: object) -> TagSpec:
    return TagSpec(tag, TagReference("ImageStreamTag", target, namespace), **kw)  # type: ignore[arg-type]


def pin(tag: str, target: str, namespace: str | None = None) -> TagSpec:
    return TagSpec(tag, TagReference("ImageStreamImage", target, namespace))


def stream(name: str, *tags: TagSpec, ns: str = "shop") -> ImageStream:
    return ImageStream(ns, name, tuple(tags), path=f"streams/{ns}/{name}.yaml")


def obs(source: str, n: int, **kw: object) -> dict:
    return {ImportRequest(source).key: Image(digest(n), created="2026-11-01T00:00:00Z", **kw)}  # type: ignore[arg-type]


def run(streams, locks=None, observations=None, bases=None, config=None, **kw):
    return plan(
        streams,
        {} if locks is None else locks,
        bases or {},
        observations or {},
        config or Config(),
        kw.pop("now", NOW),
        **kw,
    )


def reread(result, previous=None) -> dict:
    locks = dict(previous or {})
    for path, data in result.files.items():
        if data is None:
            locks = {k: v for k, v in locks.items() if v.path != path}
        else:
            lock = loads(data)
            locks[lock.key] = lock
    return locks


def state(result) -> dict[str, str]:
    return {
        f"{ns}/{name}:{tag}": entry.image
        for (ns, name), lock in result.locks.items()
        for tag, entry in lock.tags.items()
    }


def bases_from(result, previous=None) -> dict:
    found = dict(previous or {})
    for commit in result.commits:
        for block in parse_message(commit.message):
            found[(block.tag, block.source)] = block.image
    return found


APP = f"{REG}/shop/app:1.0"


def test_new_tag_is_imported_with_history_of_one():
    """A tag seen for the first time is pinned to what the registry serves."""
    result = run([stream("app", docker("test", APP))], observations=obs(APP, 1))
    entry = result.locks[("shop", "app")].tags["test"]
    assert entry.image == digest(1)
    assert entry.docker_image_reference == f"{REG}/shop/app@{digest(1)}"
    assert entry.imported_at == "2026-11-29T12:00:00Z"
    assert [h.image for h in entry.history] == [digest(1)]
    assert list(result.files) == ["locks/shop/app.lock.yaml"]


def test_second_pass_with_same_image_changes_nothing():
    """Re-planning the planned state with the same registry answer writes no file."""
    streams = [stream("app", docker("test", APP, scheduled=True))]
    first = run(streams, observations=obs(APP, 1))
    second = run(
        streams, reread(first), obs(APP, 1), bases_from(first), now=NOW + timedelta(hours=1)
    )
    assert not second.changed and second.commits == ()


def test_new_digest_bumps_and_prepends_history():
    """A scheduled tag whose registry digest changed is bumped; history is newest first."""
    streams = [stream("app", docker("test", APP, scheduled=True))]
    first = run(streams, observations=obs(APP, 1))
    later = NOW + timedelta(hours=1)
    second = run(streams, reread(first), obs(APP, 2), bases_from(first), now=later)
    entry = second.locks[("shop", "app")].tags["test"]
    assert entry.image == digest(2)
    assert [h.image for h in entry.history] == [digest(2), digest(1)]
    assert entry.imported_at == "2026-11-29T13:00:00Z"
    [commit] = second.commits
    [block] = parse_message(commit.message)
    assert (block.tag, block.previous, block.image) == ("shop/app:test", digest(1), digest(2))


def test_revert_is_respected_while_registry_serves_reverted_digest():
    """L != B and U == B: a person reverted the bump, so the pass keeps their choice."""
    streams = [stream("app", docker("test", APP, scheduled=True))]
    first = run(streams, observations=obs(APP, 1))
    bump = run(streams, reread(first), obs(APP, 2), bases_from(first))
    bases = bases_from(bump, bases_from(first))
    reverted = reread(first)  # git revert restores the old lock bytes
    again = run(streams, reverted, obs(APP, 2), bases)
    assert not again.changed
    [tag_status] = again.statuses
    assert tag_status.reason == status.REVERT_RESPECTED


def test_revert_is_left_when_registry_serves_a_new_digest():
    """After a revert, a third image is a new bump."""
    streams = [stream("app", docker("test", APP, scheduled=True))]
    first = run(streams, observations=obs(APP, 1))
    bump = run(streams, reread(first), obs(APP, 2), bases_from(first))
    bases = bases_from(bump, bases_from(first))
    again = run(streams, reread(first), obs(APP, 3), bases)
    assert state(again) == {"shop/app:test": digest(3)}


def test_forced_import_overrides_a_respected_revert():
    """import-image is an explicit request: it takes what the registry serves now."""
    streams = [stream("app", docker("test", APP))]
    first = run(streams, observations=obs(APP, 1))
    bump = run(streams, reread(first), obs(APP, 2), bases_from(first), forced={"shop/app"})
    bases = bases_from(bump, bases_from(first))
    again = run(streams, reread(first), obs(APP, 2), bases, forced={"shop/app:test"})
    assert state(again) == {"shop/app:test": digest(2)}


def test_hold_annotation_freezes_the_tag():
    """A held tag keeps its pin and says why."""
    held = docker("test", APP, scheduled=True, annotations={"streamlock.dev/hold": "CVE triage"})
    first = run([stream("app", docker("test", APP, scheduled=True))], observations=obs(APP, 1))
    second = run([stream("app", held)], reread(first), obs(APP, 2))
    assert not second.changed
    [tag_status] = second.statuses
    assert tag_status.reason == status.HELD and "CVE triage" in tag_status.message
    assert import_requests([stream("app", held)], reread(first), Config(), NOW) == []


def test_unscheduled_tag_is_not_reimported():
    """Without importPolicy.scheduled a tag is imported on creation and spec change only."""
    streams = [stream("app", docker("test", APP))]
    first = run(streams, observations=obs(APP, 1))
    assert import_requests(streams, reread(first), Config(), NOW) == []
    second = run(streams, reread(first), obs(APP, 2))
    assert not second.changed


def test_scheduled_tag_is_due_after_the_interval_only():
    """A scheduled tag is due when never checked, or when the interval has passed."""
    streams = [stream("app", docker("test", APP, scheduled=True))]
    locks = reread(run(streams, observations=obs(APP, 1)))
    config = Config(import_interval=600)
    checked = {"shop/app:test": NOW}
    assert len(import_requests(streams, locks, config, NOW)) == 1
    assert (
        import_requests(streams, locks, config, NOW + timedelta(seconds=599), last_checked=checked)
        == []
    )
    due = import_requests(
        streams, locks, config, NOW + timedelta(seconds=600), last_checked=checked
    )
    assert [r.reference for r in due] == [APP]
    assert due[0].known is not None and due[0].known.digest == digest(1)


def test_spec_change_reimports_even_after_a_revert():
    """A changed from always re-imports, whatever the revert rule would say."""
    first = run([stream("app", docker("test", APP))], observations=obs(APP, 1))
    other = f"{REG}/shop/app:2.0"
    changed = [stream("app", docker("test", other))]
    assert [r.reference for r in import_requests(changed, reread(first), Config(), NOW)] == [other]
    result = run(changed, reread(first), obs(other, 1), bases_from(first))
    entry = result.locks[("shop", "app")].tags["test"]
    assert entry.source.name == other and entry.image == digest(1)
    assert result.changed  # specHash and from changed even though the digest did not


def test_identical_references_are_requested_once():
    """Many streams naming the same image cost one lookup."""
    streams = [stream(f"s{i}", docker("a", APP), docker("b", APP)) for i in range(3)]
    assert len(import_requests(streams, {}, Config(), NOW)) == 1


def test_registry_failure_keeps_last_good_pin():
    """A failed lookup keeps the pin and reports the reason."""
    streams = [stream("app", docker("test", APP, scheduled=True))]
    first = run(streams, observations=obs(APP, 1))
    failure = {ImportRequest(APP).key: ImportFailure(status.MANIFEST_UNKNOWN, "tag gone")}
    second = run(streams, reread(first), failure)
    assert not second.changed
    [tag_status] = second.statuses
    assert not tag_status.ready and tag_status.reason == status.MANIFEST_UNKNOWN
    assert state(second) == {"shop/app:test": digest(1)}


def test_failed_tag_does_not_stop_others():
    """One missing image fails alone; the rest of the stream is pinned."""
    other = f"{REG}/shop/app:2.0"
    failure = {ImportRequest(other).key: ImportFailure(status.MANIFEST_UNKNOWN, "no such tag")}
    result = run(
        [stream("app", docker("a", APP), docker("b", other))],
        observations={**obs(APP, 1), **failure},
    )
    assert state(result) == {"shop/app:a": digest(1)}
    assert [s.tag for s in result.failed] == ["b"]


def test_alias_follows_same_stream_tag():
    """ImageStreamTag 'name: test' tracks the test tag of the same stream."""
    result = run(
        [stream("app", docker("test", APP), follow("latest", "test"))], observations=obs(APP, 1)
    )
    assert state(result) == {"shop/app:test": digest(1), "shop/app:latest": digest(1)}
    latest = result.locks[("shop", "app")].tags["latest"]
    assert latest.docker_image_reference == f"{REG}/shop/app@{digest(1)}"


def test_follower_chain_across_streams_resolves_in_one_pass():
    """Chains resolve to a fixpoint whatever the file order."""
    streams = [
        stream("a", follow("x", "b:y")),
        stream("b", follow("y", "c:z")),
        stream("c", docker("z", APP)),
    ]
    result = run(streams, observations=obs(APP, 7))
    assert set(state(result).values()) == {digest(7)}


def test_follow_cycle_fails_only_its_members():
    """Tags in a cycle are errors; other tags in the same streams still resolve."""
    streams = [stream("app", follow("a", "b"), follow("b", "a"), docker("c", APP))]
    result = run(streams, observations=obs(APP, 1))
    reasons = {s.tag: s.reason for s in result.statuses}
    assert reasons["a"] == reasons["b"] == status.FOLLOW_CYCLE
    assert state(result) == {"shop/app:c": digest(1)}


def test_follower_of_missing_tag_fails():
    """Following a tag that does not exist is an error for the follower only."""
    result = run([stream("app", follow("latest", "nope"))])
    [tag_status] = result.statuses
    assert tag_status.reason == status.FOLLOW_FAILED and not result.changed


def test_cross_namespace_follow_needs_a_grant():
    """staging may follow shop's tags only when access.shop.pullers lists it."""
    streams = [
        stream("app", docker("test", APP)),
        stream("app", follow("x", "app:test", "shop"), ns="staging"),
    ]
    denied = run(streams, observations=obs(APP, 1))
    assert {s.reason for s in denied.statuses if s.namespace == "staging"} == {status.ACCESS_DENIED}
    config = Config(access={"shop": AccessRule(pullers=("staging",))})
    granted = run(streams, observations=obs(APP, 1), config=config)
    assert state(granted)["staging/app:x"] == digest(1)


def test_stream_image_pins_a_digest_from_history():
    """ImageStreamImage app@sha256:… pins an image that is in the stream's lock history."""
    streams = [stream("app", docker("test", APP, scheduled=True))]
    first = run(streams, observations=obs(APP, 1))
    second = run(streams, reread(first), obs(APP, 2), bases_from(first))
    promoted = [stream("app", docker("test", APP, scheduled=True), pin("prod", f"app@{digest(1)}"))]
    third = run(promoted, reread(second, reread(first)), obs(APP, 2))
    assert state(third)["shop/app:prod"] == digest(1)
    prod = third.locks[("shop", "app")].tags["prod"]
    assert prod.docker_image_reference == f"{REG}/shop/app@{digest(1)}"


def test_stream_image_unknown_digest_fails():
    """A pin to a digest the stream never had is an error for that tag."""
    streams = [stream("app", docker("test", APP), pin("prod", f"app@{digest(9)}"))]
    result = run(streams, observations=obs(APP, 1))
    reasons = {s.tag: s.reason for s in result.statuses}
    assert reasons["prod"] == status.IMAGE_UNKNOWN and reasons["test"] == status.IMPORT_SUCCEEDED


def test_promotion_pin_survives_later_bumps_of_the_source():
    """prod pinned to test's digest stays when test moves on."""
    first = run([stream("app", docker("test", APP, scheduled=True))], observations=obs(APP, 1))
    promoted = [stream("app", docker("test", APP, scheduled=True), pin("prod", f"app@{digest(1)}"))]
    second = run(promoted, reread(first), obs(APP, 1), bases_from(first))
    third = run(promoted, reread(second, reread(first)), obs(APP, 2), bases_from(second))
    assert state(third) == {"shop/app:test": digest(2), "shop/app:prod": digest(1)}


def test_reference_true_pins_as_given_without_a_lookup():
    """reference: true records the digest reference and asks no registry."""
    ref = f"{REG}/shop/app@{digest(5)}"
    streams = [stream("app", docker("ext", ref, reference=True))]
    assert import_requests(streams, {}, Config(), NOW) == []
    result = run(streams)
    entry = result.locks[("shop", "app")].tags["ext"]
    assert entry.image == digest(5) and entry.docker_image_reference == ref


def test_reference_true_with_mutable_tag_fails():
    """A mutable tag cannot be recorded as a reference."""
    result = run([stream("app", docker("ext", APP, reference=True))])
    [tag_status] = result.statuses
    assert tag_status.reason == status.INVALID_SPEC and not result.changed


def test_reference_policy_local_rewrites_pull_spec():
    """referencePolicy Local points consumers at the configured local registry."""
    config = Config(local_registry="registry.internal:5000")
    spec = docker("test", APP, reference_policy="Local")
    result = run([stream("app", spec)], observations=obs(APP, 1), config=config)
    entry = result.locks[("shop", "app")].tags["test"]
    assert entry.docker_image_reference == f"registry.internal:5000/shop/app@{digest(1)}"


def test_reference_policy_change_recomputes_without_reimport():
    """Switching referencePolicy rewrites the pull spec but is not a re-import."""
    config = Config(local_registry="registry.internal:5000")
    first = run([stream("app", docker("test", APP))], observations=obs(APP, 1), config=config)
    local = [stream("app", docker("test", APP, reference_policy="Local"))]
    assert import_requests(local, reread(first), config, NOW) == []
    second = run(local, reread(first), config=config, bases=bases_from(first))
    entry = second.locks[("shop", "app")].tags["test"]
    assert entry.docker_image_reference.startswith("registry.internal:5000/shop/app@")
    assert entry.imported_at == "2026-11-29T12:00:00Z"


def test_removed_tag_leaves_the_lock():
    """A tag removed from the spec is removed from the lock."""
    first = run([stream("app", docker("a", APP), follow("b", "a"))], observations=obs(APP, 1))
    second = run([stream("app", docker("a", APP))], reread(first))
    assert state(second) == {"shop/app:a": digest(1)}
    assert any(c.action == status.REMOVED for c in second.changes)


def test_removed_stream_deletes_its_lock_unless_pruning_is_off():
    """A deleted stream file deletes its lock, but not while some stream file is broken."""
    first = run([stream("app", docker("a", APP))], observations=obs(APP, 1))
    gone = run([], reread(first))
    assert gone.files == {"locks/shop/app.lock.yaml": None}
    kept = run([], reread(first), prune=False)
    assert not kept.changed


def test_history_is_capped_at_history_limit():
    """History keeps historyLimit images, newest first."""
    config = Config(history_limit=3)
    streams = [stream("app", docker("test", APP, scheduled=True))]
    locks: dict = {}
    for n in range(1, 7):
        result = run(streams, locks, obs(APP, n), config=config)
        locks = reread(result, locks)
    history = locks[("shop", "app")].tags["test"].history
    assert [h.image for h in history] == [digest(6), digest(5), digest(4)]


def test_grouping_stream_makes_one_commit_per_stream():
    """The default grouping commits each changed stream on its own."""
    streams = [stream("a", docker("x", APP), docker("y", APP)), stream("b", docker("z", APP))]
    result = run(streams, observations=obs(APP, 1))
    assert [c.subject.split(":")[0] for c in result.commits] == ["shop/a", "shop/b"]
    assert len(parse_message(result.commits[0].message)) == 2


def test_grouping_pass_and_tag():
    """grouping: pass makes one commit; grouping: tag one per tag, each with valid lock bytes."""
    streams = [stream("a", docker("x", APP), docker("y", APP)), stream("b", docker("z", APP))]
    per_pass = run(streams, observations=obs(APP, 1), config=Config(git=GitConfig(grouping="pass")))
    assert len(per_pass.commits) == 1 and len(per_pass.commits[0].files) == 2
    per_tag = run(streams, observations=obs(APP, 1), config=Config(git=GitConfig(grouping="tag")))
    assert len(per_tag.commits) == 3
    last_a = [c for c in per_tag.commits if "locks/shop/a.lock.yaml" in c.files][-1]
    assert last_a.files["locks/shop/a.lock.yaml"] == per_tag.files["locks/shop/a.lock.yaml"]
    first_a = loads(per_tag.commits[0].files["locks/shop/a.lock.yaml"])
    assert list(first_a.tags) == ["x"]


def test_commit_message_has_subject_body_and_trailers():
    """Subject names the stream and digests; the body says where the image came from."""
    result = run(
        [stream("app", docker("test", APP))],
        observations=obs(APP, 1, labels={"org.opencontainers.image.version": "1.0.3"}),
    )
    [commit] = result.commits
    assert commit.subject.startswith("shop/app: test")
    assert "version 1.0.3" in commit.message
    assert f"Streamlock-From: {APP}" in commit.message


def test_lock_file_is_stable_bytes():
    """The lock written is exactly what dumping the parsed lock gives again."""
    from reconciler.lockfile import dumps

    result = run(
        [stream("app", docker("test", APP), follow("latest", "test"))], observations=obs(APP, 1)
    )
    data = result.files["locks/shop/app.lock.yaml"]
    assert dumps(loads(data)) == data
    assert loads(data) == result.locks[("shop", "app")]


def test_follower_trailer_names_its_source_in_full():
    """A same-stream alias's Streamlock-From names namespace, stream and tag."""
    result = run(
        [stream("app", docker("test", APP), follow("latest", "test"))], observations=obs(APP, 1)
    )
    sources = {b.tag: b.source for b in parse_message(result.commits[0].message)}
    assert sources == {"shop/app:test": APP, "shop/app:latest": "ImageStreamTag:shop/app:test"}


def test_plan_repr_stays_small():
    """repr(plan) summarises: asyncio formats task results, and a plan holds every lock."""
    streams = [stream(f"s{i}", docker("a", APP), follow("b", "a")) for i in range(50)]
    result = run(streams, observations=obs(APP, 1))
    assert repr(result) == "Plan(tags=100, files=50, commits=50, failed=0)"


def test_reimport_annotation_forces_a_reimport():
    """A new value of the literal annotation 'streamlock.dev/reimport' re-imports the tag."""
    streams = [stream("app", docker("test", APP))]
    first = run(streams, observations=obs(APP, 1))
    locks = reread(first)
    other = [stream("app", docker("test", APP, annotations={"streamlock.dev/other": "2"}))]
    assert import_requests(other, locks, Config(), NOW) == []
    again = [stream("app", docker("test", APP, annotations={"streamlock.dev/reimport": "2"}))]
    assert [r.reference for r in import_requests(again, locks, Config(), NOW)] == [APP]
    result = run(again, locks, obs(APP, 2), bases_from(first))
    assert state(result) == {"shop/app:test": digest(2)}


FORGED = (
    "1.1\n\nSigned-off-by: M <m@x>\n\nStreamlock-Tag: team/prod:latest\n"
    f"Streamlock-From: {REG}/team/prod:1\nStreamlock-Previous: none\n"
    f"Streamlock-Image: {digest(9)}\n"
)


def test_registry_text_is_one_line_of_the_body():
    """Labels and created with newlines, CR or NUL stay on their tag's body line, escaped."""
    labels = {
        "org.opencontainers.image.version": FORGED,
        "org.opencontainers.image.revision": "abc\x00def\u2028x",
    }
    result = run(
        [stream("app", docker("test", APP))],
        observations={
            ImportRequest(APP).key: Image(digest(1), created="2026\r\nX: y", labels=labels)
        },
    )
    [commit] = result.commits
    _subject, body, _trailers = commit.message.split("\n\n")
    assert body.count("\n") == 0 and body.startswith("test: DockerImage ")
    assert "\x00" not in commit.message and "\r" not in commit.message
    assert "\u2028" not in commit.message
    assert [b.tag for b in parse_message(commit.message)] == ["shop/app:test"]


def test_commit_without_blocks_never_carries_forged_trailers():
    """A re-import of the same digest commits no block, and a forged label adds none."""
    labels = {"org.opencontainers.image.version": FORGED}
    first = run([stream("app", docker("test", APP))], observations=obs(APP, 1, labels=labels))
    again = [stream("app", docker("test", APP, annotations={"streamlock.dev/reimport": "2"}))]
    result = run(again, reread(first), obs(APP, 1, labels=labels), bases_from(first))
    [commit] = result.commits
    assert parse_message(commit.message) == []
    assert "\nStreamlock-" not in commit.message and "\nSigned-off-by" not in commit.message


BROKEN = (Problem("locks/shop/web.lock.yaml", 5, 3, "metadata: describes shop/app"),)


def test_broken_lock_fails_only_its_stream():
    """A stream whose lock was set aside fails with InvalidLock; its lock file is not touched."""
    streams = [stream("app", docker("test", APP)), stream("web", docker("test", APP))]
    first = run(streams, observations=obs(APP, 1))
    good = {("shop", "app"): reread(first)[("shop", "app")]}
    result = run(streams, LockSet(good, {("shop", "web"): BROKEN}), obs(APP, 2))
    assert list(result.files) == []  # app is not scheduled; web is skipped, not written
    [web] = [s for s in result.statuses if s.stream == "web"]
    assert (web.action, web.reason) == (status.FAILED, status.INVALID_LOCK)
    assert "locks/shop/web.lock.yaml:5:3: metadata: describes shop/app" in web.message
    assert result.problems == BROKEN
    assert ("shop", "web") not in result.locks
    assert import_requests(streams, LockSet(good, {("shop", "web"): BROKEN}), Config(), NOW) == []


def test_broken_lock_without_a_stream_is_not_pruned():
    """A lock set aside is never deleted, even when its stream is gone."""
    streams = [stream("app", docker("test", APP))]
    result = run(streams, LockSet({}, {("shop", "web"): BROKEN}), obs(APP, 1))
    assert list(result.files) == ["locks/shop/app.lock.yaml"]
    assert result.problems == BROKEN


def test_follower_of_a_stream_with_a_broken_lock_keeps_its_pin():
    """A follower in another stream keeps what it had and says why."""
    streams = [stream("web", docker("test", APP)), stream("app", follow("x", "web:test"))]
    first = reread(run(streams, observations=obs(APP, 1)))
    locks = LockSet({("shop", "app"): first[("shop", "app")]}, {("shop", "web"): BROKEN})
    result = run(streams, locks, obs(APP, 2))
    assert result.files == {}
    [follower] = [s for s in result.statuses if s.stream == "app"]
    assert follower.reason == status.FOLLOW_FAILED and follower.image == digest(1)


def test_a_lock_that_fails_its_schema_is_never_written():
    """A registry answer the lock schema refuses fails that stream; the others are written."""
    bad = f"{REG}/shop/bad:1"
    streams = [stream("app", docker("test", APP)), stream("bad", docker("test", bad))]
    observations = {**obs(APP, 1), **obs(bad, 2, platform="Linux/AMD64 x")}
    result = run(streams, observations=observations)
    assert list(result.files) == ["locks/shop/app.lock.yaml"]
    [failed] = result.failed
    assert (failed.stream, failed.reason) == ("bad", status.INVALID_LOCK)
    assert "platform" in failed.message


def test_lone_surrogates_from_a_registry_become_replacement_characters():
    """JSON can carry a lone surrogate that UTF-8 cannot; the lock gets U+FFFD instead."""
    labels = {"org.opencontainers.image.version": "1.0\ud800"}
    result = run([stream("app", docker("test", APP))], observations=obs(APP, 1, labels=labels))
    data = result.files["locks/shop/app.lock.yaml"]
    assert loads(data).tags["test"].labels["org.opencontainers.image.version"] == "1.0\ufffd"


def _followed(streams, config=None) -> dict:
    """The locks of a first pass in which app:x follows web:test at digest 1."""
    return reread(run(streams, observations=obs(APP, 1), config=config))


FOLLOWING = [stream("web", docker("test", APP)), stream("app", follow("x", "web:test"))]
OTHER = f"{REG}/shop/other:1.0"
FOLLOW_NEW = stream("app", follow("x", "web:new"))


@pytest.mark.parametrize(
    ("streams", "reason"),
    [
        ([stream("app", follow("x", "web:test"))], status.FOLLOW_FAILED),
        ([stream("web", docker("prod", APP)), FOLLOWING[1]], status.FOLLOW_FAILED),
        ([stream("web", follow("test", "app:x")), FOLLOWING[1]], status.FOLLOW_CYCLE),
        (
            [stream("web", docker("test", APP), docker("new", OTHER)), FOLLOW_NEW],
            status.FOLLOW_FAILED,
        ),
    ],
    ids=["stream-gone", "tag-gone", "cycle", "target-without-image"],
)
def test_failing_follower_keeps_its_pin(streams, reason):
    """A follower whose target cannot give an image keeps its last pin; its lock is not written."""
    result = run(streams, _followed(FOLLOWING), obs(APP, 2), prune=False)
    [follower] = [s for s in result.statuses if s.stream == "app"]
    assert (follower.action, follower.reason) == (status.FAILED, reason)
    assert result.locks[("shop", "app")] == _followed(FOLLOWING)[("shop", "app")]
    assert "locks/shop/app.lock.yaml" not in result.files


def test_cycle_keeps_the_pins_of_every_member():
    """Every tag of a new follow cycle keeps the pin it had."""
    streams = [stream("web", follow("test", "app:x")), FOLLOWING[1]]
    result = run(streams, _followed(FOLLOWING), obs(APP, 2), prune=False)
    assert state(result) == {"shop/web:test": digest(1), "shop/app:x": digest(1)}


GRANT = Config(access={"shop": AccessRule(pullers=("staging",))})


@pytest.mark.parametrize(
    "spec",
    [follow("x", "web:test", "shop"), pin("x", f"web@{digest(1)}", "shop")],
    ids=["follower", "stream-image"],
)
def test_revoked_grant_fails_and_keeps_the_pin(spec):
    """A tag of another namespace fails with AccessDenied once the grant is gone, pin kept."""
    streams = [stream("web", docker("test", APP)), stream("app", spec, ns="staging")]
    first = _followed(streams, GRANT)
    assert state(run(streams, first, obs(APP, 1), config=GRANT))["staging/app:x"] == digest(1)
    result = run(streams, first, obs(APP, 2))
    [denied] = [s for s in result.statuses if s.namespace == "staging"]
    assert (denied.action, denied.reason) == (status.FAILED, status.ACCESS_DENIED)
    assert result.locks[("staging", "app")] == first[("staging", "app")]
    assert "locks/staging/app.lock.yaml" not in result.files


@pytest.mark.parametrize(
    "spec",
    [
        pin("prod", f"app@{digest(1)}"),
        docker("prod", f"{REG}/shop/app@{digest(1)}", reference=True),
    ],
    ids=["stream-image", "reference"],
)
def test_second_pass_over_a_digest_pin_changes_nothing(spec):
    """A pin by digest keeps its history and import time: the next pass writes no file."""
    streams = [stream("app", docker("test", APP), spec)]
    first = run(streams, observations=obs(APP, 1))
    second = run(streams, reread(first), obs(APP, 1), bases_from(first), now=NOW + timedelta(1))
    assert not second.changed and second.files == {}


def test_broken_lock_does_not_stop_the_streams_after_it():
    """Streams sorted after one whose lock was set aside are still reconciled."""
    streams = [stream("a", docker("test", APP)), stream("b", docker("test", APP))]
    result = run(streams, LockSet({}, {("shop", "a"): BROKEN}), obs(APP, 1))
    assert list(result.files) == ["locks/shop/b.lock.yaml"]


def test_pruning_goes_on_past_a_stream_that_exists():
    """Every lock of a removed stream is deleted, also those sorted after a kept one."""
    streams = [stream(name, docker("test", APP)) for name in ("a", "y", "z")]
    locks = reread(run(streams, observations=obs(APP, 1)))
    result = run(streams[:1], locks, obs(APP, 1))
    assert result.files == {"locks/shop/y.lock.yaml": None, "locks/shop/z.lock.yaml": None}
    kept = run(streams[:1], locks, obs(APP, 1), prune=False)
    assert kept.locks == locks


def test_grouping_tag_steps_keep_the_other_tags():
    """Each per-tag commit holds the stream's other tags as they were at that step."""
    tag = Config(git=GitConfig(grouping="tag"))
    two = stream("a", docker("x", APP, scheduled=True), docker("y", APP, scheduled=True))
    streams = [replace(two, path="streams/shop/all.yaml")]
    first = run(streams, observations=obs(APP, 1), config=tag)
    later = NOW + timedelta(hours=1)
    second = run(streams, reread(first), obs(APP, 2), bases_from(first), config=tag, now=later)
    steps = [loads(c.files["locks/shop/a.lock.yaml"]) for c in second.commits]
    assert [{t: e.image for t, e in s.tags.items()} for s in steps] == [
        {"x": digest(2), "y": digest(1)},
        {"x": digest(2), "y": digest(2)},
    ]
    assert [s.stream_file for s in steps] == ["streams/shop/all.yaml"] * 2


def test_grouping_tag_deletes_a_removed_stream_at_its_last_step():
    """A removed stream's lock loses one tag per commit and is deleted by the last one."""
    tag = Config(git=GitConfig(grouping="tag"))
    streams = [stream("a", docker("x", APP), docker("y", APP)), stream("b", docker("x", APP))]
    locks = reread(run(streams, observations=obs(APP, 1), config=tag))
    result = run(streams[1:], locks, obs(APP, 1), config=tag)
    files = [c.files["locks/shop/a.lock.yaml"] for c in result.commits]
    assert list(loads(files[0]).tags) == ["y"] and files[1] is None


def test_follower_revert_is_respected():
    """A person's revert of a same-stream follower stays while its source still serves the base."""
    streams = [stream("app", docker("test", APP, scheduled=True), follow("latest", "test"))]
    first = run(streams, observations=obs(APP, 1))
    second = run(streams, reread(first), obs(APP, 2), bases_from(first), now=NOW + timedelta(1))
    locks = reread(second, reread(first))
    lock = locks[("shop", "app")]
    reverted = {**lock.tags, "latest": first.locks[("shop", "app")].tags["latest"]}
    locks[("shop", "app")] = replace(lock, tags=reverted)
    third = run(streams, locks, obs(APP, 2), bases_from(second, bases_from(first)), now=NOW)
    [latest] = [s for s in third.statuses if s.tag == "latest"]
    assert (latest.reason, state(third)["shop/app:latest"]) == (status.REVERT_RESPECTED, digest(1))


def test_stream_image_of_an_unknown_digest_keeps_the_old_pin():
    """A pin changed to a digest the stream never had fails and keeps the digest it pinned."""
    streams = [stream("app", docker("test", APP), pin("prod", f"app@{digest(1)}"))]
    first = run(streams, observations=obs(APP, 1))
    moved = [stream("app", docker("test", APP), pin("prod", f"app@{digest(9)}"))]
    result = run(moved, reread(first), obs(APP, 1), bases_from(first))
    assert state(result)["shop/app:prod"] == digest(1) and not result.changed


def test_import_requests_cover_every_due_tag():
    """A set-aside stream, a follower or a tag not due never hides the due tags after it."""
    src = [f"{REG}/shop/{name}:1.0" for name in ("a", "b", "c", "d")]
    streams = [
        stream("a", docker("x", src[0])),
        stream("b", follow("f", "x"), docker("x", src[1], insecure=True)),
        stream("c", docker("old", src[2]), docker("new", src[3])),
    ]
    locks = reread(run([stream("c", docker("old", src[2]))], observations=obs(src[2], 1)))
    requests = import_requests(streams, LockSet(locks, {("shop", "a"): BROKEN}), Config(), NOW)
    assert [(r.reference, r.insecure) for r in requests] == [(src[1], True), (src[3], False)]


@pytest.mark.parametrize(
    ("grouping", "subject"),
    [("pass", "streamlock: refresh locks"), ("stream", "shop/app: refresh lock")],
)
def test_a_stream_moved_to_another_file_rewrites_its_header(grouping, subject):
    """Pins unchanged but the stream now lives in a List file: one commit refreshes the header."""
    streams = [stream("app", docker("test", APP))]
    locks = reread(run(streams, observations=obs(APP, 1)))
    moved = [replace(streams[0], path="streams/shop/all.yaml")]
    config = Config(git=GitConfig(grouping=grouping))
    result = run(moved, locks, obs(APP, 1), config=config)
    [commit] = result.commits
    assert commit.subject == subject and commit.message.startswith(subject + "\n")
    assert loads(commit.files["locks/shop/app.lock.yaml"]).stream_file == "streams/shop/all.yaml"


@pytest.mark.parametrize("grouping", ["pass", "stream", "tag"])
def test_every_commit_records_its_own_changes(grouping):
    """Each planned commit has its subject, a message with one block per change, and the changes."""
    streams = [stream("a", docker("x", APP), docker("y", APP)), stream("b", docker("z", APP))]
    result = run(streams, observations=obs(APP, 1), config=Config(git=GitConfig(grouping=grouping)))
    for commit in result.commits:
        assert commit.message.split("\n", 1)[0] == commit.subject
        blocks = [b.tag for b in parse_message(commit.message)]
        assert blocks == [change.key for change in commit.changes] and blocks
    assert sum(len(c.changes) for c in result.commits) == 3


def test_a_refused_lock_keeps_the_old_one_and_does_not_stop_the_pass():
    """A stream whose new lock its schema refuses keeps its old lock; later streams go on."""
    bad = f"{REG}/shop/bad:1"
    streams = [stream("bad", docker("t", bad, scheduled=True)), stream("web", docker("t", APP))]
    first = reread(run(streams[:1], observations=obs(bad, 1)))
    observations = {**obs(APP, 1), **obs(bad, 2, platform="Linux/AMD64 x")}
    result = run(streams, first, observations)
    assert list(result.files) == ["locks/shop/web.lock.yaml"]
    assert result.locks[("shop", "bad")] == first[("shop", "bad")]


REF = f"{REG}/shop/app@"


def test_reference_moved_to_another_digest_pins_it():
    """A reference: true tag whose digest changed in the spec pins the new digest."""
    first = run([stream("app", docker("ext", REF + digest(5), reference=True))])
    moved = [stream("app", docker("ext", REF + digest(6), reference=True))]
    assert state(run(moved, reread(first))) == {"shop/app:ext": digest(6)}


def test_reference_changed_to_a_mutable_tag_keeps_its_pin():
    """A reference: true tag edited to a mutable tag fails and keeps the digest it had."""
    first = run([stream("app", docker("ext", REF + digest(5), reference=True))])
    result = run([stream("app", docker("ext", APP, reference=True))], reread(first))
    assert state(result) == {"shop/app:ext": digest(5)} and not result.changed


def test_moved_pin_keeps_its_history():
    """A stream image pin moved to another digest of the stream adds to the tag's history."""
    streams = [stream("app", docker("test", APP, scheduled=True), pin("prod", f"app@{digest(1)}"))]
    first = run(streams, observations=obs(APP, 1))
    second = run(streams, reread(first), obs(APP, 2), bases_from(first))
    moved = [stream("app", docker("test", APP, scheduled=True), pin("prod", f"app@{digest(2)}"))]
    third = run(moved, reread(second, reread(first)), obs(APP, 2))
    prod = third.locks[("shop", "app")].tags["prod"]
    assert [h.image for h in prod.history] == [digest(2), digest(1)]


def test_follower_of_a_reverted_tag_follows_the_revert():
    """When a person reverts a bump, a follower of that tag follows the reverted pin."""
    streams = [stream("app", docker("test", APP, scheduled=True), follow("latest", "test"))]
    first = run(streams, observations=obs(APP, 1))
    bump = run(streams, reread(first), obs(APP, 2), bases_from(first))
    again = run(streams, reread(first), obs(APP, 2), bases_from(bump, bases_from(first)))
    assert state(again) == {"shop/app:test": digest(1), "shop/app:latest": digest(1)}
    assert {s.tag: s.action for s in again.statuses}["latest"] == status.UNCHANGED


def test_reimport_annotation_overrides_a_revert():
    """A new reimport annotation after a revert imports what the registry serves now."""
    streams = [stream("app", docker("test", APP, scheduled=True))]
    first = run(streams, observations=obs(APP, 1))
    bump = run(streams, reread(first), obs(APP, 2), bases_from(first))
    bases = bases_from(bump, bases_from(first))
    again = [
        stream(
            "app", docker("test", APP, scheduled=True, annotations={"streamlock.dev/reimport": "1"})
        )
    ]
    assert state(run(again, reread(first), obs(APP, 2), bases)) == {"shop/app:test": digest(2)}


def test_recently_checked_scheduled_tag_is_kept_until_due():
    """A scheduled tag checked less than the interval ago is kept, whatever the registry says."""
    streams = [stream("app", docker("test", APP, scheduled=True))]
    first = run(streams, observations=obs(APP, 1))
    checked = {"shop/app:test": NOW - timedelta(minutes=1)}
    result = run(streams, reread(first), obs(APP, 2), bases_from(first), last_checked=checked)
    [tag] = result.statuses
    assert (tag.action, tag.reason, state(result)) == (
        status.UNCHANGED,
        status.NOT_DUE,
        {"shop/app:test": digest(1)},
    )


def test_forcing_a_stream_reimports_each_of_its_tags():
    """import-image ns/stream forces every tag of that stream, unscheduled ones included."""
    streams = [stream("app", docker("test", APP)), stream("web", docker("test", OTHER))]
    first = run(streams, observations={**obs(APP, 1), **obs(OTHER, 1)})
    forced = {"shop/app"}
    requests = import_requests(streams, reread(first), Config(), NOW, forced=forced)
    assert [r.reference for r in requests] == [APP]
    result = run(streams, reread(first), obs(APP, 2), bases_from(first), forced=forced)
    assert state(result) == {"shop/app:test": digest(2), "shop/web:test": digest(1)}
