"""Reading what people write: safe YAML/JSON loading, the JSON Schemas, located problems.

Every person-written file (stream files, ``streamlock.yaml``, locks) is read here, so the limits
(size, nesting, aliases, tags, symlinks) and the ``path:line:col: where: message`` form are the same
everywhere. YAML is parsed in ruamel's round-trip mode only to learn where each value was written;
callers get plain JSON-like data plus a position index, never ruamel objects.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    NodeEvent,
)
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.resolver import Resolver

from reconciler.errors import Problem, ValidationError

IMAGESTREAM_SCHEMA = "imagestream.schema.json"
CONFIG_SCHEMA = "config.schema.json"
LOCK_SCHEMA = "lock.schema.json"

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_ALIASES = 100
MAX_VALUES = 100_000  # values in one document once aliases are expanded
MAX_FILES = 10_000  # files under one folder

# Explicit tags that change nothing about the data; any other tag is refused.
_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

JsonPath = tuple[str | int, ...]
Position = tuple[int, int]


# --- schemas ---------------------------------------------------------------------------------


def schema_dir() -> Traversable:
    """The installed package's ``reconciler/schemas``, else the source checkout's ``schemas/``."""
    packaged = resources.files("reconciler") / "schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "schemas"


@functools.cache
def load_schema(name: str) -> Mapping[str, Any]:
    """One of the shipped schemas, parsed once."""
    return json.loads((schema_dir() / name).read_text(encoding="utf-8"))


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    """``pattern`` with ECMA-262's ``$``: Python's also matches before a final newline."""
    if validator.is_type(instance, "string") and not _regex(pattern).search(instance):
        import jsonschema

        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def _regex(pattern: str) -> re.Pattern[str]:
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


@functools.cache
def _validator(name: str) -> Any:
    """jsonschema's validator, which words the problems; imported only when there are some
    (it is a third of the start-up of a pass that finds none)."""
    import jsonschema.validators

    extended = jsonschema.validators.extend(
        jsonschema.validators.Draft202012Validator, {"pattern": _ecma_pattern}
    )
    return extended(load_schema(name))


@functools.cache
def _compiled(name: str) -> Any:
    """The schema compiled to native code: a verdict in microseconds, without messages.

    jsonschema-rs reads ``pattern`` as ECMA-262 does (``$`` only at the very end), like
    ``_ecma_pattern``; ``is_valid`` answers first and jsonschema words the problems. Imported
    here: the package loads ``socket`` (for remote ``$ref``s this never uses), which the
    pure modules must not pull in at import.
    """
    import jsonschema_rs

    return jsonschema_rs.validator_for(load_schema(name))


def is_valid(data: Any, schema_name: str) -> bool:
    """Whether plain data passes a schema (data no schema can hold counts as not valid)."""
    try:
        return bool(_compiled(schema_name).is_valid(data))
    except (ValueError, TypeError, OverflowError):
        return False


def definition_pattern(schema_name: str, definition: str) -> re.Pattern[str]:
    """The compiled ``pattern`` of ``$defs/<definition>``, so code and schema never drift."""
    return _regex(load_schema(schema_name)["$defs"][definition]["pattern"])


# --- documents -------------------------------------------------------------------------------


def format_path(where: JsonPath) -> str:
    """``("spec", "tags", 1, "from")`` → ``spec.tags[1].from``."""
    text = ""
    for part in where:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML/JSON document as plain data, with where each value and key was written."""

    path: str
    data: Any
    values: Mapping[JsonPath, Position]
    keys: Mapping[JsonPath, Position]

    def position(self, where: JsonPath, *, key: bool = False) -> Position:
        """Where a value (or its key) starts; the nearest written ancestor if it has no place."""
        if key and where in self.keys:
            return self.keys[where]
        for end in range(len(where), -1, -1):
            found = self.values.get(where[:end])
            if found is not None:
                return found
        return (1, 1)

    def problem(self, where: JsonPath, message: str, *, key: bool = False) -> Problem:
        """``path:line:col: spec.tags[1].from: message``, located at ``where``."""
        line, column = self.position(where, key=key)
        prefix = f"{format_path(where)}: " if where else ""
        return Problem(self.path, line, column, prefix + message)

    def get(self, where: JsonPath) -> Any:
        value = self.data
        for part in where:
            value = value[part]
        return value


def _at(path: str, mark: Any, message: str) -> Problem:
    return Problem(path, mark.line + 1, mark.column + 1, message)


def _scan(yaml: YAML, text: str, path: str) -> None:
    """Walk the parse events once, before any node is built, and refuse what could blow up.

    An alias counts as the values it expands to, so a "billion laughs" document is refused after
    reading its events, without building anything; nesting is bounded before the recursive
    composer runs.
    """
    anchors: dict[str, int] = {}  # anchor -> values it expands to
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, values before it) per open node
    aliases = 0
    values = 0
    for event in yaml.parse(text):
        if isinstance(event, DocumentStartEvent):
            anchors.clear()
            values = 0
            continue
        if isinstance(event, CollectionEndEvent):
            anchor, before = open_nodes.pop()
            if anchor is not None:
                anchors[anchor] = values - before
            continue
        if not isinstance(event, NodeEvent):
            continue
        if isinstance(event, AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise ValidationError(
                    [_at(path, event.start_mark, f"more than {MAX_ALIASES} YAML aliases")]
                )
            if event.anchor not in anchors:
                what = "recursive" if any(a == event.anchor for a, _ in open_nodes) else "unknown"
                raise ValidationError(
                    [_at(path, event.start_mark, f"{what} YAML alias *{event.anchor}")]
                )
            values += anchors[event.anchor]
        else:
            tag = getattr(event, "tag", None)
            if tag is not None and tag not in _PLAIN_TAGS:
                raise ValidationError(
                    [_at(path, event.start_mark, f"YAML tag {tag} is not supported")]
                )
            if event.anchor is not None and (
                event.anchor in anchors or any(a == event.anchor for a, _ in open_nodes)
            ):
                raise ValidationError(
                    [_at(path, event.start_mark, f"YAML anchor &{event.anchor} defined twice")]
                )
            values += 1
            if isinstance(event, CollectionStartEvent):
                if len(open_nodes) >= MAX_DEPTH:
                    raise ValidationError(
                        [_at(path, event.start_mark, f"nested deeper than {MAX_DEPTH} levels")]
                    )
                open_nodes.append((event.anchor, values - 1))
            elif event.anchor is not None:
                anchors[event.anchor] = 1
        if values > MAX_VALUES:
            raise ValidationError(
                [_at(path, event.start_mark, f"document expands to more than {MAX_VALUES} values")]
            )


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _spaces(count: int) -> str:
    return f"{count} space{'' if count == 1 else 's'}"


def _above(lines: list[str], index: int) -> tuple[int, str] | None:
    """The nearest non-blank, non-comment line above ``lines[index]``: (number, text)."""
    for number in range(index - 1, -1, -1):
        stripped = lines[number].strip()
        if stripped and not stripped.startswith("#"):
            return number + 1, lines[number]
    return None


def _syntax_hint(problem: str, context: str, lines: list[str], index: int) -> str:
    """The parser's words (``expected <block end>, but found …``) as what a person did."""
    line = lines[index] if 0 <= index < len(lines) else ""
    above = _above(lines, index)
    if "'\\t'" in problem or "\t" in line[: _indent(line) + 1]:
        return "a tab in the indentation: YAML indents with spaces only"
    if "quoted scalar" in context:
        return "a quote opened here is never closed"
    if problem.startswith("mapping values are not allowed"):
        if above is not None and _indent(line) > _indent(above[1]) and ":" in above[1]:
            tail = above[1].rstrip().endswith(":")
            if not tail:
                return (
                    f"indented more than line {above[0]} above it ({_spaces(_indent(line))}, not "
                    f"{_indent(above[1])}): align it with the lines it belongs with"
                )
        return "an unquoted ': ' inside a value: quote the value (name: 'a: b')"
    if problem.startswith("expected <block end>") or problem.startswith("did not find expected"):
        if above is not None:
            return (
                f"the indentation does not match: {_spaces(_indent(line))} here, "
                f"{_indent(above[1])} on line {above[0]}; align it with the lines it belongs with"
            )
        return "the indentation does not match the lines it belongs with"
    if problem.startswith("could not find expected ':'"):
        return "a line without ':' in a mapping: add it, or quote a value that spans lines"
    return problem


def _syntax_problem(path: str, text: str, exc: YAMLError) -> Problem:
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        opened = exc.context and ("quoted scalar" in exc.context or "simple key" in exc.context)
        if opened and exc.context_mark is not None:
            mark = exc.context_mark  # where the quote or the key began, not where it failed
        if mark is not None:
            lines = text.splitlines()
            hint = _syntax_hint(problem, exc.context or "", lines, mark.line)
            shown = lines[mark.line].strip() if 0 <= mark.line < len(lines) else ""
            quoted = f" (line {mark.line + 1}: {shown!r})" if shown and hint != problem else ""
            return _at(path, mark, f"not valid YAML: {hint}{quoted}")
        return Problem(path, 1, 1, f"not valid YAML: {problem}")
    if isinstance(exc, ReaderError):
        before = text[: exc.position]
        line = before.count("\n") + 1
        column = exc.position - (before.rfind("\n") + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return Problem(path, line, column, f"not valid YAML: control character U+{code:04X}")
    return Problem(path, 1, 1, f"not valid YAML: {exc}")


def _decode(data: bytes, path: str, max_bytes: int = MAX_FILE_BYTES) -> str:
    if len(data) > max_bytes:
        raise ValidationError([Problem(path, 1, 1, f"larger than {max_bytes} bytes")])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ValidationError([Problem(path, line, column, "not valid UTF-8")]) from exc


def _compose(text: str, path: str) -> tuple[YAML, list[Node]]:
    """The documents' node trees, each node with its position.

    libyaml first: it is many times faster than the pure-Python parser. It implements YAML 1.1
    syntax, though, and refuses some YAML 1.2 text (``{name: quay.io/app:1.0}``); whatever it
    refuses is parsed again by ruamel's YAML 1.2 parser, which also words any syntax error.
    Scalars are resolved by YAML 1.2 rules either way.
    """
    error: YAMLError | None = None
    for yaml in (YAML(typ="safe"), YAML(typ="safe", pure=True)):
        try:
            _scan(yaml, text, path)
            return yaml, list(yaml.compose_all(text))
        except YAMLError as exc:
            error = exc
    assert error is not None
    raise ValidationError([_syntax_problem(path, text, error)]) from error


def parse_documents(data: bytes, path: str, *, max_bytes: int = MAX_FILE_BYTES) -> list[Document]:
    """Every non-empty document of a YAML (or, for ``*.json``, JSON) file.

    Raises ValidationError when the file as a whole cannot be read: too large, not UTF-8, a
    syntax error, duplicate or non-string keys, aliases or nesting over the limits, tags that
    build anything but plain data.
    """
    text = _decode(data, path, max_bytes)
    if path.endswith(".json"):
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                [Problem(path, exc.lineno, exc.colno, f"not valid JSON: {exc.msg}")]
            ) from exc
        except RecursionError as exc:
            raise ValidationError([Problem(path, 1, 1, "nested too deeply")]) from exc
    yaml, roots = _compose(text, path)
    documents = []
    builder = _Builder(path, yaml.constructor)
    for root in roots:
        if isinstance(root, ScalarNode) and root.tag == _NULL:
            continue
        values: dict[JsonPath, Position] = {(): _position(root)}
        keys: dict[JsonPath, Position] = {}
        plain = builder.build(root, (), values, keys)
        documents.append(Document(path, plain, values, keys))
    if builder.problems:
        raise ValidationError(list(dict.fromkeys(builder.problems)))
    return documents


# What the careful path's limits guard against, or where its data could differ: anchors and
# aliases, tags, non-empty flow collections, merge keys. Deep nesting needs a long prefix of
# spaces and dashes on some line. Each is a fast byte search; one regex with all of them in
# alternation scanned every position and cost more than the YAML parse it saves.
_CARE_BYTES = (b"&", b"*", b"!", b"<<")
_FLOW = re.compile(rb"[\[{](?![\]}])")
_DEEP = re.compile(rb"\n[ \t-]{32}")


def _needs_care(data: bytes) -> bool:
    return (
        any(part in data for part in _CARE_BYTES)
        or ((b"[" in data or b"{" in data) and _FLOW.search(data) is not None)
        or _DEEP.search(b"\n" + data[:40]) is not None
        or _DEEP.search(data) is not None
    )


# Plain scalars that YAML 1.2 may read as a number, a timestamp or "=" start with one of these
# characters, as a value after ": " or as the first thing on a line (a key, a sequence item).
# ruamel and ryaml read some of them differently (ruamel: 014 is 14, 2026-01-01 a date; ryaml:
# strings), so a file where ruamel's resolver reads any of them as a non-string is left to
# ruamel; booleans and nulls both read alike. Searches with a literal start: one regex with
# alternatives at its start tried every position and cost more than the parse.
# The scalar is cut at its first space, ": " or " #": numbers have no spaces, and a timestamp,
# which may (on one line or over two), starts with a date (_DATE). A "/" or "@" makes it a string
# (an image reference: most values), so those never leave the regex engine.
_WORD = r"([0-9+.=~<-][^\s/@:#]*+(?::(?!\s)[^\s/@:#]*+)*+)(?![/@])"
_AFTER_COLON = re.compile(r": [ \t]*" + _WORD)
_AFTER_COLON_TAB = re.compile(r":\t[ \t]*" + _WORD)
_LINE_START = re.compile(r"\n[ \t-]*([0-9+.=~<?])")
_PLAIN_WORD = re.compile(_WORD)
_DATE = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}")


@functools.cache
def _implicit(first: str) -> tuple[tuple[str, Any], ...]:
    """The implicit resolvers ruamel's YAML 1.2 resolver tries on a scalar starting so, each
    as (tag, its pattern's ``match``): ruamel compiles the patterns lazily, behind a proxy
    that every call went through."""
    table = Resolver.yaml_implicit_resolvers
    return tuple(
        (tag, regexp.match) for tag, regexp in (*table.get(first, ()), *table.get(None, ()))
    )


@functools.lru_cache(maxsize=1 << 16)
def plain_tag(value: str) -> str:
    """The tag ruamel's YAML 1.2 resolver gives ``value`` written plain, as text: what the
    quick loader must agree with, and what writing a lock asks to decide on quotes (a pass
    writes the same digests, times and keys many times, so answers are remembered)."""
    for tag, match in _implicit(value[:1]):
        if match(value):
            return tag
    return _STR


def _plain_strings_only(text: str) -> bool:
    """Whether every plain scalar of ``text`` that could read as a number, a timestamp or "="
    reads as a string by ruamel's YAML 1.2 rules (a ``%YAML`` directive could change the rules,
    and a complex key is rare: neither here)."""
    text = "\n" + text
    if "\n%" in text:
        return False
    words = [match.group(1) for match in _AFTER_COLON.finditer(text)]
    if ":\t" in text:
        words += [match.group(1) for match in _AFTER_COLON_TAB.finditer(text)]
    for match in _LINE_START.finditer(text):
        start = match.start(1)
        if text[start] == "?":
            return False
        if text[start - 1] == "-":
            start -= 1  # "-5": a sequence item's dash is followed by a space
        word = _PLAIN_WORD.match(text, start)
        if word is not None:
            words.append(word.group(1))
    return not any(_DATE.match(word) or plain_tag(word) != _STR for word in words)


def _load_plain(text: str) -> Any:
    """The data of a one-document YAML text with ruamel's reading.

    ryaml (Rust, serde-yaml over a libyaml port) builds the data about eight times faster than
    ruamel's C loader, whose resolver and constructor run in Python. The two scan alike; they
    resolve a few plain scalars differently, and those are left to ruamel.
    """
    if _plain_strings_only(text):
        import ryaml

        return ryaml.loads(text)
    return YAML(typ="safe", pure=False).load(text)


def quick_data(data: bytes, path: str, schema_name: str, *, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """The plain data of a one-document YAML file that passes ``schema_name``, read fast;
    None when the file needs :func:`parse_documents` (which locates every problem).

    The careful path records where each value was written and walks the parse events before
    building anything; that costs more than the parse itself and only matters for a file
    with a problem. Here a compiled loader builds the data (:func:`_load_plain`) and the
    compiled schema judges it; text with anything the careful path guards against, more lines
    than its value limit allows, or data it would read differently (an unquoted timestamp, a
    duplicate key) is left to it, so both paths give the same data for every file this one
    accepts.
    """
    if (
        len(data) > max_bytes
        or path.endswith(".json")
        or data.count(b"\n") > MAX_VALUES // 4
        or _needs_care(data)
    ):
        return None
    try:
        loaded = _load_plain(data.decode("utf-8-sig"))
    except (YAMLError, UnicodeDecodeError, ValueError, TypeError):
        return None
    if not isinstance(loaded, dict) or not is_valid(loaded, schema_name):
        return None
    return loaded


_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_CONSTRUCTED = frozenset(
    {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool", _NULL}
)


def _position(node: Node) -> Position:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    """Composed YAML nodes → dict/list/str/int/float/bool/None, recording where each value is."""

    def __init__(self, path: str, constructor: Any) -> None:
        self.path = path
        self.constructor = constructor
        self.problems: list[Problem] = []

    def _problem(self, node: Node, where: JsonPath, message: str) -> None:
        prefix = f"{format_path(where)}: " if where else ""
        self.problems.append(Problem(self.path, *_position(node), prefix + message))

    def _pairs(self, node: MappingNode, where: JsonPath) -> list[tuple[Node, Node, bool]]:
        """Key/value nodes: the mapping's own first, then those merged in with ``<<``."""
        own: list[tuple[Node, Node, bool]] = []
        merged: list[tuple[Node, Node, bool]] = []
        for key, value in node.value:
            if key.tag != _MERGE:
                own.append((key, value, True))
                continue
            for source in value.value if isinstance(value, SequenceNode) else [value]:
                if isinstance(source, MappingNode):
                    merged += [(k, v, False) for k, v, _ in self._pairs(source, where)]
                else:
                    self._problem(source, where, "<< merges a mapping or a list of mappings")
        return own + merged

    def build(
        self,
        node: Node,
        where: JsonPath,
        values: dict[JsonPath, Position],
        keys: dict[JsonPath, Position],
    ) -> Any:
        if isinstance(node, MappingNode):
            out: dict[str, Any] = {}
            for key, value, own in self._pairs(node, where):
                if not (isinstance(key, ScalarNode) and key.tag == _STR):
                    shown = key.value if isinstance(key, ScalarNode) else "of a mapping or list"
                    self._problem(key, where, f"key {shown} is not a string; quote it")
                    continue
                here = (*where, key.value)
                if key.value in out:
                    if own:
                        first = keys[here][0]
                        self._problem(
                            key, where, f"duplicate key {key.value!r} (first on line {first})"
                        )
                    continue
                keys[here] = _position(key)
                values[here] = _position(value)
                out[key.value] = self.build(value, here, values, keys)
            return out
        if isinstance(node, SequenceNode):
            items = []
            for index, value in enumerate(node.value):
                values[(*where, index)] = _position(value)
                items.append(self.build(value, (*where, index), values, keys))
            return items
        if node.tag in (_STR, _TIMESTAMP, _MERGE):
            return node.value  # a timestamp stays as written; Kubernetes fields are strings
        if node.tag in _CONSTRUCTED:
            return self.constructor.construct_object(node)
        self._problem(node, where, f"unsupported YAML value of type {node.tag}")
        return None


# --- the quick path with positions ------------------------------------------------------------
# Stream files need the data and where a few values start (each stream, each tag, the name).
# For a file that passes quick_data, every value written in block style starts where its lines
# say: a mapping's keys are the lines at its column, a sequence's items the dashes at its own.
# Reading that from the lines costs a fraction of composing nodes; anything the lines cannot
# say for sure (a quoted scalar over several lines, a tab before a value, a key that is not
# plainly written) is answered by the careful path, so positions never differ between them.

_SQ = r"'(?:[^'\n]|'')*'"
_DQ = r'"(?:[^"\\\n]|\\.)*"'
_PL = r"[^\s'\"#](?:[^'\"\n#]|(?<=\S)#)*"
_TOKEN = rf"(?:{_SQ}|{_DQ}|{_PL})"
# A line whose every quoted scalar ends on it (checked on lines with a quote only).
_CLOSED_LINE = re.compile(
    rf"[ \t]*(?:-[ \t]+)*(?:{_TOKEN}(?:[ \t]*:(?:[ \t]+{_TOKEN}?)?)?)?[ \t]*(?:(?<![^ \t])#.*)?"
)
_QUOTED = re.compile(r"^.*['\"].*$", re.MULTILINE)
# Line breaks other than \n (YAML counts them as lines too).
_OTHER_BREAKS = re.compile("[\r\x85\u2028\u2029]")
_PLAIN_KEY = re.compile(r"([^\s#'\"?\-\[\]{},&*!|>%@`:](?:[^#\n]|(?<=\S)#)*?)[ \t]*:(?=[ \t]|$)")
_QUOTED_KEY = re.compile(r"(?:'([^'\n]*)'|\"([^\"\\\n]*)\")[ \t]*:(?=[ \t]|$)")


class _Unsure(Exception):
    """The lines alone do not say where a value starts."""


def _content_line(line: str) -> bool:
    return line.strip(" \t")[:1] not in ("", "#")


class _BlockLines:
    """Where each value of a block-style YAML document starts, read from its lines.

    A place is ``(k, column)``: the ``k``-th line with content (not blank, not only a
    comment) and the column there, both 0-based, until :meth:`find` returns it.
    """

    def __init__(self, text: str, data: Any) -> None:
        self.lines = text.split("\n")
        self.data = data
        self.content: list[tuple[int, int]] = []  # (line number, column) of each content line
        self.root: tuple[int, int] | None = None
        self.children: dict[JsonPath, Any] = {}  # a mapping's {key: place}, a list's [place]
        self.unsure = False  # the lines were found not to say: the careful path answers
        self.found: dict[JsonPath, Position | None] = {}  # what find answered
        self.read = False

    def _read(self) -> None:
        """The content lines, from after a ``---`` marker to a ``...`` marker."""
        started = False
        for number, line in enumerate(self.lines):
            stripped = line.lstrip(" ")
            if not stripped or stripped[0] == "#":
                continue
            if stripped[0] == "\t":
                if not stripped.strip() or stripped.lstrip()[0] == "#":
                    continue
                raise _Unsure  # a tab before content: indentation YAML may read otherwise
            if line.startswith(("---", "...")) and line[3:4] in ("", " ", "\t"):
                if line[3:].strip(" \t")[:1] not in ("", "#"):
                    raise _Unsure  # a value on the marker's line
                if line[0] == "-" and not started and not self.content:
                    started = True
                    continue
                if any(_content_line(rest) for rest in self.lines[number + 1 :]):
                    raise _Unsure  # another document
                break
            self.content.append((number, len(line) - len(stripped)))
        self.root = (0, self.content[0][1]) if self.content else None

    def _dash(self, k: int, column: int) -> bool:
        """Whether a sequence item's ``-`` is written at ``column`` of content line ``k``."""
        line = self.lines[self.content[k][0]]
        return line.startswith("-", column) and line[column + 1 : column + 2] in ("", " ", "\t")

    def _after(self, k: int, column: int, parent: int) -> tuple[int, int] | None:
        """Where a value starts that follows an indicator ending at ``column`` of content line
        ``k``, in a collection at column ``parent``: on that line, else on the next."""
        line = self.lines[self.content[k][0]]
        rest = len(line) - len(line[column:].lstrip(" \t"))
        if rest < len(line) and line[rest] != "#":
            return k, rest
        if k + 1 < len(self.content):
            start = self.content[k + 1][1]
            if start > parent or (start == parent and self._dash(k + 1, start)):
                return k + 1, start
        return None  # an empty value: null

    def _key(self, k: int, column: int) -> tuple[str, int]:
        """The key written at ``column`` of content line ``k`` and where its ':' ends."""
        line = self.lines[self.content[k][0]]
        if line.startswith(("---", "..."), column):
            raise _Unsure
        quoted = _QUOTED_KEY.match(line, column)
        if quoted is not None:
            key = quoted.group(1) if quoted.group(1) is not None else quoted.group(2)
            return key, quoted.end()
        plain = _PLAIN_KEY.match(line, column)
        if plain is None:
            raise _Unsure
        return plain.group(1), plain.end()

    def _mapping(self, k: int, column: int) -> dict[str, tuple[int, int] | None]:
        content = self.content
        entries: dict[str, tuple[int, int] | None] = {}
        while True:
            key, end = self._key(k, column)
            if key in entries:
                raise _Unsure
            entries[key] = self._after(k, end, column)
            k += 1
            while k < len(content) and (
                content[k][1] > column or (content[k][1] == column and self._dash(k, column))
            ):
                k += 1
            if k == len(content) or content[k][1] < column:
                return entries

    def _sequence(self, k: int, column: int) -> list[tuple[int, int] | None]:
        content = self.content
        items: list[tuple[int, int] | None] = []
        while True:
            if not self._dash(k, column):
                raise _Unsure
            items.append(self._after(k, column + 1, column))
            k += 1
            while k < len(content) and content[k][1] > column:
                k += 1
            if k == len(content) or content[k][1] < column:
                return items

    def _children(self, here: JsonPath, place: tuple[int, int], data: Any) -> Any:
        """Where each entry of the collection at ``here`` starts, read once (checked against
        the data: the same keys, as many items)."""
        known = self.children.get(here)
        if known is None:
            self.children[here] = _Unsure  # until read: a collection the lines do not say
            if isinstance(data, dict):
                known = self._mapping(*place)
                if len(known) != len(data) or any(key not in data for key in known):
                    raise _Unsure
            else:
                known = self._sequence(*place)
                if len(known) != len(data):
                    raise _Unsure
            self.children[here] = known
        elif known is _Unsure:
            raise _Unsure
        return known

    def find(self, where: JsonPath) -> Position | None:
        """Where the value at ``where`` starts (1-based), or None when the lines do not say
        (or there is no such value)."""
        found = self.found.get(where, False)
        if found is False:
            found = self.found[where] = None if self.unsure else self._find(where)
        return found  # type: ignore[return-value]

    def _find(self, where: JsonPath) -> Position | None:
        try:
            if not self.read:
                self.read = True
                self.unsure = True  # until the lines are read
                self._read()
                self.unsure = False
            place = self.root
            data = self.data
            for end, part in enumerate(where):
                if place is None:
                    return None
                place = self._children(where[:end], place, data)[part]
                data = data[part]
        except (_Unsure, KeyError, IndexError, TypeError):
            return None
        if place is None:
            return None
        return self.content[place[0]][0] + 1, place[1] + 1


def _block_lines(text: str, data: Any) -> _BlockLines | None:
    """The lines of a document's text that quick_data read as ``data``, when they can tell
    where values start: no line break but LF (YAML counts CR and others too), and no quoted scalar
    that goes on over the next line (its lines could look like keys or items)."""
    if _OTHER_BREAKS.search(text):
        return None
    if ("'" in text or '"' in text) and any(
        _CLOSED_LINE.fullmatch(line) is None for line in _QUOTED.findall(text)
    ):
        return None
    return _BlockLines(text, data)


def _exists(data: Any, where: JsonPath) -> bool:
    for part in where:
        if isinstance(data, dict):
            if not isinstance(part, str) or part not in data:
                return False
        elif not (isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)):
            return False
        data = data[part]
    return True


class _Careful:
    """The careful path's document of the same file, parsed the first time it is asked for."""

    def __init__(self, data: bytes, path: str, max_bytes: int) -> None:
        self.source = (data, path, max_bytes)
        self.document: Document | None = None

    def get(self) -> Document:
        if self.document is None:
            data, path, max_bytes = self.source
            try:
                self.document = parse_documents(data, path, max_bytes=max_bytes)[0]
            except (ValidationError, IndexError):  # not for a file quick_data accepts
                self.document = Document(path, None, {}, {})
        return self.document


class _QuickValues(Mapping[JsonPath, Position]):
    """``Document.values`` of a quick document: from the lines, else from the careful path."""

    def __init__(self, lines: _BlockLines, careful: _Careful) -> None:
        self.lines = lines
        self.careful = careful

    def __contains__(self, where: object) -> bool:
        return isinstance(where, tuple) and _exists(self.lines.data, where)

    def __getitem__(self, where: JsonPath) -> Position:
        found = self.get(where)
        if found is None:
            raise KeyError(where)
        return found

    def get(self, where: JsonPath, default: Any = None) -> Any:
        found = self.lines.find(where)
        if found is not None:
            return found
        if not _exists(self.lines.data, where):
            return default
        return self.careful.get().values.get(where, default)

    def __iter__(self) -> Iterator[JsonPath]:
        return iter(self.careful.get().values)

    def __len__(self) -> int:
        return len(self.careful.get().values)


class _CarefulKeys(Mapping[JsonPath, Position]):
    """``Document.keys`` of a quick document: only problems ask, so the careful path answers."""

    def __init__(self, careful: _Careful) -> None:
        self.careful = careful

    def __getitem__(self, where: JsonPath) -> Position:
        return self.careful.get().keys[where]

    def __iter__(self) -> Iterator[JsonPath]:
        return iter(self.careful.get().keys)

    def __len__(self) -> int:
        return len(self.careful.get().keys)


def quick_document(
    data: bytes, path: str, schema_name: str, *, max_bytes: int = MAX_FILE_BYTES
) -> Document | None:
    """The one document of a YAML file that passes ``schema_name``, read fast; None when the
    file needs :func:`parse_documents`.

    The data is :func:`quick_data`'s; positions are read from the lines where they say for
    sure, and otherwise (and for keys, which only problems ask about) taken from the careful
    path when first asked for, so the document answers exactly as the careful one would.
    """
    plain = quick_data(data, path, schema_name, max_bytes=max_bytes)
    if plain is None:
        return None
    lines = _block_lines(data.decode("utf-8-sig"), plain)
    if lines is None:
        return None
    careful = _Careful(data, path, max_bytes)
    return Document(path, plain, _QuickValues(lines, careful), _CarefulKeys(careful))


# --- schema checks ---------------------------------------------------------------------------

_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}
_TITLED = frozenset(
    {
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minProperties",
        "maxProperties",
    }
)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return f"number {value!r}"


def _messages(error: Any) -> Iterator[tuple[JsonPath, bool, str]]:
    """Plain messages for one jsonschema error: (where, point at the key?, message)."""
    where: JsonPath = tuple(error.absolute_path)
    kind, value, instance = error.validator, error.validator_value, error.instance
    if "propertyNames" in error.absolute_schema_path:
        # Reported against the mapping, with the key as instance: point at the key.
        yield (*where, instance), True, f"key {_phrase(error)}"
    elif kind == "additionalProperties" and isinstance(instance, dict):
        known = list(error.schema.get("properties", {}))
        for key in instance:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                yield (*where, key), True, f"unknown field {key!r}{hint}"
    elif kind == "dependentRequired" and isinstance(instance, dict):
        for field, needs in value.items():
            missing = [need for need in needs if field in instance and need not in instance]
            for need in missing:
                yield where, False, f"{field} needs {need}"
    else:
        yield where, False, _phrase(error)


def _phrase(error: Any) -> str:
    """One value's problem in plain words; jsonschema's own message where it is plain enough."""
    kind, value, instance, schema = (
        error.validator,
        error.validator_value,
        error.instance,
        error.schema,
    )
    if kind == "enum":
        return f"{_show(instance)} is not one of {', '.join(map(str, value))}"
    if kind == "const":
        return f"expected {value!r}, got {_show(instance)}"
    if kind == "type":
        wanted = [value] if isinstance(value, str) else list(value)
        words = " or ".join(_TYPE_WORDS.get(w, w) for w in wanted)
        hint = "; quote it" if "string" in wanted and isinstance(instance, int | float) else ""
        return f"expected {words}, got {_show(instance)}{hint}"
    if kind in _TITLED and "title" in schema:
        what = "" if isinstance(instance, dict | list) else f"{_show(instance)} is "
        tail = f" ({schema['description']})" if "description" in schema else ""
        return f"{what}not a valid {schema['title']}{tail}"
    return error.message


def check(document: Document, schema_name: str) -> list[tuple[JsonPath, Problem]]:
    """Every schema error of a document, sorted, each with the data path it is about."""
    if is_valid(document.data, schema_name):
        return []
    found: dict[tuple[JsonPath, str], Problem] = {}
    for error in _validator(schema_name).iter_errors(document.data):
        for where, key, message in _messages(error):
            found.setdefault((where, message), document.problem(where, message, key=key))
    return sorted(((where, problem) for (where, _), problem in found.items()), key=lambda i: i[1])


# --- reading repository files ----------------------------------------------------------------


def repo_relative(root: Path, path: Path) -> str:
    """``path`` as written in messages: relative to the repository when inside it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _real(path: Path) -> Path:
    """Where ``path`` leads once every symlink is followed; a link loop stays unresolved.

    ``Path.resolve`` raises RuntimeError on a loop (Python 3.11); ``realpath`` stops, and the
    caller then finds no regular file or directory there.
    """
    return Path(os.path.realpath(path))


def read_repo_file(root: Path, rel: str, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """Bytes of a repository file; refuses links out of the repository, non-files, huge files."""
    path = root / rel
    if not _plain_file(root, rel):
        real = _real(path)
        if not real.is_relative_to(_real(root)):
            raise ValidationError([Problem(rel, 1, 1, "symlink points outside the repository")])
        if not real.is_file():
            raise ValidationError([Problem(rel, 1, 1, "not a regular file")])
        path = real
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ValidationError([Problem(rel, 1, 1, f"cannot read: {exc.strerror}")]) from exc
    if len(data) > max_bytes:
        raise ValidationError([Problem(rel, 1, 1, f"larger than {max_bytes} bytes")])
    return data


def _plain_file(root: Path, rel: str) -> bool:
    """Whether ``rel`` is a regular file reached from ``root`` through no symlink and no ``..``:
    then it lies inside the repository, wherever the repository itself is, and resolving the
    whole path (a pass reads thousands of files) would only confirm it."""
    parts = rel.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return False
    path = str(root)
    for part in parts:
        path = f"{path}/{part}"
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return False
        if stat.S_ISLNK(mode):
            return False
    return stat.S_ISREG(mode)


def repo_files(
    root: Path, folder: str, suffixes: tuple[str, ...]
) -> tuple[list[str], list[Problem]]:
    """Repository-relative paths of the files under ``folder`` ending in ``suffixes``, sorted.

    Hidden entries (``.name``) are skipped. Symlinks are followed only while they stay inside the
    repository; each directory is visited once, so link loops end.
    """
    real_root = _real(root)
    top = root / folder
    if not top.exists():
        return [], []
    if not _real(top).is_relative_to(real_root):
        return [], [Problem(folder, 1, 1, "symlink points outside the repository")]
    if not top.is_dir():
        return [], [Problem(folder, 1, 1, "not a directory")]
    files: list[str] = []
    problems: list[Problem] = []
    # (directory, its path relative to the repository, where it really is)
    pending = [(top, repo_relative(root, top), _real(top))]
    seen = {pending[0][2]}
    while pending:
        directory, at, real_directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.name.startswith("."):
                    continue
                rel = f"{at}/{entry.name}"
                if entry.is_symlink():
                    real = _real(Path(entry.path))
                    if not real.is_relative_to(real_root):
                        problems.append(Problem(rel, 1, 1, "symlink points outside the repository"))
                        continue
                    is_dir = real.is_dir()  # False for a link loop, which is then read as a file
                elif entry.is_dir(follow_symlinks=False):
                    # A plain entry of a directory is where that directory really is.
                    real, is_dir = real_directory / entry.name, True
                else:
                    real, is_dir = real_directory, False
                if is_dir:
                    if real not in seen:
                        seen.add(real)
                        pending.append((Path(entry.path), rel, real))
                elif entry.name.endswith(suffixes):
                    files.append(rel)
                if len(files) + len(seen) > MAX_FILES:
                    problems.append(Problem(folder, 1, 1, f"more than {MAX_FILES} entries"))
                    return sorted(files), problems
    return sorted(files), problems
    return sorted(files), problems
