"""The lock cache: compact records that read back as the locks they were made from."""

from __future__ import annotations

import marshal
from dataclasses import replace
from pathlib import Path

from reconciler.lockfile import (
    CachedHistory,
    compact,
    compact_document,
    dumps,
    from_compact,
    from_document,
    loads,
    parse,
)
from reconciler.policy.gates import Waiting
from reconciler.reconcile import LockCache, load_locks
from tests.unit.test_lockfile import LOCK, preserve_original, sample, write_lock


def test_a_compact_lock_reads_back_whole():
    """Every field survives: platforms, index digest, labels, history, tag and waiting."""
    waiting = Waiting("sha256:" + "cd" * 32, "2026-11-22T00:00:00Z", "1.1")
    entry = replace(preserve_original(), tag="1.0", waiting=waiting)
    lock = replace(sample("streams/shop/app.yaml"), tags={"a": entry, **sample().tags})
    assert from_compact(compact(lock), "streams/shop/app.yaml") == lock


def test_a_lock_from_the_cache_file_is_the_parsed_lock(tmp_path: Path):
    """Written by one pass and read by the next, the lock equals a fresh parse of its bytes."""
    data = dumps(sample("streams/shop/app.yaml"))
    write_lock(tmp_path, LOCK, data)
    first = LockCache(tmp_path / "locks.bin")
    load_locks(tmp_path, first)
    first.save()
    second = LockCache(tmp_path / "locks.bin")
    lock = load_locks(tmp_path, second)[("shop", "app")]
    assert lock == loads(data, LOCK) and lock.stream_file == "streams/shop/app.yaml"
    assert not second.dirty


def test_a_cache_of_another_format_is_ignored(tmp_path: Path):
    """A cache another Python (or version of the cache) wrote only means a slower start."""
    path = tmp_path / "locks.bin"
    path.write_bytes(marshal.dumps(("streamlock-locks/4/another python", {"k": ("x",)})))
    assert LockCache(path).entries == {}


def test_shared_strings_are_one_object(tmp_path: Path):
    """A tag's current image and its newest history item hold one string, also after a reload."""
    write_lock(tmp_path, LOCK, dumps(sample()))
    cache = LockCache(tmp_path / "locks.bin")
    lock = load_locks(tmp_path, cache)[("shop", "app")]
    assert lock.tags["a"].image is lock.tags["a"].history[0].image
    cache.save()
    again = load_locks(tmp_path, LockCache(tmp_path / "locks.bin"))[("shop", "app")]
    assert again.tags["a"].image is again.tags["b"].history[0].image


def test_a_cache_other_code_wrote_is_ignored(tmp_path: Path, monkeypatch):
    """After an upgrade (or a checkout of another revision) locks are parsed again, so a
    change in how they are read can never meet a stale parse, even without a VERSION bump."""
    from reconciler import reconcile

    write_lock(tmp_path, LOCK, dumps(sample()))
    first = LockCache(tmp_path / "locks.bin")
    load_locks(tmp_path, first)
    first.save()
    assert LockCache(tmp_path / "locks.bin").entries
    monkeypatch.setattr(reconcile, "code_identity", lambda: "other code")
    assert LockCache(tmp_path / "locks.bin").entries == {}


def test_a_cached_history_is_the_tuple_it_stands_for():
    """A history read from the cache compares, hashes, slices and prints as its tuple."""
    history = sample().tags["a"].history
    assert history, "the sample lock needs a history"
    cached = from_compact(compact(sample())).tags["a"].history
    assert isinstance(cached, CachedHistory)
    assert cached == history and history == cached
    assert cached != history + history and (*history, *history) != cached
    assert hash(cached) == hash(history)
    assert cached[0:] == history[0:] and cached[0] == history[0] and len(cached) == len(history)
    assert repr(cached) == repr(history)


def test_a_cache_written_from_cached_locks_reads_back_whole(tmp_path: Path):
    """Locks that came from the cache are kept again with their histories unread and intact."""
    data = dumps(sample("streams/shop/app.yaml"))
    write_lock(tmp_path, LOCK, data)
    for _ in range(3):
        cache = LockCache(tmp_path / "locks.bin")
        lock = load_locks(tmp_path, cache)[("shop", "app")]
        cache.dirty = True  # keep it again, from the locks as read
        cache.save()
    assert lock == loads(data, LOCK)
    assert isinstance(lock.tags["a"].history, CachedHistory)


def test_a_documents_compact_row_is_the_compact_lock():
    """Rows made straight from parsed data equal rows made from the built lock, every field."""
    waiting = Waiting("sha256:" + "cd" * 32, "2026-11-22T00:00:00Z", "1.1")
    entry = replace(preserve_original(), tag="1.0", waiting=waiting)
    lock = replace(sample("streams/shop/app.yaml"), tags={"a": entry, **sample().tags})
    doc = parse(dumps(lock), LOCK)
    assert compact_document(doc) == compact(from_document(doc, LOCK)) == compact(lock)
