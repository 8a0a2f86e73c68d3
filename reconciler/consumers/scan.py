"""One consumer file: the slots it holds, and the file rewritten so every slot holds its pin.

``scan`` reads what a file follows (cached by the reader per Git blob id, so a no-op pass never
parses an unchanged file again); ``rewrite`` changes only the values that differ from their pins.
A file with any problem (unreadable, an unmatched ``fieldPath``, a tag no lock has) is left
exactly as it is and its problems are reported: nothing is half-written. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.consumers import kustomize, setters, triggers
from reconciler.consumers.slots import Pin, Slot
from reconciler.consumers.source import Scalar, Source, encode, parse, splice, written
from reconciler.errors import Problem, ValidationError

YAML_SUFFIXES = (".yaml", ".yml", ".json")


def is_consumer_file(path: str) -> bool:
    return (
        path.endswith(YAML_SUFFIXES)
        or setters.is_containerfile(path)
        or (kustomize.is_kustomization(path))
    )


@dataclass(frozen=True, slots=True)
class Scan:
    """What one file follows, and why it cannot (its problems)."""

    slots: tuple[Slot, ...] = ()
    problems: tuple[Problem, ...] = ()

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(slot.tag for slot in self.slots)

    def differs(self, pins: Mapping[str, Pin], tags: frozenset[str] | None = None) -> bool:
        """Whether a slot (of ``tags``, or any) holds another value than its pin."""
        return any(
            slot.value != slot.wanted(pins)
            for slot in self.slots
            if (tags is None or slot.tag in tags) and slot.tag in pins
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "slots": [slot.to_dict() for slot in self.slots],
            "problems": [[p.path, p.line, p.column, p.message] for p in self.problems],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scan:
        return cls(
            tuple(Slot.from_dict(item) for item in data["slots"]),
            tuple(Problem(*item) for item in data["problems"]),
        )


@dataclass(frozen=True, slots=True)
class _Parsed:
    scan: Scan
    source: Source | None  # None for a Containerfile
    text: str


def _decode(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValidationError([Problem(path, line, 1, "not valid UTF-8")]) from exc


def _parse(path: str, data: bytes, default_namespace: str) -> _Parsed:
    try:
        if setters.is_containerfile(path):
            text = _decode(data, path)
            slots, problems = setters.find_containerfile(path, text, default_namespace)
            return _Parsed(Scan(tuple(slots), tuple(problems)), None, text)
        if not path.endswith(YAML_SUFFIXES) and not kustomize.is_kustomization(path):
            return _Parsed(Scan(), None, "")
        source = parse(data, path)
    except ValidationError as exc:
        return _Parsed(Scan((), tuple(exc.problems)), None, "")
    slots, problems = triggers.find(source, default_namespace)
    taken = frozenset((slot.document, slot.where) for slot in slots)
    marked, marker_problems = setters.find_yaml(source, default_namespace, skip=taken)
    if kustomize.is_kustomization(path):
        marked, kustomize_problems = kustomize.expand(source, marked)
        marker_problems += kustomize_problems
    return _Parsed(
        Scan(tuple(slots + marked), tuple(sorted(problems + marker_problems))), source, source.text
    )


def scan(path: str, data: bytes, default_namespace: str) -> Scan:
    """The slots and problems of the consumer file ``path`` holding ``data``."""
    return _parse(path, data, default_namespace).scan


@dataclass(frozen=True, slots=True)
class Rewrite:
    """A consumer file's new bytes (equal to the old when nothing changes) and its problems."""

    path: str
    data: bytes
    problems: tuple[Problem, ...] = ()
    tags: frozenset[str] = frozenset()  # the tags whose pins changed a value


def rewrite(
    path: str,
    data: bytes,
    pins: Mapping[str, Pin],
    default_namespace: str,
    *,
    only: frozenset[str] | None = None,
) -> Rewrite:
    """``data`` with each slot (of the tags in ``only``, or all) set to its pin's value.

    Any problem leaves the file untouched. Slots of tags outside ``only`` are not checked
    against ``pins``, so a partial rewrite (one commit's tags) never fails for another tag.
    """
    parsed = _parse(path, data, default_namespace)
    slots = [slot for slot in parsed.scan.slots if only is None or slot.tag in only]
    problems = list(parsed.scan.problems)
    problems += [p for slot in slots if (p := slot.problem(path, pins)) is not None]
    if problems:
        return Rewrite(path, data, tuple(sorted(set(problems))))
    changed = [slot for slot in slots if slot.value != slot.wanted(pins)]
    if not changed:
        return Rewrite(path, data)
    tags = frozenset(slot.tag for slot in changed)
    if parsed.source is None:
        values = {slot.line: slot.wanted(pins) or "" for slot in changed}
        return Rewrite(path, setters.rewrite_containerfile(parsed.text, values).encode(), (), tags)
    source = parsed.source
    edits: dict[Scalar, str] = {}
    inserts: list[tuple[int, str]] = []
    for slot in changed:
        value = slot.wanted(pins) or ""
        scalar = source.scalar(slot.document, slot.where)
        if scalar is not None:
            edits[scalar] = value
            continue
        place = kustomize.insertion(source, slot, written(value, None, source.is_json))
        if place is None:
            problem = Problem(
                path, slot.line, slot.column, f"{slot.origin}: add {slot.where[-1]} to the entry"
            )
            return Rewrite(path, data, (problem,))
        inserts.append(place)
    text = splice(source.text, edits, as_json=source.is_json)
    if inserts:
        text = _insert(source.text, edits, inserts, source.is_json)
    return Rewrite(path, encode(source, text), (), tags)


def _insert(
    text: str, edits: Mapping[Scalar, str], inserts: list[tuple[int, str]], as_json: bool
) -> str:
    """Splice the edits and the inserted lines in one walk over the original text."""
    pieces: list[tuple[int, int, str]] = [
        (s.start, s.end, written(v, s.style, as_json, flow=s.flow)) for s, v in edits.items()
    ]
    pieces += [(offset, offset, line) for offset, line in inserts]
    out: list[str] = []
    position = 0
    for start, end, value in sorted(pieces, key=lambda p: (p[0], p[1])):
        out.append(text[position:start])
        out.append(value)
        position = end
    out.append(text[position:])
    return "".join(out)
