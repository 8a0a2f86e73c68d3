"""The fast loader reads every text it accepts exactly as ruamel does, or leaves it to ruamel."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler import lockfile, schema
from tests.unit.test_lockfile import sample

# Plain scalars each reader may resolve its own way, and their quoted forms.
TRICKY = [
    "014",
    "08",
    "0o14",
    "0x1F",
    "0b101",
    "1_000",
    "1e3",
    "1E3",
    "-1",
    "+1",
    ".5",
    "5.",
    "1.0",
    "-.inf",
    ".inf",
    ".NaN",
    ".nan",
    "2026-01-01",
    "2026-01-01T10:00:00Z",
    "2026-1-1 10:00:00",
    "2026-1-1\n  10:00:00",
    "12:30",
    "1:2:3",
    "=",
    "~",
    "null",
    "Null",
    "NULL",
    "true",
    "True",
    "FALSE",
    "yes",
    "no",
    "on",
    "off",
    "y",
    "-x",
    "39be839e9dfd372b",
    "12345678e1234567",
    "sha256:" + "ab" * 32,
    "127.0.0.1:5000/shop/app@sha256:" + "cd" * 32,
    "quay.io/app:1.0",
    "a b",
    "a#b",
    "v1",
]
KEYS = ["a", "b", "v1", "1.0", "014", "2026-01-01", "-1", "x y", "latest"]


def _scalar(text: str, style: str) -> str:
    if style == "single":
        return "'" + text.replace("'", "''") + "'"
    if style == "double":
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


scalars = st.builds(
    _scalar, st.sampled_from(TRICKY), st.sampled_from(["plain", "single", "double"])
)
keys = st.builds(_scalar, st.sampled_from(KEYS), st.sampled_from(["plain", "plain", "single"]))


@st.composite
def documents(draw: Any, depth: int = 0) -> str:
    """A block-style YAML mapping (with nested mappings and sequences) as text."""
    lines: list[str] = []
    indent = "  " * depth
    for key in draw(st.lists(keys, min_size=1, max_size=4, unique=True)):
        kind = draw(
            st.sampled_from(["scalar", "scalar", "map", "seq"] if depth < 2 else ["scalar"])
        )
        if kind == "scalar":
            lines.append(f"{indent}{key}: {draw(scalars)}")
        elif kind == "map":
            lines.append(f"{indent}{key}:")
            lines.append(draw(documents(depth + 1)))
        else:
            lines.append(f"{indent}{key}:")
            for item in draw(st.lists(scalars, min_size=1, max_size=3)):
                lines.append(f"{indent}- {item}")
    return "\n".join(lines)


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def _ruamel(text: str) -> Any:
    return YAML(typ="safe", pure=False).load(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_the_fast_loader_reads_as_ruamel_or_not_at_all(text: str):
    """Whatever the fast loader returns is ruamel's data, types included."""
    try:
        expected = _ruamel(text + "\n")
    except Exception:  # ruamel refuses: the fast loader must refuse too
        expected = None
        refused = True
    else:
        refused = False
    try:
        got = schema._load_plain(text + "\n")
    except Exception:  # refusing is allowed: quick_data asks the careful path
        return
    assert not refused, text
    assert _same(got, expected), text


@pytest.mark.parametrize(
    "text",
    [
        "a: 014\n",
        "a: 2026-01-01\n",
        "created: 2026-01-01T10:00:00Z\n",
        "created: 2026-1-1 10:00:00\n",
        "created: 2026-1-1\n  10:00:00\n",
        "a: 1_000\n",
        "a: =\n",
        "014: x\n",
        "a:\n- 08\n",
        "a:\n  -5: x\n",
        "a:\t014\n",
        "? a\n: b\n",
        "%YAML 1.1\n---\na: b\n",
    ],
)
def test_a_plain_scalar_ruamel_reads_as_no_string_leaves_the_text_to_ruamel(text: str):
    """Numbers, timestamps and "=" written plain, complex keys and directives are ruamel's."""
    assert not schema._plain_strings_only(text)


@pytest.mark.parametrize(
    "text",
    [
        "a: '014'\n",
        'a: "2026-01-01"\n',
        "specHash: 39be839e9dfd372b\n",
        "name: 127.0.0.1:5000/shop/app:1.0\n",
        "a: true\nb: null\n",
        "'1.0': x\n",
    ],
)
def test_strings_quoted_or_plain_that_read_alike_take_the_fast_loader(text: str):
    """Quoted values, references, hex hashes, booleans and nulls read alike in both."""
    assert schema._plain_strings_only(text)


def test_a_written_lock_takes_the_fast_loader():
    """The locks the reconciler writes are read by the fast loader."""
    data = lockfile.dumps(sample("streams/shop/app.yaml"))
    assert schema._plain_strings_only(data.decode())
