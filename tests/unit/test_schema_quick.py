"""The quick read of a valid file: the same data as the careful path, or no answer at all."""

from __future__ import annotations

import pytest

from reconciler import lockfile, schema
from reconciler.errors import ValidationError
from tests.unit.test_lockfile import sample

LOCK = "locks/shop/app.lock.yaml"


def _careful(data: bytes) -> object:
    [document] = schema.parse_documents(data, LOCK, max_bytes=lockfile.MAX_LOCK_BYTES)
    return document.data


def test_a_written_lock_is_read_quickly_with_the_careful_paths_data():
    """A lock as the reconciler writes it takes the quick path and reads as the careful one."""
    data = lockfile.dumps(sample("streams/shop/app.yaml"))
    quick = schema.quick_data(data, LOCK, schema.LOCK_SCHEMA)
    assert quick is not None
    assert quick == _careful(data)


HEAD = b"apiVersion: streamlock/v1\nkind: ImageStreamLock\nmetadata:\n  name: app\n"


def _lock(entry: bytes, meta: bytes = b"  namespace: shop\n") -> bytes:
    return HEAD + meta + b"tags:\n  a:\n" + entry


ENTRY = (
    b"    from:\n      kind: DockerImage\n      name: quay.io/shop/app:1.0\n"
    b"    image: sha256:" + b"ab" * 32 + b"\n"
    b"    dockerImageReference: quay.io/shop/app@sha256:" + b"ab" * 32 + b"\n"
    b"    specHash: 0123abcd\n"
)
NEEDS_CARE = {
    "anchor and alias": ENTRY + b"    created: &t '2026-11-20T10:00:00Z'\n    importedAt: *t\n",
    "unquoted timestamp": ENTRY + b"    created: 2026-11-20T10:00:00Z\n",
    "merge key": ENTRY.replace(b"    from:\n", b"    <<: {}\n    from:\n"),
    "flow mapping": ENTRY.replace(
        b"    from:\n      kind: DockerImage\n      name: quay.io/shop/app:1.0\n",
        b"    from: {kind: DockerImage, name: 'quay.io/shop/app:1.0'}\n",
    ),
    "explicit tag": ENTRY + b"    created: !!str 2026\n",
    "deep compact nesting": ENTRY + b"    labels:\n" + b"    " + b"- " * 40 + b"x\n",
}


@pytest.mark.parametrize("case", sorted(NEEDS_CARE))
def test_text_the_limits_guard_takes_the_careful_path(case: str):
    """Anchors, aliases, tags, flow and merge syntax and deep nesting are never read quickly."""
    assert schema.quick_data(_lock(NEEDS_CARE[case]), LOCK, schema.LOCK_SCHEMA) is None


REFUSED = {
    "duplicate key": (ENTRY + b"    specHash: 0123abce\n", "duplicate key 'specHash'"),
    "number for a string": (ENTRY.replace(b"0123abcd", b"01234567"), "expected a string"),
    "digest pattern": (ENTRY.replace(b"image: sha256:ab", b"image: sha256:xb"), "image"),
    "second document": (ENTRY + b"---\nkind: x\n", "exactly one YAML document"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_lock_the_careful_path_refuses_is_never_read_quickly(case: str):
    """What the careful path refuses gets no quick answer, and keeps its located problem."""
    text, words = REFUSED[case]
    data = _lock(text)
    assert schema.quick_data(data, LOCK, schema.LOCK_SCHEMA) is None
    with pytest.raises(ValidationError) as caught:
        lockfile.parse(data, LOCK)
    problem = caught.value.problems[0]
    assert problem.path == LOCK and words in problem.message


def test_the_compiled_schema_agrees_on_a_newline_before_the_end():
    """``$`` matches only at the very end in both validators, as ECMA-262 says."""
    data = _careful(lockfile.dumps(sample()))
    assert schema.is_valid(data, schema.LOCK_SCHEMA)
    data["tags"]["a"]["specHash"] += "\n"  # type: ignore[index]
    assert not schema.is_valid(data, schema.LOCK_SCHEMA)
    assert schema.check(schema.Document(LOCK, data, {}, {}), schema.LOCK_SCHEMA)
