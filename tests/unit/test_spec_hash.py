"""Spec hashes: the fast form is byte for byte the canonical JSON the hash was always taken of."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from reconciler.imagestream import TagReference, TagSpec, spec_json

TEXT = st.text(max_size=40)


@given(
    kind=st.sampled_from(["DockerImage", "ImageStreamTag", "ImageStreamImage"]),
    name=TEXT,
    source_namespace=st.none() | TEXT.filter(bool),
    namespace=TEXT,
    reference=st.booleans(),
    mode=TEXT,
    reimport=st.none() | TEXT,
)
def test_spec_hash_is_the_hash_of_the_canonical_json(
    kind, name, source_namespace, namespace, reference, mode, reimport
):
    """Any names, quotes, control and non-ASCII characters hash as json.dumps writes them."""
    notes = {} if reimport is None else {"streamlock.dev/reimport": reimport}
    spec = TagSpec(
        name="t",
        source=TagReference(kind, name, source_namespace),
        reference=reference,
        import_mode=mode,
        annotations=notes,
    )
    data = {
        "kind": kind,
        "name": name,
        "namespace": source_namespace or namespace,
        "reference": reference,
        "importMode": mode,
        "reimport": reimport,
    }
    expected = hashlib.sha256(spec_json(data).encode()).hexdigest()[:16]
    assert spec.spec_hash(namespace) == expected


def test_a_tag_policy_is_part_of_the_hash():
    """Choice annotations change the hash; the order they are written in does not."""
    plain = TagSpec("t", TagReference("DockerImage", "quay.io/app"))
    one = TagSpec(
        "t",
        plain.source,
        annotations={"streamlock.dev/policy": "semver", "streamlock.dev/tag-filter": "^1"},
    )
    other = TagSpec(
        "t",
        plain.source,
        annotations={"streamlock.dev/tag-filter": "^1", "streamlock.dev/policy": "semver"},
    )
    assert one.spec_hash("ns") == other.spec_hash("ns") != plain.spec_hash("ns")


def test_a_spec_asked_for_another_namespace_hashes_for_that_namespace():
    """The remembered hash of a tag is only reused for the namespace it was taken for."""
    source = TagReference("ImageStreamTag", "app:latest")
    spec = TagSpec(name="t", source=source)
    first, second = spec.spec_hash("shop"), spec.spec_hash("bank")
    assert first == TagSpec(name="t", source=source).spec_hash("shop")
    assert second == TagSpec(name="t", source=source).spec_hash("bank")
    assert first != second
