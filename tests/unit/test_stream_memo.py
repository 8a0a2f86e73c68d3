"""Stream files parsed once per content: the memo gives what a fresh parse gives."""

from __future__ import annotations

from pathlib import Path

from reconciler.config import Config
from reconciler.imagestream import parse_streams
from reconciler.reconcile import StreamCache

GOOD = b"""apiVersion: image.openshift.io/v1
kind: ImageStream
metadata:
  name: app
  annotations: {team: shop}
spec:
  lookupPolicy: {local: true}
  tags:
  - name: prod
    from: {kind: ImageStreamTag, name: test}
    annotations: {streamlock.dev/hold: qa}
  - name: test
    from: {kind: DockerImage, name: quay.io/shop/app:1.0}
    reference: false
    importPolicy: {scheduled: true, importMode: PreserveOriginal}
    referencePolicy: {type: Local}
"""
TWICE = GOOD.replace(b"name: app\n", b"name: app\n  namespace: shop\n")
BROKEN = GOOD.replace(b"kind: DockerImage", b"kind: Nonsense")
FILES = {
    "streams/shop/app.yaml": GOOD,
    "streams/shop/copy.yaml": TWICE,
    "streams/shop/broken.yaml": BROKEN.replace(b"name: app\n", b"name: other\n"),
}


def test_a_remembered_parse_is_the_parse():
    """Streams (lines included) and located problems are the same from the memo."""
    memo: dict[str, object] = {}
    first = parse_streams(FILES, Config(), memo=memo)
    assert len(memo) == len(FILES)
    again = parse_streams(FILES, Config(), memo=memo)
    plain = parse_streams(FILES, Config())
    assert again == first == plain
    assert [s.line for s in again.streams] == [s.line for s in plain.streams]
    assert [t.line for s in again.streams for t in s.tags] == [
        t.line for s in plain.streams for t in s.tags
    ]
    assert any("already defined" in p.message for p in again.problems)
    assert [str(p) for p in again.problems] == [str(p) for p in plain.problems]


def test_an_edited_file_is_parsed_again():
    """The memo is keyed by content: a changed file never gets its old parse."""
    memo: dict[str, object] = {}
    parse_streams(FILES, Config(), memo=memo)
    edited = {**FILES, "streams/shop/app.yaml": GOOD.replace(b"1.0", b"2.0")}
    result = parse_streams(edited, Config(), memo=memo)
    [app] = [s for s in result.streams if s.name == "app"]
    assert app.tags[1].source.name == "quay.io/shop/app:2.0"


def test_the_default_namespace_is_part_of_the_key():
    """A stream without a namespace outside streams/<ns>/ follows the config's default."""
    files = {"streams/app.yaml": GOOD}
    memo: dict[str, object] = {}
    parse_streams(files, Config(default_namespace="one"), memo=memo)
    result = parse_streams(files, Config(default_namespace="two"), memo=memo)
    assert [s.namespace for s in result.streams] == ["two"]


def test_the_cache_file_serves_the_next_pass(tmp_path: Path):
    """Saved and read back, every file is found and nothing is parsed again."""
    path = tmp_path / "streams.json"
    cache = StreamCache(path)
    first = parse_streams(FILES, Config(), memo=cache)
    cache.save()
    again = StreamCache(path)
    assert parse_streams(FILES, Config(), memo=again) == first
    assert not again.dirty and again.used == set(again.entries) and len(again.entries) == 3


def test_a_stream_cache_other_code_wrote_is_ignored(tmp_path: Path, monkeypatch):
    """Parses kept by other code (another revision or release) are parsed again."""
    from reconciler import reconcile

    path = tmp_path / "streams.json"
    cache = StreamCache(path)
    parse_streams(FILES, Config(), memo=cache)
    cache.save()
    assert StreamCache(path).entries
    monkeypatch.setattr(reconcile, "code_identity", lambda: "other code")
    assert StreamCache(path).entries == {}


def test_a_remembered_tag_hashes_as_a_parsed_one():
    """The spec hash a remembered tag carries is the one its parse computes, in any namespace."""
    memo: dict[str, object] = {}
    parse_streams(FILES, Config(), memo=memo)
    again = parse_streams(FILES, Config(), memo=memo)
    plain = parse_streams(FILES, Config())
    for namespace in (None, "elsewhere"):
        hashes = [[t.spec_hash(namespace or s.namespace) for t in s.tags] for s in again.streams]
        assert hashes == [
            [t.spec_hash(namespace or s.namespace) for t in s.tags] for s in plain.streams
        ]
