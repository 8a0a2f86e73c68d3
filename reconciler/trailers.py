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

Only the reconciler writes these lines, so only their exact shape is read back: text that reaches
a message from elsewhere (an image label, a person) is escaped onto one line when written and can
never pass for a block when read.
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
_BLOCK_KEYS = (TAG_KEY, FROM_KEY, PREVIOUS_KEY, IMAGE_KEY)

SUBJECT_LIMIT = 72
ARROW = "→"

_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_TAG_RE = re.compile(r"^[^/:]+/[^/:]+:[^/:]+$")
_OWN_KEY_RE = re.compile(r"^[ \t]*streamlock-(?:tag|from|previous|image)[ \t]*:", re.IGNORECASE)
# git interpret-trailers stops reading at a line that starts with "---" and whitespace (a patch).
_DIVIDER_RE = re.compile(r"^---(?:\s|$)")
# A subject bump_subject wrote for one stream: "<ns>/<stream>: ...".
_STREAM_SUBJECT_RE = re.compile(r"^([a-z0-9][a-z0-9-]*)/([a-z0-9][a-z0-9.-]*): ")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x00": "\\0"}
TEXT_LIMIT = 200


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


def _escape(char: str) -> str:
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def one_line(text: str, limit: int = TEXT_LIMIT) -> str:
    """Foreign text (a label, a ``created`` time) as one printable line of at most ``limit``.

    Registry text is written by whoever publishes an image: it must never start a line of a
    commit message, form a trailer, or carry a NUL that ``git commit-tree`` refuses. Every
    character that is not printable (control and format characters such as NUL, CR, ESC and
    bidi overrides, line and paragraph separators, lone surrogates, unassigned code points,
    spaces other than ASCII's) is shown as an escape; longer text is cut with ``…``.
    """
    out = (
        text if text.isprintable() else "".join(c if c.isprintable() else _escape(c) for c in text)
    )
    return out if len(out) <= limit else out[: max(limit - 1, 0)] + "…"


def _safe_line(line: str) -> str:
    """One body line with every unsafe character escaped (newlines were split off already)."""
    return one_line(line, limit=len(line) * 10 + 1)


def _is_value(text: str) -> bool:
    """Trailer values are single printable words: git would fold or split anything else."""
    # Printable text holds no whitespace but the ASCII space (other spaces are escaped).
    return bool(text) and text.isprintable() and " " not in text


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

    Only the trailer paragraph can be read as ``Streamlock-*`` trailers: unsafe characters in
    subject and body are escaped (no NUL, CR or line separator reaches git) and body lines that
    start like one of its trailer lines are quoted with ``> ``, also in a message without blocks,
    whose body is then its last paragraph. Body lines that git would take for a patch divider
    (``---``) are indented by one space so the trailers stay visible.
    """
    subject = subject.strip()
    if not subject or "\n" in subject or "\r" in subject:
        raise ValueError(f"a commit subject is one non-empty line, got {subject!r}")
    subject = _safe_line(subject)
    for block in blocks:
        problem = block_problem(block)
        if problem is not None:
            raise ValueError(f"cannot write trailers: {problem}")
    paragraphs = [subject]
    body_lines = [_body_line(line) for line in body.strip("\n").split("\n")]
    body_text = re.sub(r"\n{3,}", "\n\n", "\n".join(body_lines).strip())
    if body_text:
        paragraphs.append(body_text)
    if blocks:
        paragraphs.append("\n".join(line for block in blocks for line in block.lines()))
    return "\n\n".join(paragraphs) + "\n"


def _body_line(line: str) -> str:
    line = _safe_line(line.rstrip())
    if _DIVIDER_RE.match(line):
        return f" {line}"
    if _OWN_KEY_RE.match(line):
        return f"> {line}"
    return line


def _final_paragraph(message: str) -> list[str]:
    """The last paragraph's lines, as written; the title never counts.

    Paragraphs end at blank (or whitespace-only) lines, as in git; trailing blank lines at the
    end of the message are ignored, nothing else is trimmed.
    """
    lines = message.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    start = len(lines)
    while start > 0 and lines[start - 1].strip():
        start -= 1
    if start == 0 or not any(line.strip() for line in lines[:start]):
        return []  # the only paragraph is the subject
    return lines[start:]


def _subject_agrees(message: str, blocks: Sequence[TrailerBlock]) -> bool:
    """A subject naming one stream (``ns/stream: …``) only goes with blocks of that stream."""
    match = _STREAM_SUBJECT_RE.match(message.split("\n", 1)[0])
    if match is None:
        return True
    prefix = f"{match.group(1)}/{match.group(2)}:"
    return all(block.tag.startswith(prefix) for block in blocks)


def parse_message(message: str) -> list[TrailerBlock]:
    """The trailer blocks of a reconciler commit, in order; [] for any other message.

    Only the exact shape :func:`format_message` writes is accepted: a final paragraph made of
    nothing but blocks of four lines (``Tag``, ``From``, ``Previous``, ``Image``, in that order,
    ``Key: value``, no continuation lines), each well formed. Anything else in that paragraph
    (``Signed-off-by``, a stray line, a block out of shape) rejects the whole paragraph, and so
    does a block of another stream under a subject that names one stream: whatever text reached
    a message from elsewhere can never be taken for what the reconciler committed.
    """
    lines = _final_paragraph(message)
    if not lines or len(lines) % len(_BLOCK_KEYS):
        return []
    blocks: list[TrailerBlock] = []
    for start in range(0, len(lines), len(_BLOCK_KEYS)):
        written = lines[start : start + len(_BLOCK_KEYS)]
        values = []
        for key, line in zip(_BLOCK_KEYS, written, strict=True):
            prefix = f"{key}: "
            if not line.startswith(prefix):
                return []
            values.append(line[len(prefix) :])
        tag, source, previous, image = values
        block = TrailerBlock(tag, source, None if previous == NO_PREVIOUS else previous, image)
        if block_problem(block) is not None:
            return []
        blocks.append(block)
    return blocks if _subject_agrees(message, blocks) else []


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
