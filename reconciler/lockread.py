"""Parsing many lock files at once, in worker processes.

A fresh clone of a large repository has hundreds of megabytes of lock YAML and no parse cache;
parsing is pure CPU work that splits by file. Workers parse the locks to the compact rows of the
lock cache (``lockfile.compact``), keyed by the hash of the bytes they read, and the pass fills
its cache with them: every lock is then read as a cache hit, checked as always. A lock a worker
could not parse is simply not sent back, so the pass parses it itself and words its problems;
a file that changed in between has another hash and is parsed again too.
"""

from __future__ import annotations

import hashlib
import marshal
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from reconciler import lockfile
from reconciler.errors import ValidationError

PARALLEL_BYTES = 16 * 1024 * 1024  # below this, starting workers costs more than it saves
CHUNKS_PER_WORKER = 4  # smaller pieces so workers finish together


def parse_rows(files: Sequence[tuple[str, str]]) -> bytes:
    """In a worker: ``(relative, path)`` pairs → marshalled ``{content hash: compact row}`` of
    the locks that pass their checks. Symlinks and other non-regular files are skipped; the
    pass refuses them itself."""
    rows: dict[str, Any] = {}
    for relative, path in files:
        file = Path(path)
        try:
            if file.is_symlink() or not file.is_file():
                continue
            with file.open("rb") as handle:
                data = handle.read(lockfile.MAX_LOCK_BYTES + 1)
        except OSError:
            continue
        if len(data) > lockfile.MAX_LOCK_BYTES:
            continue
        try:
            lock = lockfile.from_document(
                lockfile.parse(data, relative), relative, lockfile.header_stream_file(data)
            )
        except ValidationError:
            continue
        rows[hashlib.sha256(data).hexdigest()] = lockfile.compact(lock)
    return marshal.dumps(rows)


class Parsing:
    """Lock files being parsed by worker processes; :meth:`rows` waits for them."""

    def __init__(self, files: Sequence[tuple[str, str, int]], workers: int) -> None:
        # spawn, not fork: the pass may run beside threads (the daemon's), and a forked child
        # could inherit a lock one of them holds.
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        self._futures: list[Future[bytes]] = []
        buckets: list[list[tuple[str, str]]] = [[] for _ in range(workers * CHUNKS_PER_WORKER)]
        sizes = [0] * len(buckets)
        for relative, path, size in sorted(files, key=lambda f: -f[2]):
            smallest = sizes.index(min(sizes))
            buckets[smallest].append((relative, path))
            sizes[smallest] += size
        try:
            self._futures = [self._pool.submit(parse_rows, b) for b in buckets if b]
        except BaseException:
            self._pool.shutdown(cancel_futures=True)
            raise

    def rows(self) -> dict[str, Any]:
        """Content hash → compact row, for every lock the workers parsed. A worker that failed
        (killed, out of memory) only leaves its locks to the caller."""
        found: dict[str, Any] = {}
        try:
            for future in self._futures:
                try:
                    found.update(marshal.loads(future.result()))
                except Exception:  # the caller parses whatever is missing
                    continue
        finally:
            self._pool.shutdown(cancel_futures=True)
        return found


def cpus() -> int:
    """The CPUs this process may run on (a container's limit, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def start(
    files: Sequence[tuple[str, str, int]],
    min_bytes: int = PARALLEL_BYTES,
    workers: int | None = None,
) -> Parsing | None:
    """Start parsing ``(relative, path, size)`` files in workers, if there are enough bytes to
    be worth it and more than one CPU; None when the caller should parse them itself."""
    workers = workers or min(cpus(), 4)
    if workers < 2 or not files or sum(f[2] for f in files) < min_bytes:
        return None
    try:
        return Parsing(files, workers)
    except (OSError, RuntimeError):
        return None  # no processes to be had: parse here
