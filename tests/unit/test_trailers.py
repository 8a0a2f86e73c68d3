"""Commit message format of reconciler commits: trailers, parsing tolerance, subjects."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler import trailers
from reconciler.trailers import (
    TrailerBlock,
    TrailerSummary,
    bump_subject,
    format_message,
    one_line,
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


def test_parse_rejects_missing_previous() -> None:
    """A block without its Previous line is not the shape the reconciler writes."""
    message = f"s\n\nStreamlock-Tag: a/b:c\nStreamlock-From: x\nStreamlock-Image: {NEW}\n"
    assert parse_message(message) == []


@pytest.mark.parametrize(
    "where",
    ["before", "between", "after"],
)
def test_parse_rejects_paragraph_with_other_trailers(where: str) -> None:
    """A Signed-off-by line anywhere in the final paragraph rejects the whole paragraph."""
    lines = [*PROD.lines(), *TEST.lines()]
    at = {"before": 0, "between": 4, "after": 8}[where]
    lines.insert(at, "Signed-off-by: A <a@x>")
    assert parse_message("s\n\n" + "\n".join(lines) + "\n") == []


def test_parse_rejects_other_case_and_folding() -> None:
    """Keys in another case, blanks before the colon and continuation lines are refused."""
    message = (
        "s\n\nstreamlock-tag : shop/app:prod\nSTREAMLOCK-FROM: reg/x:1\n"
        f"Streamlock-Previous: none\nstreamlock-image:\n  {NEW}\n"
    )
    assert parse_message(message) == []


def test_parse_rejects_continuation_line() -> None:
    """A value folded onto a continuation line is not what format_message writes."""
    lines = PROD.lines()
    lines[3] = "Streamlock-Image:"
    message = "s\n\n" + "\n".join(lines) + f"\n {NEW}\n"
    assert parse_message(message) == []


def test_parse_rejects_trailing_blank_in_value() -> None:
    """A line that differs from the written one only by a trailing blank is refused."""
    message = format_message("s", "", [PROD]).replace(f"Image: {NEW}", f"Image: {NEW} ")
    assert parse_message(message) == []


def test_parse_rejects_block_mixed_with_text() -> None:
    """A block-looking paragraph that also holds prose is not a reconciler block."""
    message = "s\n\nversion 1.1 of the app\n" + "\n".join(PROD.lines()) + "\n"
    assert parse_message(message) == []


def test_parse_rejects_other_stream_under_stream_subject() -> None:
    """Under ``ns/stream: …`` only blocks of that stream count (older forged commits too)."""
    other = TrailerBlock("team/prod:latest", "reg/team/prod:1", None, NEW)
    assert parse_message(format_message("shop/app: v 4f1c2a3 → 9e1d0b2", "", [other])) == []
    own = format_message("shop/app: prod 4f1c2a3 → 9e1d0b2", "", [PROD])
    assert parse_message(own) == [PROD]


def test_parse_reads_a_message_written_before() -> None:
    """A message as the reconciler has always written it, byte for byte, still parses."""
    message = (
        "shop/app: prod 4f1c2a3 → 9e1d0b2, test new → 1a2b3c4\n"
        "\n"
        "prod: DockerImage registry.example.com/shop/app:1.4, created 2026-11-01T00:00:00Z\n"
        "test: ImageStreamTag shop/app:latest\n"
        "\n"
        "Streamlock-Tag: shop/app:prod\n"
        "Streamlock-From: registry.example.com/shop/app:1.4\n"
        f"Streamlock-Previous: {OLD}\n"
        f"Streamlock-Image: {NEW}\n"
        "Streamlock-Tag: shop/app:test\n"
        "Streamlock-From: ImageStreamTag:shop/app:latest\n"
        "Streamlock-Previous: none\n"
        f"Streamlock-Image: {OTHER}\n"
    )
    assert parse_message(message) == [PROD, TEST]


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
        "Streamlock-Tag: shop/app:prod\nStreamlock-From: x\nStreamlock-Previous: none",
        "Streamlock-Tag: shop/app:prod\nStreamlock-From: x\nStreamlock-From: y\n"
        "Streamlock-Image: {new}",
        "Streamlock-Tag: shop-app-prod\nStreamlock-From: x\nStreamlock-Previous: none\n"
        "Streamlock-Image: {new}",
        "Streamlock-Tag: shop/app:prod\nStreamlock-From: x\nStreamlock-Previous: none\n"
        "Streamlock-Image: latest",
        "Streamlock-Tag: shop/app:prod\nStreamlock-From: x\nStreamlock-Previous: old\n"
        "Streamlock-Image: {new}",
        "Streamlock-From: x\nStreamlock-Tag: shop/app:prod\nStreamlock-Previous: none\n"
        "Streamlock-Image: {new}",
    ],
    ids=["no-image", "repeated", "bad-tag", "bad-image", "bad-previous", "out-of-order"],
)
def test_parse_rejects_paragraph_with_malformed_block(lines: str) -> None:
    """One malformed block rejects the paragraph, well-formed blocks around it included."""
    good = "\n".join(PROD.lines())
    message = f"s\n\n{lines.format(new=NEW)}\n{good}\n"
    assert parse_message(message) == []


def test_body_with_a_block_never_parses_as_one() -> None:
    """A body made of exact block lines, in a message without blocks, yields no block."""
    forged = "\n".join(PROD.lines())
    message = format_message("shop/app: refresh lock", forged, [])
    assert parse_message(message) == []
    assert "\nStreamlock-" not in message


def test_body_cannot_add_a_block_before_the_real_one() -> None:
    """Block lines at the end of a body stay in the body: only the real blocks are read."""
    forged = "\n".join(TrailerBlock("shop/app:test", "x", None, OLD).lines())
    message = format_message("shop/app: prod 4f1c2a3 → 9e1d0b2", "a\n\n" + forged, [PROD])
    assert parse_message(message) == [PROD]


UNSAFE = [
    "\n", "\r", "\x00", "\x0b", "\x0c", "\x1b", "\x1c", "\x1d", "\x1e", "\x1f", "\x7f",
    "\x85", "\u2028", "\u2029", "\u202e", "\u200b", "\ufeff", "\ud800",
]  # fmt: skip


@pytest.mark.parametrize("char", UNSAFE, ids=[f"U+{ord(c):04X}" for c in UNSAFE])
def test_one_line_escapes(char: str) -> None:
    """Control, format and separator characters come out as visible escapes on one line."""
    text = one_line(f"1.1{char}Signed-off-by: M <m@x>")
    assert char not in text and text.startswith("1.1\\")
    assert len(text.splitlines()) == 1 and text.isprintable()


def test_one_line_cuts_long_text() -> None:
    """Foreign text is cut to the limit with an ellipsis."""
    assert one_line("x" * 500, limit=10) == "x" * 9 + "…"
    assert one_line("plain 1.0") == "plain 1.0"


@given(text=st.text(max_size=300))
def test_one_line_property(text: str) -> None:
    """Whatever the text, the result is one printable line within the limit."""
    line = one_line(text)
    assert len(line) <= 200 and (not line or (len(line.splitlines()) == 1 and line.isprintable()))


@pytest.mark.parametrize("char", ["\x00", "\r", "\u2028", "\x85"], ids=repr)
def test_format_escapes_unsafe_characters(char: str) -> None:
    """A NUL or a line separator in a body never reaches git; the blocks still parse."""
    message = format_message("s", f"version 1{char}Streamlock-Tag: a/b:c", [PROD])
    assert char not in message
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


def test_subject_of_one_long_change_has_no_count() -> None:
    """A single change longer than the limit is shown whole, without a ``(+N more)``."""
    assert bump_subject("shop", "app", [("t" * 80, OLD, NEW)]) == (
        "shop/app: " + "t" * 80 + " 4f1c2a3 → 9e1d0b2"
    )


def test_subject_of_exactly_the_limit_is_not_cut() -> None:
    """A subject exactly 72 characters long keeps every change."""
    changes = [("t" * 23, OLD, NEW), ("b", OLD, NEW)]
    subject = bump_subject("shop", "app", changes)
    assert len(subject) == 72 and "more" not in subject


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


def test_body_lines_like_trailer_lines_are_quoted_others_kept() -> None:
    """Only a line that starts like a Streamlock trailer is quoted; a tag named so is not."""
    body = "streamlock-test: DockerImage x\nSTREAMLOCK-IMAGE : sha256:1\nplain"
    message = format_message("s", body, [])
    assert message == (
        "s\n\nstreamlock-test: DockerImage x\n> STREAMLOCK-IMAGE : sha256:1\nplain\n"
    )


@given(st.text(max_size=40), st.text(max_size=40))
def test_printable_text_is_kept_as_it_is_and_only_space_splits_a_value(left: str, right: str):
    """The fast paths agree with escaping each character and with looking for any whitespace."""
    text = left + right
    expected = "".join(c if c.isprintable() else trailers._escape(c) for c in text)
    assert one_line(text, limit=10_000) == expected
    assert trailers._is_value(text) == (
        bool(text) and text.isprintable() and not any(c.isspace() for c in text)
    )
