"""A consumer file as written: its objects as plain data, and where each scalar value sits.

Rewrites never re-emit a document. The parse records the character span of every scalar, and an
edit replaces exactly that span with the new value written in the old value's style (plain,
single- or double-quoted; JSON strings stay JSON strings). Comments, key order, quoting,
indentation, line endings and a byte-order mark are therefore untouched by construction: the
bytes outside the rewritten values are identical. Loading goes through ``schema`` (size, alias,
nesting and tag limits, located syntax errors) like every other file people write. Pure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler import schema
from reconciler.errors import Problem, ValidationError

JsonPath = schema.JsonPath
LIST_KINDS = ("List",)
_BOM = "\ufeff".encode()
# What may stay a plain scalar: every image pull spec, tag and digest is of this shape.
_PLAIN_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/@:+-]*$")
_RESERVED = frozenset({"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"})


@dataclass(frozen=True, slots=True)
class Scalar:
    """One scalar value as written: its character span in the text and its quoting style."""

    start: int
    end: int
    line: int
    column: int
    style: str | None  # None or "" plain, "'" or '"' quoted, "|" or ">" block
    value: str
    shared: bool = False  # reached through a YAML alias or merge: editing it edits others
    flow: bool = False  # inside a flow collection ({…} or […]): a plain value there is quoted


@dataclass(frozen=True, slots=True)
class Source:
    """A parsed YAML or JSON consumer file."""

    path: str
    text: str
    bom: bool
    documents: tuple[schema.Document, ...]
    scalars: tuple[Mapping[JsonPath, Scalar], ...]

    @property
    def is_json(self) -> bool:
        return self.path.endswith(".json")

    def scalar(self, document: int, where: JsonPath) -> Scalar | None:
        return self.scalars[document].get(where)

    def problem(self, document: int, where: JsonPath, message: str) -> Problem:
        return self.documents[document].problem(where, message)


def parse(data: bytes, path: str) -> Source:
    """Bytes → Source; ValidationError (located) when the file cannot be read as YAML/JSON."""
    text = schema._decode(data, path)
    if path.endswith(".json"):
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                [Problem(path, exc.lineno, exc.colno, f"not valid JSON: {exc.msg}")]
            ) from exc
        except RecursionError as exc:
            raise ValidationError([Problem(path, 1, 1, "nested too deeply")]) from exc
    yaml, roots = schema._compose(text, path)
    builder = schema._Builder(path, yaml.constructor)
    documents: list[schema.Document] = []
    scalars: list[Mapping[JsonPath, Scalar]] = []
    for root in roots:
        if isinstance(root, ScalarNode) and root.tag == schema._NULL:
            continue
        values: dict[JsonPath, schema.Position] = {(): schema._position(root)}
        keys: dict[JsonPath, schema.Position] = {}
        plain = builder.build(root, (), values, keys)
        documents.append(schema.Document(path, plain, values, keys))
        scalars.append(_spans(root))
    if builder.problems:
        raise ValidationError(list(dict.fromkeys(builder.problems)))
    return Source(path, text, data.startswith(_BOM), tuple(documents), tuple(scalars))


def _spans(root: Node) -> dict[JsonPath, Scalar]:
    """Every scalar reachable under its own keys, marked shared when an alias reaches it too."""
    found: dict[JsonPath, ScalarNode] = {}
    seen: dict[int, int] = {}
    flow: set[JsonPath] = set()

    def walk(node: Node, where: JsonPath | None, depth: int, in_flow: bool = False) -> None:
        seen[id(node)] = seen.get(id(node), 0) + 1
        if depth > schema.MAX_DEPTH:  # schema refused deeper nesting already
            return
        if isinstance(node, MappingNode):
            for key, value in node.value:
                merged = key.tag == "tag:yaml.org,2002:merge"
                own = where is not None and not merged and isinstance(key, ScalarNode)
                here = (*where, key.value) if own and where is not None else None
                walk(value, here, depth + 1, bool(node.flow_style))
        elif isinstance(node, SequenceNode):
            for index, value in enumerate(node.value):
                here = (*where, index) if where is not None else None
                walk(value, here, depth + 1, bool(node.flow_style))
        elif where is not None and isinstance(node, ScalarNode):
            found.setdefault(where, node)
            if in_flow:
                flow.add(where)

    walk(root, (), 0)
    return {
        where: Scalar(
            node.start_mark.index,
            node.end_mark.index,
            node.start_mark.line + 1,
            node.start_mark.column + 1,
            node.style or None,
            node.value,
            seen[id(node)] > 1,
            where in flow,
        )
        for where, node in found.items()
    }


def objects(source: Source) -> Iterator[tuple[int, JsonPath, dict[str, Any]]]:
    """``(document, path, object)`` for every Kubernetes object: documents, ``List`` items and
    the ``objects`` of an OpenShift ``Template``."""
    for index, document in enumerate(source.documents):
        data = document.data
        if not isinstance(data, dict):
            continue
        kind = data.get("kind")
        key = "objects" if kind == "Template" else "items"
        listed = isinstance(kind, str) and (kind.endswith("List") or kind == "Template")
        if listed and isinstance(data.get(key), list):
            for position, item in enumerate(data[key]):
                if isinstance(item, dict):
                    yield index, (key, position), item
            continue
        yield index, (), data


def written(value: str, style: str | None, as_json: bool, *, flow: bool = False) -> str:
    """``value`` written the way the value it replaces was: same quotes, plain when it can be.

    In a flow collection a plain ``name@sha256:…`` is valid YAML 1.2 but YAML 1.1 parsers
    (PyYAML, older Go libraries) refuse the ``:``, so there it is double-quoted.
    """
    if as_json or style == '"' or (flow and style != "'" and ":" in value):
        return json.dumps(value, ensure_ascii=False)
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if _PLAIN_SAFE.match(value) and value.lower() not in _RESERVED and not _numeric(value):
        return value
    return json.dumps(value, ensure_ascii=False)


def _numeric(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def splice(text: str, edits: Mapping[Scalar, str], *, as_json: bool = False) -> str:
    """``text`` with each scalar's span replaced by its new value; the rest is left as it was."""
    out: list[str] = []
    position = 0
    for scalar in sorted(edits, key=lambda s: s.start):
        if scalar.start < position:
            continue  # the same span twice: the first edit wins
        out.append(text[position : scalar.start])
        out.append(written(edits[scalar], scalar.style, as_json, flow=scalar.flow))
        position = scalar.end
    out.append(text[position:])
    return "".join(out)


def encode(source: Source, text: str) -> bytes:
    """Text back to bytes, with the byte-order mark the file had."""
    return (_BOM if source.bom else b"") + text.encode("utf-8")
