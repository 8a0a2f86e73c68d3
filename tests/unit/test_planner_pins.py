"""The planner's shortcut for a kept pin's pull spec gives what parsing the reference gives."""

from __future__ import annotations

import pytest

from reconciler.planner import _pinned_as_written
from reconciler.reference import ImageReference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "name",
    [
        "python",
        "python:3.12",
        "library/python:3",
        "quay.io/org/app:1.0",
        "127.0.0.1:5000/shop/app:v1",
        "localhost:5000/app",
        "[::1]:5000/app:tag",
        f"registry.example.com:443/a/b/c@{DIGEST}",
        f"registry.example.com/a:1@{DIGEST}",
    ],
)
def test_pinned_pull_spec_matches_the_parsed_reference(name):
    """A source's pinned pull spec is its repository as written, then the digest."""
    assert _pinned_as_written(name, DIGEST) == ImageReference.parse(name).with_digest(DIGEST)
