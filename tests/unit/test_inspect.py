"""Views for people: names, digest prefixes, describe/history/resolve, ages, rollback values."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from ruamel.yaml import YAML

from reconciler import inspect, status
from reconciler.config import Config
from reconciler.errors import InputError
from reconciler.image import Image, ImportRequest
from reconciler.imagestream import ImageStream, TagReference, TagSpec
from reconciler.inspect import ObjectName
from reconciler.lockfile import HistoryItem, LockEntry, StreamLock, dumps, loads
from reconciler.planner import plan

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
REPO = "registry.example.com/shop/app"
SOURCE = TagReference("DockerImage", f"{REPO}:test")


def digest(n: int) -> str:
    return "sha256:" + f"{n:02x}" * 32


def item(n: int, imported: str, created: str | None = None) -> HistoryItem:
    return HistoryItem(digest(n), f"{REPO}@{digest(n)}", created, imported)


TEST_SPEC = TagSpec("test", SOURCE, scheduled=True)
STREAM = ImageStream(
    "shop",
    "app",
    (TEST_SPEC, TagSpec("prod", TagReference("ImageStreamImage", f"app@{digest(1)}"))),
    path="streams/shop/app.yaml",
    line=2,
)
HISTORY = (
    item(3, "2026-11-28T12:00:00Z", "2026-11-28T10:00:00Z"),
    item(2, "2026-11-26T12:00:00Z"),
    item(1, "2026-11-01T12:00:00Z"),
)
TEST_ENTRY = LockEntry(
    source=SOURCE,
    image=digest(3),
    docker_image_reference=f"{REPO}@{digest(3)}",
    spec_hash=TEST_SPEC.spec_hash("shop"),
    created="2026-11-28T10:00:00Z",
    imported_at="2026-11-28T12:00:00Z",
    platform="linux/amd64",
    labels={"org.opencontainers.image.version": "1.3"},
    history=HISTORY,
)
LOCK = StreamLock("shop", "app", {"test": TEST_ENTRY}, source_path="streams/shop/app.yaml")


# --- names ---------------------------------------------------------------------------------------


def test_a_full_name_parses_into_its_parts():
    """ns/stream:tag gives namespace, stream and tag."""
    assert inspect.parse_name("shop/app:test", "default") == ObjectName("shop", "app", "test")


def test_a_name_without_namespace_takes_the_default():
    """stream:tag is in the default namespace (-n or defaultNamespace)."""
    assert inspect.parse_name("app:test", "dev") == ObjectName("dev", "app", "test")


def test_a_digest_name_keeps_the_prefix_with_its_algorithm():
    """stream@<hex> and stream@sha256:<hex> both give a sha256: prefix."""
    assert inspect.parse_name("shop/app@abc", "d").digest == "sha256:abc"
    assert inspect.parse_name("shop/app@sha256:abc", "d").digest == "sha256:abc"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("shop/App:test", "not a valid image stream name"),
        ("Shop/app:test", "not a valid namespace name"),
        ("shop/app:-x", "not a valid tag name"),
        ("shop/app@xyz", "not a sha256 digest or prefix"),
        ("shop/app@sha256:", "not a sha256 digest or prefix"),
    ],
)
def test_bad_names_are_refused_with_the_reason(text: str, message: str):
    """Names that break Kubernetes' rules get an InputError saying which part is wrong."""
    with pytest.raises(InputError, match=message):
        inspect.parse_name(text, "default")


def test_a_tag_name_needs_a_tag():
    """history and rollback refuse a bare stream."""
    with pytest.raises(InputError, match="expected a tag"):
        inspect.parse_tag_name("shop/app", "default")


def test_an_image_name_needs_a_tag_or_a_digest():
    """resolve refuses a bare stream."""
    with pytest.raises(InputError, match="expected a tag or an image"):
        inspect.parse_image_name("shop/app", "default")


def test_a_stream_name_refuses_a_digest():
    """describe takes a stream (or a tag), not an image."""
    with pytest.raises(InputError, match="not an image"):
        inspect.parse_stream_name("shop/app@abcdef", "default")


# --- digest prefixes -----------------------------------------------------------------------------


def test_a_unique_prefix_resolves_to_the_full_digest():
    """Twelve hex digits that match one digest select it."""
    candidates = [digest(0xAB), digest(0xCD)]
    assert inspect.match_digest("sha256:" + candidates[0][7:19], candidates, "x") == candidates[0]


def test_an_ambiguous_prefix_is_an_error():
    """Two digests sharing the prefix are both named in the error."""
    first = "sha256:" + "ab" * 6 + "0" * 52
    second = "sha256:" + "ab" * 6 + "1" * 52
    with pytest.raises(InputError, match="ambiguous"):
        inspect.match_digest("sha256:" + "ab" * 6, [first, second], "x")


def test_a_short_prefix_is_an_error():
    """Fewer than twelve hex digits are refused even when they would match."""
    with pytest.raises(InputError, match="too short"):
        inspect.match_digest("sha256:abcdef", ["sha256:" + "abcdef" * 10 + "abcd"], "x")


def test_a_prefix_that_is_not_hex_is_refused_as_such():
    """--to takes a digest prefix without going through name parsing; non-hex is named."""
    with pytest.raises(InputError, match="not a sha256 digest or prefix"):
        inspect.rollback_revision(TEST_ENTRY, "sha256:release-2026", "x")


def test_a_prefix_matching_nothing_is_an_error():
    """An unknown image points to history."""
    with pytest.raises(InputError, match="no image"):
        inspect.match_digest("sha256:" + "f" * 12, [digest(1)], "x")


# --- views ---------------------------------------------------------------------------------------


def test_describe_lists_spec_tags_in_order_then_tags_only_in_the_lock():
    """Spec order first; a lock entry without a spec tag comes last."""
    lock = StreamLock("shop", "app", {"test": TEST_ENTRY, "old": TEST_ENTRY})
    view = inspect.describe(STREAM, lock)
    assert [(t.name, t.spec is not None, t.entry is not None) for t in view.tags] == [
        ("test", True, True),
        ("prod", True, False),
        ("old", False, True),
    ]


def test_describe_of_an_unknown_tag_is_an_error():
    """describe ns/stream:nope says the tag does not exist."""
    with pytest.raises(InputError, match="shop/app:nope is not a tag"):
        inspect.describe(STREAM, LOCK, "nope")


DESCRIBED = """\
Name:           app
Namespace:      shop
File:           streams/shop/app.yaml:2
Lock:           locks/shop/app.lock.yaml
Image Lookup:   local=false
Unique Images:  3
Tags:           2

test
  updates automatically from registry registry.example.com/shop/app:test (every 15m)

  * registry.example.com/shop/app@{d3}
      imported 24 hours ago (2026-11-28T12:00:00Z), created 2026-11-28T10:00:00Z
      version 1.3
    registry.example.com/shop/app@{d2}
      imported 3 days ago (2026-11-26T12:00:00Z)
    registry.example.com/shop/app@{d1}
      imported 4 weeks ago (2026-11-01T12:00:00Z)

prod
  pinned to app@{d1} (ImageStreamImage)

  no image yet: run streamlock reconcile
"""


def test_describe_renders_like_oc_describe_with_ages_from_now():
    """The text names the source, marks the current image and ages each import."""
    text = inspect.render_describe(inspect.describe(STREAM, LOCK), NOW)
    assert text == DESCRIBED.format(d1=digest(1), d2=digest(2), d3=digest(3))


def test_describe_shows_hold_pullthrough_and_followers():
    """A held, Local, following tag says so."""
    spec = TagSpec(
        "prod",
        TagReference("ImageStreamTag", "app:test", "build"),
        reference_policy="Local",
        annotations={"streamlock.dev/hold": "QA"},
    )
    view = inspect.describe(ImageStream("shop", "app", (spec,), path="p"), None)
    lines = inspect.render_describe(view, NOW).splitlines()
    assert "  tracks build/app:test (ImageStreamTag)" in lines
    assert "  held: QA (never moved by the reconciler)" in lines
    assert "  prefer registry pullthrough when referencing this tag" in lines
    assert "Lock:           <none> (run streamlock reconcile)" in lines


def test_describe_data_is_plain_and_complete():
    """-o json carries spec and lock fields of every tag."""
    data = json.loads(inspect.render_data(inspect.describe(STREAM, LOCK).to_dict(), "json"))
    test = data["tags"][0]
    assert data["lookupPolicy"] == {"local": False}
    assert test["from"] == {"kind": "DockerImage", "name": f"{REPO}:test"}
    assert test["image"] == digest(3) and test["scheduled"] is True
    assert [h["revision"] for h in test["history"]] == [0, 1, 2]
    assert data["tags"][1]["image"] is None


def test_yaml_output_loads_back_to_the_same_data():
    """-o yaml is the same data as -o json."""
    data = inspect.describe(STREAM, LOCK).to_dict()
    assert YAML(typ="safe", pure=True).load(inspect.render_data(data, "yaml")) == data


def test_history_rows_number_revisions_from_the_current_image():
    """REVISION 0 is the current image; ages are relative to now."""
    rows = inspect.history_rows(inspect.revisions(TEST_ENTRY), NOW)
    assert rows == [
        ["0", "sha256:" + digest(3)[7:19], "2026-11-28T10:00:00Z", "2026-11-28T12:00:00Z",
         "24 hours ago"],
        ["1", "sha256:" + digest(2)[7:19], "-", "2026-11-26T12:00:00Z", "3 days ago"],
        ["2", "sha256:" + digest(1)[7:19], "-", "2026-11-01T12:00:00Z", "4 weeks ago"],
    ]  # fmt: skip


def test_an_entry_without_history_still_has_its_current_image():
    """A hand-written entry with no history shows one revision."""
    entry = LockEntry(SOURCE, digest(5), f"{REPO}@{digest(5)}", "x")
    assert [item.image for item in inspect.revisions(entry)] == [digest(5)]


def test_a_hand_edited_image_is_revision_0_above_the_history():
    """A lock edit that changed the image but not the history shows the edit as current."""
    edited = replace(TEST_ENTRY, image=digest(9), docker_image_reference=f"{REPO}@{digest(9)}")
    images = [item.image for item in inspect.revisions(edited)]
    assert images == [digest(9), digest(3), digest(2), digest(1)]


def test_rolling_back_a_hand_edit_goes_to_the_history_it_left():
    """Rolling back a hand-edited image to the history's newest restores the lock as it was."""
    edited = replace(TEST_ENTRY, image=digest(9), docker_image_reference=f"{REPO}@{digest(9)}")
    revision = inspect.rollback_revision(edited, digest(3)[:19], "x")
    assert revision == 1
    assert inspect.rolled_back(edited, revision).history == HISTORY


def test_resolve_a_tag_gives_its_pull_spec():
    """stream:tag resolves to the lock's dockerImageReference."""
    found = inspect.resolve(STREAM, LOCK, ObjectName("shop", "app", "test"))
    assert found.docker_image_reference == f"{REPO}@{digest(3)}"


def test_resolve_an_old_image_by_prefix():
    """stream@sha256:<prefix> finds an image in any tag's history."""
    other = LockEntry(SOURCE, digest(7), f"{REPO}@{digest(7)}", "x", history=(item(7, "t"),))
    lock = StreamLock("shop", "app", {"test": TEST_ENTRY, "a": other})
    found = inspect.resolve(STREAM, lock, ObjectName("shop", "app", digest=digest(2)[:19]))
    assert (found.image, found.docker_image_reference) == (digest(2), f"{REPO}@{digest(2)}")


def test_a_tag_without_a_lock_entry_asks_for_a_reconcile():
    """A spec tag never imported says to run reconcile first."""
    with pytest.raises(InputError, match="no image yet; run streamlock reconcile first"):
        inspect.tag_entry(STREAM, LOCK, "prod")


def test_a_name_that_is_no_tag_says_so():
    """A tag in neither the spec nor the lock is not a tag."""
    with pytest.raises(InputError, match="is not a tag"):
        inspect.tag_entry(STREAM, LOCK, "nope")


# --- ages ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (90, "About a minute"),
        (59 * 60, "59 minutes"),
        (3600, "About an hour"),
        (47 * 3600, "47 hours"),
        (3 * 86400, "3 days"),
        (20 * 86400, "2 weeks"),
        (90 * 86400, "3 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_human_durations_use_oc_words(seconds: float, words: str):
    """Durations read as docker/go-units prints them."""
    assert inspect.human_duration(seconds) == words


def test_ages_are_relative_to_the_given_now():
    """An import three days before now is '3 days ago'; a future one is 'from now'."""
    assert inspect.age("2026-11-26T12:00:00Z", NOW) == "3 days ago"
    assert inspect.age("2026-11-29T13:00:00Z", NOW) == "about an hour from now"
    assert inspect.age(None, NOW) == inspect.age("yesterday", NOW) == "-"


def test_durations_print_in_go_syntax():
    """The schedule interval reads like the config writes it."""
    assert [inspect.duration_text(s) for s in (900, 5400, 90, 0)] == ["15m", "1h30m", "1m30s", "0s"]


# --- rollback ------------------------------------------------------------------------------------


def test_rollback_goes_back_one_revision_by_default():
    """Without --to the previous image is chosen."""
    assert inspect.rollback_revision(TEST_ENTRY, None, "x") == 1


def test_rollback_takes_a_revision_number_or_a_digest_prefix():
    """--to 2 and --to sha256:<prefix of revision 2> agree."""
    assert inspect.rollback_revision(TEST_ENTRY, "2", "x") == 2
    assert inspect.rollback_revision(TEST_ENTRY, digest(1)[:19], "x") == 2


@pytest.mark.parametrize(
    ("to", "message"),
    [("0", "revision 0 is the current image"), ("3", "no revision 3"), (None, None)],
)
def test_rollback_refuses_revisions_it_cannot_go_to(to: str | None, message: str | None):
    """Revision 0, a revision past the history, and a tag without history are errors."""
    entry = TEST_ENTRY if message else LockEntry(SOURCE, digest(5), f"{REPO}@{digest(5)}", "x")
    with pytest.raises(InputError, match=message or "holds only its current image"):
        inspect.rollback_revision(entry, to, "shop/app:test")


def test_rollback_to_the_current_image_is_an_error():
    """A digest that is already current is not a rollback."""
    with pytest.raises(InputError, match="current image already"):
        inspect.rollback_revision(TEST_ENTRY, digest(3)[:19], "x")


def test_a_rolled_back_entry_is_what_a_revert_would_leave():
    """The image, pull spec and times are the history item's; newer history is dropped."""
    entry = inspect.rolled_back(TEST_ENTRY, 1)
    assert (entry.image, entry.docker_image_reference) == (digest(2), f"{REPO}@{digest(2)}")
    assert (entry.created, entry.imported_at) == (None, "2026-11-26T12:00:00Z")
    assert entry.history == HISTORY[1:]
    assert (entry.source, entry.spec_hash, entry.labels) == (SOURCE, TEST_ENTRY.spec_hash, {})


def test_a_rolled_back_entry_takes_platform_details_from_the_old_commit():
    """Labels and digests recorded when that image was imported are restored."""
    recovered = LockEntry(
        SOURCE,
        digest(2),
        f"{REPO}@{digest(2)}",
        TEST_ENTRY.spec_hash,
        labels={"org.opencontainers.image.version": "1.2"},
        index_digest=digest(9),
    )
    entry = inspect.rolled_back(TEST_ENTRY, 1, recovered)
    assert entry.labels == {"org.opencontainers.image.version": "1.2"}
    assert entry.index_digest == digest(9)


def test_details_recovered_for_another_spec_are_ignored():
    """An old entry written for a different spec does not lend its details."""
    recovered = LockEntry(SOURCE, digest(2), "x", "other", labels={"a": "b"})
    assert inspect.rolled_back(TEST_ENTRY, 1, recovered).labels == {}


def test_the_reconciler_keeps_a_rolled_back_lock_while_the_source_serves_the_same_image():
    """The revert rule holds a rollback: the next pass leaves the lock alone."""
    rolled = StreamLock("shop", "app", {"test": inspect.rolled_back(TEST_ENTRY, 1)}, "p")
    stream = ImageStream("shop", "app", (TEST_SPEC,), path="streams/shop/app.yaml")
    observations = {ImportRequest(SOURCE.name).key: Image(digest(3))}
    bases = {("shop/app:test", SOURCE.name): digest(3)}  # a DockerImage source is its pull spec
    result = plan([stream], {rolled.key: rolled}, bases, observations, Config(), NOW)
    assert result.locks[("shop", "app")].tags["test"].image == digest(2)
    assert result.statuses[0].reason == status.REVERT_RESPECTED


def test_a_rolled_back_lock_serialises_like_the_planner_would_keep_it():
    """Dumped with the stream's path, a rollback loads back to the same entry."""
    rolled = StreamLock("shop", "app", {"test": inspect.rolled_back(TEST_ENTRY, 2)}, "p")
    assert loads(dumps(rolled)).tags["test"] == rolled.tags["test"]


def test_a_rollback_is_kept_while_the_source_serves_what_the_reconciler_last_committed():
    """The outlook names B, the reconciler's own last image, not the image rolled back from."""
    text = inspect.rollback_outlook(STREAM, TEST_SPEC, digest(1), digest(3))
    assert text.startswith(
        f"The reconciler keeps it while {REPO}:test still serves sha256:{digest(3)[7:19]},"
    )


def test_a_rollback_to_the_last_committed_image_stays_only_while_it_is_served():
    """When L == B the rule keeps nothing: any other image U moves the tag."""
    text = inspect.rollback_outlook(STREAM, TEST_SPEC, digest(3), digest(3))
    assert "stays only while registry.example.com/shop/app:test serves it" in text


def test_a_rollback_without_a_reconciler_commit_is_not_kept():
    """Without B the next import takes whatever the source serves."""
    text = inspect.rollback_outlook(STREAM, TEST_SPEC, digest(1), None)
    assert "cannot tell the rollback from an outdated lock" in text


def test_an_unscheduled_tag_is_rolled_back_until_the_next_import_image():
    """An unscheduled registry tag is not looked at again, and import-image ignores the rule."""
    spec = replace(TEST_SPEC, scheduled=False)
    text = inspect.rollback_outlook(STREAM, spec, digest(1), digest(3))
    assert text.startswith("The tag is not scheduled")
    assert "'streamlock import-image'" in text


def test_a_held_tag_stays_rolled_back_while_held():
    """The hold annotation keeps any lock, rolled back or not."""
    spec = replace(TEST_SPEC, annotations={"streamlock.dev/hold": "QA"})
    text = inspect.rollback_outlook(STREAM, spec, digest(1), digest(3))
    assert text.startswith("The tag is held (QA)")


def test_a_follower_is_kept_while_its_tag_points_at_the_last_committed_image():
    """A short ImageStreamTag source is named in full: namespace/stream:tag."""
    spec = TagSpec("prod", TagReference("ImageStreamTag", "test"))
    text = inspect.rollback_outlook(STREAM, spec, digest(1), digest(3))
    assert f"while shop/app:test still points at sha256:{digest(3)[7:19]}," in text


def test_pins_roll_back_in_the_spec_and_imports_in_the_lock():
    """ImageStreamImage and reference tags change the spec; --pin forces the spec."""
    assert inspect.rollback_mode(TEST_SPEC, pin=False) == inspect.ROLLBACK_LOCK
    assert inspect.rollback_mode(TEST_SPEC, pin=True) == inspect.ROLLBACK_SPEC
    assert inspect.rollback_mode(STREAM.tags[1], pin=False) == inspect.ROLLBACK_SPEC


def test_a_pin_points_into_the_tags_own_stream():
    """--pin writes ImageStreamImage <own stream>@digest, found in the tag's own history."""
    assert inspect.pin_source(STREAM, TEST_SPEC, digest(2)) == TagReference(
        "ImageStreamImage", f"app@{digest(2)}"
    )


def test_a_reference_tag_pins_its_own_repository():
    """A reference: true tag keeps its repository and takes the older digest."""
    spec = TagSpec("ref", TagReference("DockerImage", f"{REPO}@{digest(3)}"), reference=True)
    assert inspect.pin_source(STREAM, spec, digest(2)).name == f"{REPO}@{digest(2)}"


def test_a_short_follow_source_names_a_tag_of_the_own_stream_and_namespace():
    """from: {kind: ImageStreamTag, name: latest} follows latest of the following tag's stream."""
    assert inspect.followed(TagReference("ImageStreamTag", "latest"), "shop", "app") == (
        ObjectName("shop", "app", "latest")
    )
    assert inspect.followed(
        TagReference("ImageStreamTag", "base:1", "platform"), "shop", "app"
    ) == (ObjectName("platform", "base", "1"))


def test_follows_walks_alias_chains_and_stops_at_cycles():
    """b → a is found through a chain; a cycle elsewhere does not loop forever."""
    streams = {
        ("shop", "app"): ImageStream(
            "shop",
            "app",
            (
                TagSpec("a", SOURCE),
                TagSpec("b", TagReference("ImageStreamTag", "app:c")),
                TagSpec("c", TagReference("ImageStreamTag", "a")),
                TagSpec("x", TagReference("ImageStreamTag", "app:y")),
                TagSpec("y", TagReference("ImageStreamTag", "app:x")),
            ),
        )
    }
    assert inspect.follows(streams, ObjectName("shop", "app", "b"), ObjectName("shop", "app", "a"))
    assert not inspect.follows(
        streams, ObjectName("shop", "app", "x"), ObjectName("shop", "app", "a")
    )


# --- less common shapes --------------------------------------------------------------------------


def test_name_helpers_return_the_parsed_name():
    """Each helper returns the name when it has the parts it needs."""
    assert inspect.parse_tag_name("shop/app:t", "d") == ObjectName("shop", "app", "t")
    assert inspect.parse_image_name("app@abc", "d") == ObjectName("d", "app", digest="sha256:abc")
    assert inspect.parse_stream_name("shop/app", "d") == ObjectName("shop", "app")
    assert str(ObjectName("shop", "app", digest="sha256:abc")) == "shop/app@sha256:abc"


def test_a_missing_lock_has_no_digests():
    """Before the first reconcile a stream knows no images."""
    assert inspect.lock_digests(None) == []


def test_describe_of_one_tag_shows_only_that_tag():
    """describe ns/stream:tag narrows the view to the tag."""
    assert [t.name for t in inspect.describe(STREAM, LOCK, "test").tags] == ["test"]


def test_resolve_a_current_image_by_prefix_names_its_tag():
    """An image that is some tag's current image resolves with that tag."""
    found = inspect.resolve(STREAM, LOCK, ObjectName("shop", "app", digest=digest(3)[:19]))
    assert found.to_dict() == {
        "name": f"shop/app@{digest(3)[:19]}",
        "tag": "test",
        "image": digest(3),
        "dockerImageReference": f"{REPO}@{digest(3)}",
    }


def test_describe_shows_every_fact_of_unusual_tags():
    """Reference, insecure, PreserveOriginal, Local pull specs and lock-only tags are described."""
    spec = TagSpec(
        "ref",
        TagReference("DockerImage", f"{REPO}@{digest(4)}"),
        reference=True,
        insecure=True,
        import_mode="PreserveOriginal",
        annotations={"team": "shop"},
    )
    plain = TagSpec("plain", TagReference("DockerImage", f"{REPO}:1"))
    entry = LockEntry(
        spec.source,
        digest(4),
        f"local.example/shop/app@{digest(4)}",
        "x",
        labels={"org.opencontainers.image.revision": "abc"},
        platforms={"linux/amd64": digest(5)},
    )
    stream = ImageStream("shop", "app", (spec, plain), annotations={"a": "b"}, path="p")
    gone = LockEntry(plain.source, digest(6), f"{REPO}@{digest(6)}", "x")
    lock = StreamLock("shop", "app", {"ref": entry, "gone": gone})
    view = inspect.describe(stream, lock)
    lines = inspect.render_describe(view, NOW).splitlines()
    assert f"  reference to registry {REPO}@{digest(4)}" in lines
    assert f"  tagged from {REPO}:1" in lines
    assert "  will use insecure HTTPS or HTTP connections" in lines
    assert "  import mode PreserveOriginal" in lines
    assert "  annotation team=shop" in lines
    assert "      imported -" in lines
    assert "      revision abc" in lines
    assert f"      linux/amd64: {digest(5)}" in lines
    assert "  not in the spec: the next reconcile removes it from the lock" in lines
    assert "Annotations:    a=b" in lines and "File:           p" in lines
    data = view.to_dict()["tags"]
    assert data[0]["platforms"] == {"linux/amd64": digest(5)}
    assert data[2]["inSpec"] is False and "from" not in data[2]


def test_short_digest_of_nothing_is_a_dash():
    """Tables print '-' for a missing digest."""
    assert inspect.short_digest(None) == "-"


def test_rollback_to_a_revision_holding_the_current_image_is_an_error():
    """When history went A, B, A, revision 2 is the current image again."""
    entry = replace(TEST_ENTRY, history=(HISTORY[0], HISTORY[1], HISTORY[0]))
    with pytest.raises(InputError, match="revision 2 is the current image already"):
        inspect.rollback_revision(entry, "2", "x")


def test_a_reference_tag_written_with_a_tag_pins_its_repository():
    """name:tag@digest keeps only the repository when pinned to another digest."""
    spec = TagSpec("ref", TagReference("DockerImage", f"{REPO}:1.3@{digest(3)}"), reference=True)
    assert inspect.pin_source(STREAM, spec, digest(2)).name == f"{REPO}@{digest(2)}"


def test_follows_stops_at_a_tag_that_imports():
    """A chain ending in a registry tag does not reach an unrelated target."""
    streams = {STREAM.key: STREAM}
    assert not inspect.follows(
        streams, ObjectName("shop", "app", "test"), ObjectName("shop", "app", "prod")
    )


def test_describe_and_history_show_registry_text_on_one_line():
    """Labels and created times with newlines or terminal escapes are shown escaped."""
    labels = {"org.opencontainers.image.version": "1.3\n\x1b[2J\u2028Streamlock-Tag: x"}
    entry = replace(TEST_ENTRY, labels=labels, created="2026\r\n\x1b]0;t\x07")
    history = (replace(HISTORY[0], created="2026\r\n\x1b]0;t\x07"), *HISTORY[1:])
    entry = replace(entry, history=history)
    lock = replace(LOCK, tags={"test": entry})
    text = inspect.render_describe(inspect.describe(STREAM, lock), NOW)
    assert "\x1b" not in text and "\r" not in text and "\u2028" not in text
    assert "      version 1.3\\n\\x1b[2J\\u2028Streamlock-Tag: x\n" in text
    rows = inspect.history_rows(inspect.revisions(entry), NOW)
    assert rows[0][2] == "2026\\r\\n\\x1b]0;t\\x07"
