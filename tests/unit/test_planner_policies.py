"""The planner with tag policies and gates, on fake listings, observations and clock (pure)."""

from __future__ import annotations

from datetime import timedelta

from reconciler import status
from reconciler.config import Config
from reconciler.image import Image, ImportFailure, ImportRequest
from reconciler.planner import import_requests, listing_requests, plan

from .test_planner import NOW, REG, digest, docker, follow, reread, stream

REPO = f"{REG}/shop/app"
SEMVER = {
    "streamlock.dev/policy": "semver:>=1 <2",
    "streamlock.dev/require-platforms": "linux/amd64",
}
LISTING = {REPO: ("1.0.0", "1.1.0", "2.0.0", "latest")}


def seen(tag: str, n: int, offered=("linux/amd64",)) -> dict:
    return {ImportRequest(f"{REPO}:{tag}").key: Image(digest(n), offered=offered)}


def policy_stream(annotations=SEMVER):
    return [stream("app", docker("stable", REPO, scheduled=True, annotations=annotations))]


def run(streams, locks=None, observations=None, listings=LISTING, now=NOW):
    return plan(streams, locks or {}, {}, observations or {}, Config(), now, listings=listings)


def test_a_due_policy_tag_asks_for_its_listing():
    """listing_requests names the repository of a due policy tag, once."""
    assert listing_requests(policy_stream(), {}, Config(), NOW) == [REPO]


def test_the_winner_is_requested_after_the_listing():
    """With the listing, import_requests asks for the policy's winner only."""
    requests = import_requests(policy_stream(), {}, Config(), NOW, listings=LISTING)
    assert [r.reference for r in requests] == [f"{REPO}:1.1.0"]


def test_a_refused_winner_asks_for_the_next_candidate():
    """A winner without a required platform makes the next round ask for the runner-up."""
    observations = seen("1.1.0", 1, offered=("linux/arm64",))
    requests = import_requests(
        policy_stream(), {}, Config(), NOW, listings=LISTING, observations=observations
    )
    assert [r.reference for r in requests] == [f"{REPO}:1.0.0", f"{REPO}:1.1.0"]


def test_the_lock_records_the_chosen_tag():
    """The planned entry pins the winner's digest and names the tag."""
    result = run(policy_stream(), observations=seen("1.1.0", 1))
    entry = result.locks[("shop", "app")].tags["stable"]
    assert (entry.tag, entry.image) == ("1.1.0", digest(1))
    assert entry.docker_image_reference == f"{REPO}@{digest(1)}"


def test_no_matching_tag_keeps_the_pin():
    """A range matching nothing fails with NoMatchingTag and keeps the old entry."""
    first = run(policy_stream(), observations=seen("1.1.0", 1))
    result = run(
        policy_stream({"streamlock.dev/policy": "semver:>=3"}),
        reread(first),
        now=NOW + timedelta(hours=1),
    )
    found = result.statuses[0]
    assert found.reason == status.NO_MATCHING_TAG
    assert "nearest: 2.0.0, 1.1.0, 1.0.0" in found.message
    assert result.locks[("shop", "app")].tags["stable"].image == digest(1)


def test_a_failed_listing_keeps_the_pin():
    """A listing failure is the tag's failure; its pin stays."""
    first = run(policy_stream(), observations=seen("1.1.0", 1))
    failure = {REPO: ImportFailure(status.REGISTRY_UNAVAILABLE, "down")}
    result = run(policy_stream(), reread(first), listings=failure, now=NOW + timedelta(hours=1))
    assert result.statuses[0].reason == status.REGISTRY_UNAVAILABLE
    assert not result.changed


def test_min_age_waits_and_then_lands():
    """A policy's new winner waits for min-age, then lands; the commit says why."""
    annotations = {**SEMVER, "streamlock.dev/min-age": "1h"}
    first = run(policy_stream(annotations), observations=seen("1.1.0", 1))
    listing = {REPO: (*LISTING[REPO], "1.2.0")}
    later = NOW + timedelta(minutes=10)
    waiting = run(policy_stream(annotations), reread(first), seen("1.2.0", 2), listing, later)
    entry = waiting.locks[("shop", "app")].tags["stable"]
    assert entry.image == digest(1) and entry.waiting.image == digest(2)
    assert waiting.statuses[0].reason == status.WAITING_MIN_AGE
    assert waiting.commits[0].subject == "shop/app: stable waits for 0000000"
    locks = reread(waiting, reread(first))
    landed = run(
        policy_stream(annotations), locks, seen("1.2.0", 2), listing, later + timedelta(hours=1)
    )
    entry = landed.locks[("shop", "app")].tags["stable"]
    assert (entry.tag, entry.image, entry.waiting) == ("1.2.0", digest(2), None)
    assert "chose 1.2.0 by semver:>=1 <2 among 3 of 5 tags, previous 1.1.0" in (
        landed.commits[0].message
    )


def test_promotion_waits_for_the_soak():
    """A follower with promote-after keeps its image until the upstream has held the new one."""
    plain = f"{REG}/shop/app:1"
    streams = [
        stream(
            "app",
            docker("test", plain, scheduled=True),
            follow("prod", "test", annotations={"streamlock.dev/promote-after": "2h"}),
        )
    ]
    key = ImportRequest(plain).key
    first = plan(streams, {}, {}, {key: Image(digest(1))}, Config(), NOW)
    later = NOW + timedelta(hours=1)
    second = plan(streams, reread(first), {}, {key: Image(digest(2))}, Config(), later)
    tags = second.locks[("shop", "app")].tags
    assert (tags["test"].image, tags["prod"].image) == (digest(2), digest(1))
    prod = next(s for s in second.statuses if s.tag == "prod")
    assert prod.reason == status.WAITING_PROMOTION and "promotes in 2h" in prod.message
    third = plan(
        streams,
        reread(second, reread(first)),
        {},
        {key: Image(digest(2))},
        Config(),
        later + timedelta(hours=2),
    )
    assert third.locks[("shop", "app")].tags["prod"].image == digest(2)
    assert "promoted after a 2h soak in shop/app:test" in third.commits[0].message


def test_listed_names_that_are_no_tags_are_ignored():
    """A registry listing names no lock could hold (unicode, newlines, too long) never wins."""
    hostile = {REPO: ("1.0.0", "1.9.9é", "1.9.8\n", "1." + "9" * 200, "../1.9.7")}
    requests = import_requests(policy_stream(), {}, Config(), NOW, listings=hostile)
    assert [r.reference for r in requests] == [f"{REPO}:1.0.0"]


def test_newest_build_compares_created_among_candidates():
    """newest-build asks for every candidate and pins the one built last."""
    annotations = {"streamlock.dev/policy": "newest-build", "streamlock.dev/candidates": "2"}
    listing = {REPO: ("a", "b", "c")}
    requests = import_requests(policy_stream(annotations), {}, Config(), NOW, listings=listing)
    assert [r.reference for r in requests] == [f"{REPO}:b", f"{REPO}:c"]
    observations = {
        ImportRequest(f"{REPO}:c").key: Image(digest(3), created="2026-01-01T00:00:00Z"),
        ImportRequest(f"{REPO}:b").key: Image(digest(2), created="2026-02-01T00:00:00Z"),
    }
    result = run(policy_stream(annotations), observations=observations, listings=listing)
    assert result.locks[("shop", "app")].tags["stable"].tag == "b"


def test_a_candidate_that_fails_to_import_keeps_the_pin():
    """The winner's import failure is the tag's failure, with the last good pin kept."""
    first = run(policy_stream(), observations=seen("1.1.0", 1))
    listing = {REPO: (*LISTING[REPO], "1.2.0")}
    failed = {ImportRequest(f"{REPO}:1.2.0").key: ImportFailure(status.MANIFEST_UNKNOWN, "gone")}
    result = run(policy_stream(), reread(first), failed, listing, NOW + timedelta(hours=1))
    assert result.statuses[0].reason == status.MANIFEST_UNKNOWN
    assert "kept 1.1.0" in result.statuses[0].message and not result.changed


def test_import_image_does_not_wait_for_min_age():
    """A forced import (import-image) lands a new digest at once despite min-age."""
    annotations = {**SEMVER, "streamlock.dev/min-age": "1h"}
    first = run(policy_stream(annotations), observations=seen("1.1.0", 1))
    result = plan(
        policy_stream(annotations),
        reread(first),
        {},
        seen("1.1.0", 2),
        Config(),
        NOW + timedelta(minutes=1),
        listings=LISTING,
        forced=["shop/app:stable"],
    )
    assert result.locks[("shop", "app")].tags["stable"].image == digest(2)
