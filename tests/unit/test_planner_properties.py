"""Properties of the planner that must hold for any specs, locks and registry answers."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.config import Config
from reconciler.image import Image, ImportRequest
from reconciler.imagestream import ImageStream, TagReference, TagSpec
from reconciler.lockfile import HistoryItem, LockEntry, StreamLock
from reconciler.planner import plan

from .test_planner import NOW, REG, bases_from, digest, reread

SOURCES = [f"{REG}/shop/img{i}:1" for i in range(3)]
TAGS = ["a", "b", "c", "d", "e"]


@st.composite
def scenarios(draw):
    """A stream of imports and followers (cycles allowed) plus a registry answer per source."""
    specs = []
    for tag in TAGS:
        if draw(st.booleans()):
            specs.append(
                TagSpec(
                    tag, TagReference("DockerImage", draw(st.sampled_from(SOURCES))), scheduled=True
                )
            )
        else:
            specs.append(TagSpec(tag, TagReference("ImageStreamTag", draw(st.sampled_from(TAGS)))))
    answers = {ImportRequest(s).key: Image(digest(draw(st.integers(1, 4)))) for s in SOURCES}
    return [ImageStream("shop", "app", tuple(specs))], answers


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.integers(1, 4))
def test_plan_of_a_planned_state_is_empty(scenario, second_seed):
    """Idempotence: planning again with the same registry answers changes nothing."""
    streams, answers = scenario
    first = plan(streams, {}, {}, answers, Config(), NOW)
    locks, bases = reread(first), bases_from(first)
    again = plan(streams, locks, bases, answers, Config(), NOW + timedelta(hours=1))
    assert again.files == {} and again.commits == ()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=25), st.integers(1, 5))
def test_history_is_bounded_and_starts_with_the_current_image(sequence, limit):
    """Whatever the registry serves over time, history stays within historyLimit."""
    config = Config(history_limit=limit)
    streams = [
        ImageStream(
            "shop", "app", (TagSpec("t", TagReference("DockerImage", SOURCES[0]), scheduled=True),)
        )
    ]
    locks: dict = {}
    bases: dict = {}
    for step, n in enumerate(sequence):
        result = plan(
            streams,
            locks,
            bases,
            {ImportRequest(SOURCES[0]).key: Image(digest(n))},
            config,
            NOW + timedelta(hours=step),
        )
        locks, bases = reread(result, locks), bases_from(result, bases)
        entry = locks[("shop", "app")].tags["t"]
        assert 1 <= len(entry.history) <= limit
        assert entry.history[0].image == entry.image == digest(n)
        images = [h.image for h in entry.history]
        assert all(x != y for x, y in pairwise(images))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3), st.one_of(st.none(), st.integers(1, 3)), st.integers(1, 3))
def test_revert_rule(lock_n, base_n, upstream_n):
    """U == L: keep; L != B and U == B: keep; otherwise bump to U."""
    spec = TagSpec("t", TagReference("DockerImage", SOURCES[0]), scheduled=True)
    stream = ImageStream("shop", "app", (spec,))
    entry = LockEntry(
        source=spec.source,
        image=digest(lock_n),
        docker_image_reference=f"{REG}/shop/img0@{digest(lock_n)}",
        spec_hash=spec.spec_hash("shop"),
        history=(HistoryItem(digest(lock_n), f"{REG}/shop/img0@{digest(lock_n)}"),),
    )
    locks = {("shop", "app"): StreamLock("shop", "app", {"t": entry})}
    bases = {} if base_n is None else {("shop/app:t", SOURCES[0]): digest(base_n)}
    answers = {ImportRequest(SOURCES[0]).key: Image(digest(upstream_n))}
    result = plan([stream], locks, bases, answers, Config(), NOW)
    pinned = result.locks[("shop", "app")].tags["t"].image
    L, U = digest(lock_n), digest(upstream_n)
    B = None if base_n is None else digest(base_n)
    expected = L if U == L or (L != B and U == B) else U
    assert pinned == expected
