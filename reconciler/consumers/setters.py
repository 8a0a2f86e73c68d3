"""Setter markers: a line comment names the stream tag a value follows (YAML, Containerfiles).

In YAML (Helm values, CRDs, anything)::

    image: quay.io/shop/app@sha256:…   # {"$imagestream": "shop/app:prod"}
    repository: quay.io/shop/app       # {"$imagestream": "shop/app:prod:name"}
    tag: "1.4"                         # {"$imagestream": "shop/app:prod:tag"}
    digest: sha256:…                   # {"$imagestream": "shop/app:prod:digest"}

In a Containerfile or Dockerfile, where ``#`` starts a comment only at the start of a line, the
marker is the line above a ``FROM``, which then gets ``name:tag@digest`` (as Renovate pins base
images)::

    # {"$imagestream": "platform/base:default"}
    FROM quay.io/platform/base:9@sha256:… AS build

The namespace may be left out (``app:prod``): it is the object's, else the config default. Pure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from reconciler.consumers.slots import DIGEST, FROM, IMAGE, NAME, TAG, Slot, split_tag, tag_key
from reconciler.consumers.source import JsonPath, Scalar, Source, objects
from reconciler.errors import Problem

KEY = "$imagestream"
_MARKER = re.compile(r"#\s*(\{\s*\"\$imagestream\"\s*:\s*\"[^\"]*\"\s*\})\s*$")
_SUFFIXES = {"name": NAME, "tag": TAG, "digest": DIGEST}
_FROM = re.compile(r"^(?P<lead>\s*FROM\s+(?:--\S+\s+)*)(?P<image>\S+)", re.IGNORECASE)
CONTAINERFILE_NAMES = ("Containerfile", "Dockerfile")


def is_containerfile(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(
        name == base or name.startswith(base + ".") or name.endswith("." + base)
        for base in CONTAINERFILE_NAMES
    )


def _marker(text: str) -> str | None:
    """The marker's ``ns/stream:tag[:part]`` (None when it is not valid JSON of that shape)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    value = data.get(KEY) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _target(marker: str, namespace: str) -> tuple[str, str] | None:
    """``[ns/]stream:tag[:part]`` → (tag key, part)."""
    base, colon, last = marker.rpartition(":")
    part = IMAGE
    if colon and last in _SUFFIXES and base.count(":") == 1:
        marker, part = base, _SUFFIXES[last]
    parts = split_tag(marker, namespace)
    return None if parts is None else (tag_key(*parts), part)


def _namespaces(source: Source, default: str) -> dict[int, list[tuple[int, int, str]]]:
    """Per document: (first line, last line, namespace) of each object, for short markers."""
    out: dict[int, list[tuple[int, int, str]]] = {}
    for document, base, obj in objects(source):
        metadata = obj.get("metadata")
        namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
        if isinstance(namespace, str) and namespace:
            lines = [s.line for w, s in source.scalars[document].items() if w[: len(base)] == base]
            if lines:
                out.setdefault(document, []).append((min(lines), max(lines), namespace))
    return out


def find_yaml(
    source: Source, default_namespace: str, *, skip: frozenset[tuple[int, JsonPath]] = frozenset()
) -> tuple[list[Slot], list[Problem]]:
    """Slots of the values on lines that end in a ``$imagestream`` marker."""
    by_line: dict[int, list[tuple[int, JsonPath, Scalar]]] = {}
    for document, scalars in enumerate(source.scalars):
        for where, scalar in scalars.items():
            if where and isinstance(where[-1], (str, int)):
                by_line.setdefault(scalar.line, []).append((document, where, scalar))
    namespaces = _namespaces(source, default_namespace)
    slots: list[Slot] = []
    problems: list[Problem] = []
    offset = 0
    for number, line in enumerate(source.text.splitlines(keepends=True), start=1):
        start, offset = offset, offset + len(line)
        if "$imagestream" not in line:
            continue
        match = _MARKER.search(line.rstrip("\r\n"))
        if match is None:
            continue
        marker = _marker(match.group(1))
        column = match.start() + 1
        hash_at = start + match.start()
        candidates = [
            item
            for item in by_line.get(number, [])
            if item[2].end <= hash_at and item[2].style not in ("|", ">")
        ]
        if marker is None:
            problems.append(Problem(source.path, number, column, "setter: not valid JSON"))
            continue
        if not candidates:
            if not line[: match.start()].strip():
                continue  # a comment line of its own says nothing about a value
            if re.search(r"(?::|-)\s+\*[^\s#]+\s*$", line[: match.start()]):
                problems.append(
                    Problem(
                        source.path,
                        number,
                        column,
                        "setter: the value is a YAML alias; write the value out",
                    )
                )
                continue
            if any(s.start <= hash_at < s.end for _, _, s in by_line.get(number, [])):
                continue  # the text is inside a quoted value, not a comment
            problems.append(
                Problem(source.path, number, column, "setter: no value on this line to set")
            )
            continue
        document, where, scalar = max(candidates, key=lambda item: item[2].start)
        if (document, where) in skip:
            continue
        namespace = default_namespace
        for first, last, ns in namespaces.get(document, ()):
            if first <= number <= last:
                namespace = ns
        target = _target(marker, namespace)
        if target is None:
            problems.append(
                Problem(
                    source.path,
                    number,
                    column,
                    f"setter: {marker!r} is not [namespace/]stream:tag[:name|:tag|:digest]",
                )
            )
            continue
        if scalar.shared:
            problems.append(
                Problem(
                    source.path,
                    scalar.line,
                    scalar.column,
                    "setter: the value is shared through a YAML alias or merge; write it out",
                )
            )
            continue
        tag, part = target
        slots.append(
            Slot(tag, part, scalar.value, "setter", scalar.line, scalar.column, document, where)
        )
    return slots, problems


def find_containerfile(
    path: str, text: str, default_namespace: str
) -> tuple[list[Slot], list[Problem]]:
    """Slots of the ``FROM`` lines right below a ``# {"$imagestream": …}`` line."""
    slots: list[Slot] = []
    problems: list[Problem] = []
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped.startswith("#") or "$imagestream" not in stripped:
            continue
        match = _MARKER.search(stripped)
        marker = _marker(match.group(1)) if match else None
        target = _target(marker, default_namespace) if marker else None
        if target is None:
            problems.append(
                Problem(path, number, 1, 'setter: expected # {"$imagestream": "ns/stream:tag"}')
            )
            continue
        following = _FROM.match(lines[number]) if number < len(lines) else None
        if following is None:
            problems.append(Problem(path, number, 1, "setter: the line below is not a FROM line"))
            continue
        tag, _ = target
        slots.append(
            Slot(tag, FROM, following["image"], "FROM", number + 1, following.start("image") + 1)
        )
    return slots, problems


def rewrite_containerfile(text: str, values: Mapping[int, str]) -> str:
    """``text`` with the image of each FROM line (by line number) replaced."""
    lines = text.splitlines(keepends=True)
    for number, value in values.items():
        line = lines[number - 1]
        match = _FROM.match(line)
        if match is not None:
            lines[number - 1] = line[: match.start("image")] + value + line[match.end("image") :]
    return "".join(lines)
