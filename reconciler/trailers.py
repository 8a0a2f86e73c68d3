"""Commit messages of reconciler commits: subject, body and ``Streamlock-*`` trailers.

History is the reconciler's only state (DESIGN.md §4): the trailers of its own commits say which
digest it last committed for each tag and ``from``. A ``git revert`` of a bump carries no
trailers, so a revert never changes that record. Pure: formats and parses strings, no I/O.

A message looks like::

    shop/app: prod 4f1c2a3 → 9e1d0b2

    <body>

    Streamlock-Tag: shop/app:prod
    Streamlock-From: registry.example.com/shop/app:1.4
    Streamlock-Previous: sha256:4f1c2a3…      (``none`` for a tag imported for the first time)
    Streamlock-Image: sha256:9e1d0b2…
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

TAG_KEY = "Streamlock-Tag"
FROM_KEY = "Streamlock-From"
PREVIOUS_KEY = "Streamlock-Previous"
IMAGE_KEY = "Streamlock-Image"
NO_PREVIOUS = "none"

SUBJECT_LIMIT = 72
ARROW = "→"

_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_TAG_RE = re.compile(r"^[^/:]+/[^/:]+:[^/:]+$")
_TRAILER_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
# git interpret-trailers stops reading at a line that starts with "---" and whitespace (a patch).
_DIVIDER_RE = re.compile(r"^---(?:\s|$)")


@dataclass(frozen=True, slots=True)
class TrailerBlock:
    """What one reconciler commit did to one tag."""

    tag: str  # "ns/stream:tag"
    source: str  # TagReference.identity() of the tag's `from`
    previous: str | None  # the digest before the commit; None for a first import
    image: str  # the digest committed

    def lines(self) -> list[str]:
        previous = self.previous if self.previous is not None else NO_PREVIOUS
        return [
            f"{TAG_KEY}: {self.tag}",
            f"{FROM_KEY}: {self.source}",
            f"{PREVIOUS_KEY}: {previous}",
            f"{IMAGE_KEY}: {self.image}",
        ]


def _is_value(text: str) -> bool:
    """Trailer values are single printable words: git would fold or split anything else."""
    return bool(text) and text.isprintable() and not any(c.isspace() for c in text)


def block_problem(block: TrailerBlock) -> str | None:
    """Why a block cannot be written or trusted, or None when it is well formed."""
    if not _is_value(block.tag) or not _TAG_RE.match(block.tag):
        return f"tag {block.tag!r} is not ns/stream:tag"
    if not _is_value(block.source):
        return f"source {block.source!r} is empty or contains whitespace"
    if block.previous is not None and not _DIGEST_RE.match(block.previous):
        return f"previous {block.previous!r} is not a digest"
    if not _DIGEST_RE.match(block.image):
        return f"image {block.image!r} is not a digest"
    return None


def format_message(subject: str, body: str, blocks: Sequence[TrailerBlock]) -> str:
    """Subject, blank line, body, blank line, one trailer paragraph; ends with a newline.

    Body lines that git would take for a patch divider (``---``) are indented by one space so
    ``git interpret-trailers`` still finds the trailers.
    """
    subject = subject.strip()
    if not subject or "\n" in subject or "\r" in subject:
        raise ValueError(f"a commit subject is one non-empty line, got {subject!r}")
    for block in blocks:
        problem = block_problem(block)
        if problem is not None:
            raise ValueError(f"cannot write trailers: {problem}")
    paragraphs = [subject]
    body_lines = [line.rstrip() for line in body.strip("\n").split("\n")]
    body_text = "\n".join(
        f" {line}" if _DIVIDER_RE.match(line) else line for line in body_lines
    ).strip()
    if body_text:
        paragraphs.append(re.sub(r"\n{3,}", "\n\n", body_text))
    if blocks:
        paragraphs.append("\n".join(line for block in blocks for line in block.lines()))
    return "\n\n".join(paragraphs) + "\n"


def _final_paragraph(message: str) -> list[str]:
    """The last paragraph's lines, as git finds trailers; the title never counts."""
    lines = [line.rstrip() for line in message.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    start = len(lines)
    while start > 0 and lines[start - 1]:
        start -= 1
    if start == 0 or not any(lines[:start]):
        return []  # the only paragraph is the subject
    return lines[start:]


def _trailers(lines: list[str]) -> list[tuple[str, str]]:
    """``(key, value)`` pairs; continuation lines are folded, other lines skipped."""
    pairs: list[tuple[str, str]] = []
    last_was_trailer = False
    for line in lines:
        if line[:1] in (" ", "\t"):
            if last_was_trailer:
                key, value = pairs[-1]
                pairs[-1] = (key, f"{value} {line.strip()}".strip())
            continue
        match = _TRAILER_RE.match(line)
        last_was_trailer = match is not None
        if match:
            pairs.append((match.group(1), match.group(2).strip()))
    return pairs


def parse_message(message: str) -> list[TrailerBlock]:
    """The well-formed trailer blocks of the final paragraph, in order.

    Other trailers (``Signed-off-by``…) are ignored; a block with a missing or repeated field or
    a bad value is dropped. ``Streamlock-Previous`` may be ``none`` or absent.
    """
    blocks: list[TrailerBlock] = []
    current: dict[str, str] | None = None
    broken = False

    def close() -> None:
        if current is None or broken or FROM_KEY not in current or IMAGE_KEY not in current:
            return
        previous = current.get(PREVIOUS_KEY)
        block = TrailerBlock(
            tag=current[TAG_KEY],
            source=current[FROM_KEY],
            previous=None if previous in (None, NO_PREVIOUS) else previous,
            image=current[IMAGE_KEY],
        )
        if block_problem(block) is None:
            blocks.append(block)

    keys = {key.lower(): key for key in (TAG_KEY, FROM_KEY, PREVIOUS_KEY, IMAGE_KEY)}
    for raw_key, value in _trailers(_final_paragraph(message)):
        key = keys.get(raw_key.lower())
        if key == TAG_KEY:
            close()
            current, broken = {TAG_KEY: value}, False
        elif key is not None and current is not None:
            broken = broken or key in current
            current[key] = value
    close()
    return blocks


def short_hex(digest: str) -> str:
    """The first seven hex digits, as subjects show a digest (like git's short commit ids)."""
    return digest.rsplit(":", 1)[-1][:7]


def bump_subject(
    namespace: str,
    stream: str,
    changes: Sequence[tuple[str, str | None, str | None]],
    limit: int = SUBJECT_LIMIT,
) -> str:
    """``shop/app: prod 4f1c2a3 → 9e1d0b2, test new → 1a2b3c4 (+2 more)``, within ``limit``.

    ``changes`` are ``(tag, old digest, new digest)``; a missing old digest reads ``new``, a
    missing new one ``removed``. The first change is always shown.
    """
    if not changes:
        raise ValueError("a bump subject needs at least one change")
    parts = []
    for tag, old, new in changes:
        if old is None and new is None:
            raise ValueError(f"change of tag {tag!r} has neither an old nor a new digest")
        before = "new" if old is None else short_hex(old)
        after = "removed" if new is None else short_hex(new)
        parts.append(f"{tag} {before} {ARROW} {after}")
    head = f"{namespace}/{stream}: "
    text = head + ", ".join(parts)
    for shown in range(len(parts) - 1, 0, -1):
        if len(text) <= limit:
            break
        text = head + ", ".join(parts[:shown]) + f" (+{len(parts) - shown} more)"
    return text


@dataclass(frozen=True, slots=True)
class TrailerSummary:
    """What the reconciler's commits say, newest commit first wins.

    ``bases``: ``(tag, source) -> image`` of the newest commit for that tag and source (the B of
    the revert rule). ``last``: ``tag -> (commit sha, image)`` of the newest commit for the tag.
    """

    bases: Mapping[tuple[str, str], str] = field(default_factory=dict)
    last: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def over(self, older: TrailerSummary) -> TrailerSummary:
        """This summary of newer commits laid over one of older commits."""
        return TrailerSummary(bases={**older.bases, **self.bases}, last={**older.last, **self.last})


def summarize(commits: Iterable[tuple[str, str]]) -> TrailerSummary:
    """Summarise ``(sha, message)`` pairs given newest first."""
    bases: dict[tuple[str, str], str] = {}
    last: dict[str, tuple[str, str]] = {}
    for sha, message in commits:
        for block in parse_message(message):
            bases.setdefault((block.tag, block.source), block.image)
            last.setdefault(block.tag, (sha, block.image))
    return TrailerSummary(bases=bases, last=last)
