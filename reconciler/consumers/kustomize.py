"""kustomize ``images:`` entries marked with a setter get ``newName`` and ``digest`` set.

::

    images:
      - name: app    # {"$imagestream": "shop/app:prod"}
        newName: registry.example.com/shop/app
        digest: sha256:…

A missing ``newName`` or ``digest`` is added below the marked line (block-style entries). Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.consumers.slots import DIGEST, IMAGE, NAME, Slot
from reconciler.consumers.source import Source
from reconciler.errors import Problem

FILE_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
FIELDS = (("newName", NAME), ("digest", DIGEST))


def is_kustomization(path: str) -> bool:
    return path.rsplit("/", 1)[-1] in FILE_NAMES


def _entry(slot: Slot) -> int | None:
    where = slot.where
    if len(where) == 3 and where[0] == "images" and isinstance(where[1], int):
        return where[1]
    return None


def expand(source: Source, slots: Sequence[Slot]) -> tuple[list[Slot], list[Problem]]:
    """Setter slots inside ``images[N]`` become that entry's ``newName`` and ``digest`` slots."""
    out: list[Slot] = []
    problems: list[Problem] = []
    for slot in slots:
        index = _entry(slot)
        if index is None:
            out.append(slot)
            continue
        if slot.part != IMAGE:
            problems.append(
                Problem(
                    source.path,
                    slot.line,
                    slot.column,
                    "setter: an images entry takes the whole pull spec; drop the :part suffix",
                )
            )
            continue
        entry = source.documents[slot.document].data["images"][index]
        if not isinstance(entry, dict):
            continue
        for key, part in FIELDS:
            where = ("images", index, key)
            scalar = source.scalar(slot.document, where)
            value = entry.get(key) if isinstance(entry.get(key), str) else None
            if key in entry and scalar is None:
                problems.append(
                    source.problem(slot.document, where, f"images[{index}].{key} is not a string")
                )
                continue
            line, column = (scalar.line, scalar.column) if scalar else (slot.line, slot.column)
            out.append(
                Slot(slot.tag, part, value, "kustomize image", line, column, slot.document, where)
            )
    return out, problems


def insertion(source: Source, slot: Slot, value: str) -> tuple[int, str] | None:
    """Where (character offset) and what to insert for a field the entry does not have yet:
    a line below the entry's last value, indented like its ``name`` key."""
    document = source.documents[slot.document]
    entry = slot.where[:2]
    name_key = document.keys.get((*entry, "name"))
    if name_key is None:
        return None
    line, column = name_key
    lines = source.text.splitlines(keepends=True)
    if "{" in lines[line - 1][: column - 1]:
        return None  # a flow-style entry: there is no line to add
    last = max(
        (s.line for w, s in source.scalars[slot.document].items() if w[: len(entry)] == entry),
        default=line,
    )
    ending = "\r\n" if lines[line - 1].endswith("\r\n") else "\n"
    offset = sum(len(text) for text in lines[:last])
    field = f"{' ' * (column - 1)}{slot.where[-1]}: {value}"
    if not lines[last - 1].endswith(("\n", "\r")):
        return offset, ending + field
    return offset, field + ending
