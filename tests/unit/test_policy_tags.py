"""Choosing a tag from a listing: each policy, filters, exclusions, and its properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.policy.tags import (
    PolicyError,
    choose,
    make_policy,
    parse_number,
    parse_range,
    parse_version,
    ranked,
)

LISTING = ["1.1.0", "1.2.0", "v1.9.9", "1.10.0-rc.1", "1.10.0", "2.0.0", "latest", "main"]


def test_semver_picks_the_highest_version_in_the_range():
    """semver:>=1.2.0 <2 picks 1.10.0 over 1.9.9, 2.0.0 and the pre-release."""
    assert choose(make_policy("semver:>=1.2.0 <2"), LISTING).winner == "1.10.0"


def test_semver_tolerates_a_v_prefix():
    """A tag written v1.9.9 is the version 1.9.9."""
    assert choose(make_policy("semver:<1.10"), LISTING).winner == "v1.9.9"


def test_semver_prereleases_only_when_the_range_names_one():
    """A range naming a pre-release admits pre-releases; a plain range does not."""
    tags = ["1.9.0", "1.10.0-rc.1"]
    assert choose(make_policy("semver:>=1.10.0-rc.0"), tags).winner == "1.10.0-rc.1"
    assert choose(make_policy("semver:>=1.0"), tags).winner == "1.9.0"


def test_semver_wildcards_and_commas():
    """``1.x``, ``1.2.*`` and comma-separated clauses are ranges too."""
    assert choose(make_policy("semver:1.x"), LISTING).winner == "1.10.0"
    assert choose(make_policy("semver:1.2.*"), LISTING).winner == "1.2.0"
    assert choose(make_policy("semver:>= 1.2, < 1.3"), LISTING).winner == "1.2.0"


def test_numerical_orders_the_extracted_group():
    """numerical:asc over a named group orders by its number, not by the tag text."""
    policy = make_policy("numerical:asc", tag_filter=r"^main-(?P<ts>[0-9]+)-[a-f0-9]+$")
    tags = ["main-99-fff", "main-1000-aa", "main-100-abc", "dev-5000-aa"]
    assert choose(policy, tags).winner == "main-1000-aa"


def test_numerical_desc_picks_the_lowest():
    """numerical:desc picks the lowest number."""
    assert choose(make_policy("numerical:desc"), ["10", "9", "100", "x"]).winner == "9"


def test_alphabetical_both_orders():
    """alphabetical:asc picks the last tag in text order, desc the first."""
    tags = ["2026-11-01", "2026-11-30", "2026-10-15"]
    assert choose(make_policy("alphabetical:asc"), tags).winner == "2026-11-30"
    assert choose(make_policy("alphabetical:desc"), tags).winner == "2026-10-15"


def test_exclude_removes_matching_tags():
    """tag-exclude drops tags before ordering (Kargo's ignoreTags)."""
    policy = make_policy("semver:>=1 <2", exclude=r"^1\.10\.0$")
    assert choose(policy, LISTING).winner == "v1.9.9"


def test_no_match_names_the_nearest_candidates():
    """A range that matches nothing has no winner and names the highest versions outside it."""
    choice = choose(make_policy("semver:>=3"), LISTING)
    assert choice.winner is None
    assert choice.nearest == ("2.0.0", "1.10.0", "1.10.0-rc.1")


def test_newest_build_ranks_a_bounded_number_of_candidates():
    """newest-build hands at most ``candidates`` tags, highest first, to compare by created."""
    policy = make_policy("newest-build", tag_filter="^build-", candidates=2)
    choice = choose(policy, ["build-a", "build-c", "build-b", "other"])
    assert choice.ranked == ("build-c", "build-b")


@pytest.mark.parametrize(
    ("text", "kwargs"),
    [
        ("nonsense:asc", {}),
        ("semver:", {}),
        ("semver:>>1", {}),
        ("numerical:up", {}),
        ("newest-build:asc", {}),
        ("alphabetical:asc", {"tag_filter": "("}),
        ("alphabetical:asc", {"exclude": "[a-"}),
        ("alphabetical:asc", {"tag_filter": "(?P<a>x)(?P<b>y)"}),
        ("newest-build", {"candidates": 0}),
    ],
)
def test_unusable_policies_are_refused(text, kwargs):
    """Unknown kinds, bad ranges, bad regular expressions and bounds raise PolicyError."""
    with pytest.raises(PolicyError):
        make_policy(text, **kwargs)


def test_parsers_refuse_what_is_not_a_value():
    """Versions and numbers that do not parse are None; a bare version range is equality."""
    assert parse_version("latest") is None
    assert parse_number("nan") is None
    assert parse_number("x1") is None
    assert str(parse_range("1.2.3")) == "==1.2.3"


# --- properties --------------------------------------------------------------------------------

versions = st.tuples(st.integers(0, 5), st.integers(0, 12), st.integers(0, 12)).map(
    lambda v: ".".join(map(str, v))
)
prefixed = st.builds(
    lambda v, p, pre: f"{p}{v}{pre}",
    versions,
    st.sampled_from(["", "v"]),
    st.sampled_from(["", "", "-rc.1", "-beta.2"]),
)
words = st.text("abcdefxyz-0123456789", min_size=1, max_size=8)
tags_lists = st.lists(st.one_of(prefixed, words, versions.map(lambda v: f"main-{v}")), max_size=30)
policies = st.one_of(
    st.builds(lambda lo, hi: make_policy(f"semver:>={lo} <{hi}"), versions, versions),
    st.sampled_from(
        [
            make_policy("numerical:asc"),
            make_policy("numerical:desc"),
            make_policy("alphabetical:asc"),
            make_policy("alphabetical:desc"),
            make_policy("alphabetical:asc", tag_filter="^main-"),
            make_policy("semver:>=0", tag_filter=r"^main-(?P<v>.*)$"),
            make_policy("numerical:asc", exclude="5"),
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(policies, tags_lists)
def test_the_winner_is_the_maximum_of_the_allowed_candidates(policy, tags):
    """The chosen tag is allowed and no allowed candidate beats it under the policy."""
    allowed, _ = ranked(policy, tags)
    choice = choose(policy, tags)
    if not allowed:
        assert choice.winner is None
        return
    assert choice.winner in {tag for _, tag in allowed}
    key_of = dict((tag, key) for key, tag in allowed)
    best = key_of[choice.winner]
    for key, _ in allowed:
        assert (key <= best) if policy.order == "asc" else (key >= best)


@settings(max_examples=300, deadline=None)
@given(policies, tags_lists, words)
def test_a_tag_outside_the_filter_never_changes_the_choice(policy, tags, extra):
    """Adding a tag the filter, exclusion or policy rejects leaves the choice as it was."""
    allowed, _ = ranked(policy, [extra])
    if allowed:
        return
    assert choose(policy, [*tags, extra]).winner == choose(policy, tags).winner


@settings(max_examples=200, deadline=None)
@given(policies, tags_lists)
def test_the_choice_ignores_listing_order_and_duplicates(policy, tags):
    """A registry listing tags in another order, or twice, gets the same choice."""
    assert choose(policy, tags).winner == choose(policy, [*reversed(tags), *tags]).winner


def test_policies_print_as_written():
    """A policy's text is what the annotation says, for messages and commit bodies."""
    texts = ["semver:>=1 <2", "numerical:desc", "alphabetical:asc", "newest-build"]
    assert [make_policy(t).text for t in texts] == texts


def test_newest_prefers_a_known_created_time():
    """A candidate without created never beats one with it; with none, the greater tag wins."""
    from reconciler.policy.tags import newest

    assert newest([("b", None), ("a", "2026-01-01T00:00:00Z")]) == "a"
    assert newest([("a", "2026-01-02T00:00:00+00:00"), ("b", "2026-01-01T00:00:00Z")]) == "a"
    assert newest([("a", None), ("b", None)]) == "b"
    assert newest([]) is None
