"""Golden consumer rewrites: tests/cases/consumers/<case>/input/* → expected/*, byte for byte.

Set STREAMLOCK_REGENERATE=1 to write the expected files from the current code (then review the
diff: it is the test).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.consumers.scan import rewrite, scan
from reconciler.consumers.slots import Pin

CASES = Path(__file__).resolve().parents[1] / "cases" / "consumers"
PINS = {
    key: Pin(value["reference"], value["digest"], value["tag"])
    for key, value in json.loads((CASES / "pins.json").read_text()).items()
}
NAMES = sorted(p.name for p in CASES.iterdir() if p.is_dir())


def _files(case: str) -> list[Path]:
    return sorted(p for p in (CASES / case / "input").iterdir() if p.is_file())


@pytest.mark.parametrize("case", NAMES)
def test_case_rewrites_to_the_expected_bytes(case):
    """Each case's files rewrite to exactly the expected bytes."""
    for path in _files(case):
        result = rewrite(f"deploy/{case}/{path.name}", path.read_bytes(), PINS, "shop")
        assert result.problems == ()
        expected = CASES / case / "expected" / path.name
        if os.environ.get("STREAMLOCK_REGENERATE"):
            expected.parent.mkdir(exist_ok=True)
            expected.write_bytes(result.data)
        assert result.data == expected.read_bytes()


def _tail(line: str, column: int, value: str) -> str:
    """What follows a value written at ``column`` (its closing quote and comment included)."""
    start = column - 1
    quote = line[start] if line[start] in "\"'" else ""
    return line[start + len(quote) + len(value) + len(quote) :]


@pytest.mark.parametrize("case", NAMES)
def test_case_changes_only_the_followed_values(case):
    """Only the lines of changed values differ, and on them only the value itself."""
    for path in _files(case):
        before = path.read_bytes().decode("utf-8").splitlines(keepends=True)
        after = (CASES / case / "expected" / path.name).read_bytes().decode("utf-8")
        after_lines = after.splitlines(keepends=True)
        found = scan(f"deploy/{case}/{path.name}", path.read_bytes(), "shop")
        changed = {
            s.line: s for s in found.slots if s.value is not None and s.value != s.wanted(PINS)
        }
        added = [s for s in found.slots if s.value is None]
        assert len(after_lines) == len(before) + len(added)
        for slot in added:  # inserted right below the marked entry's name line
            assert f"{slot.where[-1]}: {slot.wanted(PINS)}" in after
        after_lines = [
            line
            for line in after_lines
            if not any(line.strip() == f"{s.where[-1]}: {s.wanted(PINS)}" for s in added)
        ]
        for number, (old, new) in enumerate(zip(before, after_lines, strict=True), start=1):
            if number not in changed:
                assert old == new, f"line {number} changed"
                continue
            slot = changed[number]
            assert old[: slot.column - 1] == new[: slot.column - 1]
            wanted = slot.wanted(PINS)
            assert wanted is not None and slot.value is not None
            assert _tail(old, slot.column, slot.value) == _tail(new, slot.column, wanted)


@pytest.mark.parametrize("case", NAMES)
def test_case_rewrite_is_stable(case):
    """A rewritten file already holds its pins: rewriting it again changes nothing."""
    for path in _files(case):
        expected = (CASES / case / "expected" / path.name).read_bytes()
        again = rewrite(f"deploy/{case}/{path.name}", expected, PINS, "shop")
        assert again.data == expected and not again.tags
