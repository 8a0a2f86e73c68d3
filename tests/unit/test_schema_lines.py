"""The quick read's positions, read from a file's lines: always where the careful path has them."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import schema
from reconciler.errors import ValidationError

PLAIN = """\
# a comment before the document
---
apiVersion: image.openshift.io/v1
kind: ImageStream
metadata:
  name: app   # trailing comment
  namespace: "shop"
spec:
  lookupPolicy:
    local: true
  tags:
  - name: '1.0'
    from:
      kind: DockerImage
      name: quay.io/shop/app:1.0

  -   # an item that starts on the next line
    name: "2.0"
    annotations:
      note: |
        - name: not a tag
        spec: not a key
    from:
      kind: DockerImage
      name: quay.io/shop/app:2.0
  - from:
      kind: DockerImage
      name: quay.io/shop/app:3.0
    name: latest
"""

TAGS = PLAIN.split("  tags:\n")[1]

# Stream files the quick read accepts: what their lines say, or the careful path where they
# cannot, must be the careful path's position for every value.
SAMPLES = {
    "plain": PLAIN,
    "indented items": "  tags:\n".join(
        [PLAIN.split("  tags:\n")[0], "".join("  " + line for line in TAGS.splitlines(True))]
    ),
    "a tab after a key, an end marker": (
        "apiVersion: image.openshift.io/v1\nkind: ImageStream\nmetadata:\n  name:\tapp\n"
        "spec:\n  tags:\n  - name:\ta\n    from:\n      kind: DockerImage\n"
        "      name: x.io/a:1\n...\n# the end\n"
    ),
}
QUOTED_OVER_LINES = (
    "apiVersion: image.openshift.io/v1\nkind: ImageStream\nmetadata:\n  name: app\n"
    '  annotations:\n    note: "one\n  - name: two\n  spec: three"\n'
    "spec:\n  tags:\n  - name: a\n    from:\n      kind: DockerImage\n      name: x.io/a:1\n"
)


def _careful(text: str) -> schema.Document:
    [document] = schema.parse_documents(text.encode(), "streams/shop/app.yaml")
    return document


def _quick(text: str) -> schema.Document:
    document = schema.quick_document(
        text.encode(), "streams/shop/app.yaml", schema.IMAGESTREAM_SCHEMA
    )
    assert document is not None
    return document


@pytest.mark.parametrize("name", SAMPLES)
def test_a_quick_documents_positions_are_the_careful_paths(name: str) -> None:
    """Every value of a stream file read quickly is located where the careful path puts it."""
    text = SAMPLES[name]
    careful, quick = _careful(text), _quick(text)
    assert quick.data == careful.data
    assert {where: quick.values[where] for where in careful.values} == careful.values
    assert all(quick.position(where, key=True) == careful.keys[where] for where in careful.keys)


def test_the_lines_locate_each_tag_of_a_block_style_stream() -> None:
    """The lines of a block-style stream file say where its tags and its name are."""
    text = SAMPLES["plain"]
    careful = _careful(text)
    lines = schema._block_lines(text, careful.data)
    assert lines is not None
    wanted = [(), ("metadata", "name"), *(("spec", "tags", i) for i in range(3))]
    assert [lines.find(where) for where in wanted] == [careful.values[w] for w in wanted]


def test_the_lines_of_a_quoted_scalar_over_lines_are_not_read() -> None:
    """A quoted scalar that goes on over its next lines leaves the file to the careful path."""
    text = QUOTED_OVER_LINES
    assert schema._block_lines(text, _careful(text).data) is None
    assert schema.quick_document(text.encode(), "s.yaml", schema.IMAGESTREAM_SCHEMA) is None


# --- any block-style text ---------------------------------------------------------------------

_WORDS = ["a", "name", "x-y", "a b", "k:v", "v1.0", "q#r", "it's", 'say "hi"', "ünï", "007"]
_ODD = ["- dash", "#hash", "", " lead", "trail ", "a: b", "c #d", "@at", "null", "yes", "x\ty"]


def _scalar(r: random.Random, indent: int) -> list[str]:
    text = r.choice(_WORDS + _ODD)
    style = r.random()
    if style < 0.4 and text in _WORDS:
        return [text]
    if style < 0.55:
        return ["'" + text.replace("'", "''") + "'"]
    if style < 0.7:
        return ['"' + text.replace('"', '\\"').replace("\t", "\\t") + '"']
    pad = " " * (indent + r.randint(1, 3))
    if style < 0.8:
        return [r.choice(["|", ">-"]), pad + "- name: b", pad + "spec: [x] # y", "", pad + "end"]
    if style < 0.9:
        return ["w", pad + "continued", pad + "- more"]
    return ['"start', " " * r.randint(0, indent + 2) + "- name: fake", pad + 'end"']


def _noise(r: random.Random, out: list[str], indent: int) -> None:
    while r.random() < 0.15:
        out.append(r.choice(["", " " * r.randint(0, indent + 4) + "# c: - x"]))


def _mapping(r: random.Random, depth: int, indent: int, out: list[str], first: str = "") -> None:
    keys = {r.choice(_WORDS) for _ in range(r.randint(1, 4))}
    for number, key in enumerate(sorted(keys)):
        written = key if r.random() < 0.7 else "'" + key.replace("'", "''") + "'"
        head = (first if number == 0 and first else " " * indent) + written + ":"
        _value(r, depth, indent, out, head)
        _noise(r, out, indent)


def _sequence(r: random.Random, depth: int, indent: int, out: list[str], first: str = "") -> None:
    for number in range(r.randint(1, 4)):
        prefix = first if number == 0 and first else " " * indent
        dash = prefix + "-" + " " * r.randint(1, 3)
        kind = r.random()
        if depth <= 0 or kind < 0.3:
            lines = _scalar(r, indent)
            out += [dash + lines[0], *lines[1:]]
        elif kind < 0.7:
            _mapping(r, depth - 1, len(dash), out, first=dash)
        elif kind < 0.85:
            out.append(prefix + "-" + r.choice(["", " # alone"]))
            _mapping(r, depth - 1, indent + r.randint(1, 4), out)
        else:
            _sequence(r, depth - 1, len(dash), out, first=dash)
        _noise(r, out, indent)


def _value(r: random.Random, depth: int, indent: int, out: list[str], head: str) -> None:
    kind = r.random()
    if depth <= 0 or kind < 0.4:
        lines = _scalar(r, indent)
        out += [head + " " * r.randint(1, 3) + lines[0] + r.choice(["", " # t"]), *lines[1:]]
    elif kind < 0.7:
        out.append(head + r.choice(["", " # on key"]))
        _mapping(r, depth - 1, indent + r.randint(1, 4), out)
    elif kind < 0.95:
        out.append(head)
        _sequence(r, depth - 1, indent + r.choice([0, 0, 1, 2, 4]), out)
    else:
        out.append(head + " " + r.choice(["[]", "{}", "", "~"]))


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_the_lines_never_misplace_a_value(seed: int) -> None:
    """Wherever the lines of a block-style document say a value starts, it starts there."""
    r = random.Random(seed)
    out: list[str] = []
    _noise(r, out, 0)
    out += r.choice([[], ["---"], ["--- # a document"]])
    _mapping(r, 4, r.choice([0, 0, 1, 2]), out)
    text = "\n".join(out + r.choice([[], ["..."]])) + "\n"
    try:
        [careful] = schema.parse_documents(text.encode(), "f.yaml")
    except (ValidationError, ValueError):
        return  # not valid YAML, or not one document: never read quickly
    lines = schema._block_lines(text, careful.data)
    if lines is None:
        return
    for where, position in careful.values.items():
        assert lines.find(where) in (None, position), (where, text)
