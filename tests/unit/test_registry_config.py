"""The registry's part of streamlock.yaml: time budgets per tag and per pass."""

from __future__ import annotations

import pytest

from reconciler.config import Config, ResolveTimeouts, parse_config
from reconciler.errors import ValidationError


def test_timeouts_default() -> None:
    """Without ``timeouts`` a tag has 2 minutes and a pass 10."""
    assert parse_config(b"historyLimit: 3\n").timeouts == ResolveTimeouts(tag=120.0, pass_=600.0)
    assert Config().timeouts == ResolveTimeouts(tag=120.0, pass_=600.0)


def test_timeouts_read() -> None:
    """``timeouts: {tag, pass}`` are Go durations."""
    config = parse_config(b"timeouts: {tag: 45s, pass: 1h30m}\n")
    assert config.timeouts == ResolveTimeouts(tag=45.0, pass_=5400.0)


def test_timeouts_partial() -> None:
    """One field given keeps the other's default."""
    assert parse_config(b"timeouts: {pass: 500ms}\n").timeouts == ResolveTimeouts(pass_=0.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"timeouts: {tag: 0s}\n", "streamlock.yaml:1:17: timeouts.tag: must be longer than 0s"),
        (b"timeouts: {pass: soon}\n", "timeouts.pass"),
        (b"timeouts: {tags: 1m}\n", "tags"),
    ],
)
def test_timeouts_invalid(text: bytes, message: str) -> None:
    """A zero, malformed or unknown timeout is a located config problem."""
    with pytest.raises(ValidationError, match=message):
        parse_config(text)
