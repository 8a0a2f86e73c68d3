"""Commit message format of reconciler commits: trailers, parsing tolerance, subjects."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.trailers import (
    TrailerBlock,
    TrailerSummary,
    bump_subject,
    format_message,
    parse_message,
    summarize,
)

OLD = "sha256:4f1c2a3" + "0" * 57
NEW = "sha256:9e1d0b2" + "1" * 57
OTHER = "sha256:1a2b3c4" + "2" * 57
PROD = TrailerBlock("shop/app:prod", "registry.example.com/shop/app:1.4", OLD, NEW)
TEST = TrailerBlock("shop/app:test", "ImageStreamTag:shop/app:latest", None, OTHER)


def test_format_layout() -> None:
    """A message is subject, blank, body, blank, then four trailer lines per block in order."""
    message = format_message("shop/app: prod 4f1c2a3 → 9e1d0b2", "from: x\ncreated: y", [PROD])
    assert message == (
        "shop/app: prod 4f1c2a3 → 9e1d0b2\n"
        "\n"
        "from: x\n"
        "created: y\n"
        "\n"
        "Streamlock-Tag: shop/app:prod\n"
        "Streamlock-From: registry.example.com/shop/app:1.4\n"
        f"Streamlock-Previous: {OLD}\n"
        f"Streamlock-Image: {NEW}\n"
    )


def test_format_empty_body() -> None:
    """An empty body leaves exactly one blank line between subject and trailers."""
    message = format_message("s", "  \n", [TEST])
    assert message.startswith("s\n\nStreamlock-Tag: shop/app:test\n")


def test_format_first_import_writes_none() -> None:
    """A block without a previous image writes ``Streamlock-Previous: none``."""
    assert "Streamlock-Previous: none\n" in format_message("s", "", [TEST])


def test_format_without_blocks() -> None:
    """Without blocks the message is only subject and body."""
    assert format_message("s", "b\n", []) == "s\n\nb\n"


def test_format_indents_patch_divider() -> None:
    """A body line git would read as a patch divider is indented so trailers stay visible."""
    message = format_message("s", "a\n--- b\n", [PROD])
    assert "\n --- b\n" in message
    assert parse_message(message) == [PROD]


def test_format_rejects_multiline_subject() -> None:
    """A subject with a newline is a programming error."""
    with pytest.raises(ValueError, match="one non-empty line"):
        format_message("a\nb", "", [])


def test_format_rejects_bad_block() -> None:
    """A block whose values git could not keep on one line is refused."""
    with pytest.raises(ValueError, match="source"):
        format_message("s", "", [TrailerBlock("shop/app:prod", "a b", None, NEW)])


def test_round_trip_several_blocks() -> None:
    """Parsing a formatted message gives back its blocks in order."""
    assert parse_message(format_message("s", "body", [PROD, TEST])) == [PROD, TEST]


def test_parse_missing_previous_is_none() -> None:
    """A block without a Previous line parses as a first import."""
    message = f"s\n\nStreamlock-Tag: a/b:c\nStreamlock-From: x\nStreamlock-Image: {NEW}\n"
    assert parse_message(message) == [TrailerBlock("a/b:c", "x", None, NEW)]


def test_parse_tolerates_other_trailers() -> None:
    """Signed-off-by and Co-authored-by around and between blocks are ignored."""
    message = format_message("s", "", [PROD, TEST]).replace(
        "Streamlock-Tag: shop/app:test", "Signed-off-by: A <a@x>\nStreamlock-Tag: shop/app:test"
    )
    message += "Co-authored-by: B <b@x>\n"
    assert parse_message(message) == [PROD, TEST]


def test_parse_is_case_insensitive_and_folds() -> None:
    """Keys match in any case, as in git, and continuation lines fold into the value."""
    message = (
        "s\n\nstreamlock-tag : shop/app:prod\nSTREAMLOCK-FROM: reg/x:1\n"
        "(cherry picked from commit 0123456)\n  not folded\n"
        f"streamlock-image:\n  {NEW}\n"
    )
    assert parse_message(message) == [TrailerBlock("shop/app:prod", "reg/x:1", None, NEW)]


def test_parse_reads_only_final_paragraph() -> None:
    """Trailers in the body, above the final paragraph, do not count."""
    message = format_message("s", "", [PROD]) + "\nSigned-off-by: A <a@x>\n"
    assert parse_message(message) == []


@pytest.mark.parametrize("prefix", ["", "\n\n"])
def test_parse_ignores_subject_only_message(prefix: str) -> None:
    """The first paragraph is the title and never a trailer paragraph, as in git."""
    assert parse_message(prefix + "\n".join(PROD.lines()) + "\n") == []


def test_parse_revert_message() -> None:
    """A ``git revert`` message has no trailers."""
    message = (
        'Revert "shop/app: prod 4f1c2a3 → 9e1d0b2"\n\n'
        "This reverts commit 0123456789abcdef0123456789abcdef01234567.\n"
    )
    assert parse_message(message) == []


@pytest.mark.parametrize(
    "lines",
    [
        "Streamlock-Tag: shop/app:prod\nStreamlock-Image: {new}",
        "Streamlock-Tag: shop/app:prod\nStreamlock-From: x",
        "Streamlock-Tag: shop/app:prod\nStreamlock-From: x\nStreamlock-From: y\n"
        "Streamlock-Image: {new}",
        "Streamlock-Tag: shop-app-prod\nStreamlock-From: x\nStreamlock-Image: {new}",
        "Streamlock-Tag: shop/app:prod\nStreamlock-From: x\nStreamlock-Image: latest",
        "Streamlock-Tag: shop/app:prod\nStreamlock-From: x\nStreamlock-Previous: old\n"
        "Streamlock-Image: {new}",
        "Streamlock-From: x\nStreamlock-Image: {new}",
    ],
    ids=["no-from", "no-image", "repeated", "bad-tag", "bad-image", "bad-previous", "no-tag"],
)
def test_parse_drops_malformed_block(lines: str) -> None:
    """A malformed block is dropped and the well-formed block after it is kept."""
    good = "\n".join(PROD.lines())
    message = f"s\n\n{lines.format(new=NEW)}\n{good}\n"
    assert parse_message(message) == [PROD]


_word = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40
).filter(lambda s: s.isprintable() and not any(c.isspace() for c in s))
_name = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\Z")
_tagname = st.from_regex(r"\A\w[\w.-]{0,30}\Z").filter(lambda s: s.isascii())
_digest = st.from_regex(r"\Asha256:[0-9a-f]{64}\Z")
_blocks = st.lists(
    st.builds(
        TrailerBlock,
        tag=st.builds(lambda n, s, t: f"{n}/{s}:{t}", _name, _name, _tagname),
        source=_word,
        previous=st.none() | _digest,
        image=_digest,
    ),
    max_size=6,
)


@given(blocks=_blocks, subject=_word, body=st.text(max_size=200))
def test_round_trip_property(blocks: list[TrailerBlock], subject: str, body: str) -> None:
    """parse(format(blocks)) == blocks for any subject and body."""
    assert parse_message(format_message(subject, body, blocks)) == blocks


def test_subject_single_tag() -> None:
    """One changed tag reads ``ns/stream: tag old7 → new7``."""
    assert bump_subject("shop", "app", [("prod", OLD, NEW)]) == "shop/app: prod 4f1c2a3 → 9e1d0b2"


def test_subject_new_and_removed() -> None:
    """A missing old digest reads ``new``, a missing new one ``removed``."""
    subject = bump_subject("shop", "app", [("prod", None, NEW), ("test", OLD, None)])
    assert subject == "shop/app: prod new → 9e1d0b2, test 4f1c2a3 → removed"


def test_subject_caps_length() -> None:
    """Many tags are cut at 72 characters with a ``(+N more)`` count."""
    changes = [(f"tag{i}", OLD, NEW) for i in range(6)]
    subject = bump_subject("shop", "app", changes)
    assert subject == ("shop/app: tag0 4f1c2a3 → 9e1d0b2, tag1 4f1c2a3 → 9e1d0b2 (+4 more)")
    assert len(subject) <= 72


def test_subject_keeps_first_tag_when_too_long() -> None:
    """The first change is shown even when it alone exceeds the limit."""
    subject = bump_subject("shop", "app", [("t" * 80, OLD, NEW), ("b", OLD, NEW)])
    assert subject.startswith("shop/app: " + "t" * 80) and subject.endswith("(+1 more)")


def test_subject_needs_a_change() -> None:
    """A subject for nothing is refused."""
    with pytest.raises(ValueError, match="at least one"):
        bump_subject("shop", "app", [])


def test_subject_refuses_empty_change() -> None:
    """A change without old and new digest is refused."""
    with pytest.raises(ValueError, match="neither"):
        bump_subject("shop", "app", [("prod", None, None)])


def test_summarize_newest_wins() -> None:
    """Commits come newest first; the first block for a tag and source is the base."""
    newer = format_message("s", "", [PROD])
    older = format_message("s", "", [TrailerBlock(PROD.tag, PROD.source, None, OLD)])
    summary = summarize([("c2", newer), ("c1", older)])
    assert summary.bases == {(PROD.tag, PROD.source): NEW}
    assert summary.last == {PROD.tag: ("c2", NEW)}


def test_summarize_keys_by_source() -> None:
    """A tag whose ``from`` changed keeps one base per source."""
    moved = TrailerBlock(PROD.tag, "registry.example.com/shop/app:1.5", NEW, OTHER)
    summary = summarize(
        [("c2", format_message("s", "", [moved])), ("c1", format_message("s", "", [PROD]))]
    )
    assert summary.bases == {(PROD.tag, PROD.source): NEW, (PROD.tag, moved.source): OTHER}
    assert summary.last == {PROD.tag: ("c2", OTHER)}


def test_summary_over_prefers_newer() -> None:
    """Laying newer commits over an older summary replaces only the keys they touch."""
    older = TrailerSummary(
        bases={("a/b:c", "x"): OLD, ("a/b:d", "y"): OLD}, last={"a/b:c": ("1", OLD)}
    )
    newer = TrailerSummary(bases={("a/b:c", "x"): NEW}, last={"a/b:c": ("2", NEW)})
    merged = newer.over(older)
    assert merged.bases == {("a/b:c", "x"): NEW, ("a/b:d", "y"): OLD}
    assert merged.last == {"a/b:c": ("2", NEW)}
