"""YAML syntax errors say what a person did (indentation, a tab, a colon), at the exact line."""

from __future__ import annotations

import pytest

from reconciler.errors import ValidationError
from reconciler.schema import parse_documents


def error(text: str) -> str:
    with pytest.raises(ValidationError) as caught:
        parse_documents(text.encode(), "streams/shop/app.yaml")
    [problem] = caught.value.problems
    return str(problem)


def test_a_line_indented_too_far_says_so():
    """A key indented one space more than its siblings: 'indented more than line 2'."""
    found = error("metadata:\n  name: app\n   namespace: shop\n")
    assert found.startswith("streams/shop/app.yaml:3:")
    assert "indented more than line 2" in found and "mapping values" not in found


def test_a_dedented_line_names_the_indentation_not_block_end():
    """'expected <block end>' becomes the indentation of this line and the one above."""
    found = error("spec:\n  tags:\n  - name: a\n    from:\n      kind: X\n     name: y\n")
    assert found.startswith("streams/shop/app.yaml:6:")
    assert "indentation does not match: 5 spaces here, 6 on line 5" in found
    assert "<block" not in found


def test_a_tab_is_named():
    """A tab in the indentation: 'YAML indents with spaces only'."""
    found = error("metadata:\n\tname: app\n")
    assert found.startswith("streams/shop/app.yaml:2:1:") and "spaces only" in found


def test_an_unquoted_colon_in_a_value_is_named():
    """name: app: x: 'quote the value'."""
    found = error("metadata:\n  name: app: x\n")
    assert found.startswith("streams/shop/app.yaml:2:") and "unquoted ': '" in found


def test_an_unclosed_quote_points_at_where_it_opened():
    """An unclosed quote is located where it opened, not at the end of the file."""
    found = error("metadata:\n  name: 'app\nspec: {}\n")
    assert found.startswith("streams/shop/app.yaml:2:") and "never closed" in found


def test_a_key_without_colon_points_at_its_own_line():
    """A line 'c' without ':' among keys is located on that line."""
    found = error("a:\n  b: 1\n  c\n  d: 2\n")
    assert found.startswith("streams/shop/app.yaml:3:") and "without ':'" in found
