"""Locks parsed by worker processes: the same locks and problems as parsing them in the pass."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler import lockfile, lockread
from reconciler.reconcile import LockCache, load_locks, read_locks
from tests.unit.test_lockfile import sample, write_lock


def _checkout(root: Path) -> None:
    """Twelve good locks, one failing its schema, one naming another stream, one symlink."""
    for n in range(12):
        lock = replace(sample(f"streams/shop/app{n}.yaml"), name=f"app{n}")
        write_lock(root, lockfile.lock_path("shop", f"app{n}"), lockfile.dumps(lock))
    good = lockfile.dumps(replace(sample(), name="bad"))
    write_lock(root, "locks/shop/bad.lock.yaml", good.replace(b"image: sha256:", b"image: md5:"))
    write_lock(root, "locks/shop/other.lock.yaml", good)
    (root / "locks/shop/link.lock.yaml").symlink_to(root / "locks/shop/app0.lock.yaml")


def test_workers_read_the_same_locks_and_problems_as_the_pass(tmp_path: Path):
    """Good locks, broken ones and a symlink come out alike with and without workers."""
    _checkout(tmp_path)
    alone = load_locks(tmp_path, LockCache(None))
    cache = LockCache(None)
    together = read_locks(tmp_path, cache, min_bytes=0, workers=2)()
    assert dict(together) == dict(alone) and len(alone) == 12
    assert together.broken == alone.broken and len(alone.broken) == 3
    assert [lock.stream_file for lock in together.values()] == [
        lock.stream_file for lock in alone.values()
    ]


def test_the_locks_are_parsed_by_the_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """With workers, the pass itself parses none of the good locks: their rows fill its cache,
    and the workers' file lists are gone afterwards."""
    _checkout(tmp_path)
    lists = tmp_path / "tmp"
    lists.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(lists))
    cache = LockCache(None)
    parses: list[str] = []
    original = lockfile.parse
    monkeypatch.setattr(
        lockfile, "parse", lambda data, path: parses.append(path) or original(data, path)
    )
    locks = read_locks(tmp_path, cache, min_bytes=0, workers=2)()
    assert len(locks) == 12 and cache.dirty
    assert sorted(parses) == ["locks/shop/bad.lock.yaml", "locks/shop/other.lock.yaml"]
    assert list(lists.iterdir()) == []


def test_a_small_or_cached_checkout_starts_no_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Below the size threshold, or with anything cached, the pass parses alone."""
    _checkout(tmp_path)
    started: list[int] = []
    monkeypatch.setattr(lockread, "Parsing", lambda files, workers: started.append(workers))
    read_locks(tmp_path, LockCache(None))()
    warm = LockCache(None)
    load_locks(tmp_path, warm)
    read_locks(tmp_path, warm, min_bytes=0, workers=2)()
    assert started == []
    read_locks(tmp_path, LockCache(None), min_bytes=0, workers=2)
    assert started == [2]


def test_a_failing_worker_leaves_its_locks_to_the_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Workers that die (here: an interpreter that exits at once) cost time, not locks."""
    _checkout(tmp_path)
    dying = tmp_path / "dying-python"
    dying.write_text("#!/bin/sh\nexit 3\n")
    dying.chmod(0o755)
    monkeypatch.setattr(lockread.sys, "executable", str(dying))
    alone = load_locks(tmp_path, LockCache(None))
    cache = LockCache(None)
    together = read_locks(tmp_path, cache, min_bytes=0, workers=2)()
    assert dict(together) == dict(alone) and together.broken == alone.broken
    assert cache.parsed == 12  # every good lock parsed by the pass itself


def test_cancelled_reading_ends_its_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A pass that fails before it needs the locks leaves no worker running and no list."""
    _checkout(tmp_path)
    lists = tmp_path / "tmp"
    lists.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(lists))
    pending = read_locks(tmp_path, LockCache(None), min_bytes=0, workers=2)
    assert pending.parsing is not None
    workers = list(pending.parsing._workers)
    pending.cancel()
    assert all(worker.returncode is not None for worker in workers)
    assert list(lists.iterdir()) == []
