"""Parsing many lock files at once, in worker processes.

A fresh clone of a large repository has hundreds of megabytes of lock YAML and no parse cache;
parsing is pure CPU work that splits by file. Workers parse the locks to the compact rows of the
lock cache (``lockfile.compact``), keyed by the hash of the bytes they read, and the pass fills
its cache with them: every lock is then read as a cache hit, checked as always. A lock a worker
could not parse is simply not sent back, so the pass parses it itself and words its problems;
a file that changed in between has another hash and is parsed again too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import marshal
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconciler import lockfile
from reconciler.errors import ValidationError

PARALLEL_BYTES = 16 * 1024 * 1024  # below this, starting workers costs more than it saves
WORKER_TIMEOUT = 600.0  # seconds; a worker that takes longer leaves its locks to the pass


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
            row = lockfile.compact_document(lockfile.parse(data, relative))
        except ValidationError:
            continue
        rows[hashlib.sha256(data).hexdigest()] = row
    return marshal.dumps(rows)


class Parsing:
    """Lock files being parsed by worker processes; :meth:`rows` waits for them.

    Each worker is ``python -m reconciler.lockread FILE``, handed its files in a JSON file (a
    pipe would hold the caller until the worker had imported everything and read it): a plain
    child process, not multiprocessing's, which would import the caller's main script again
    and could inherit a lock held by one of the daemon's threads.
    """

    def __init__(self, files: Sequence[tuple[str, str, int]], workers: int) -> None:
        buckets: list[list[tuple[str, str]]] = [[] for _ in range(workers)]
        sizes = [0] * workers
        for relative, path, size in sorted(files, key=lambda f: -f[2]):
            smallest = sizes.index(min(sizes))
            buckets[smallest].append((relative, path))
            sizes[smallest] += size
        package = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join([package, *filter(None, [os.environ.get("PYTHONPATH")])])
        env = {**os.environ, "PYTHONPATH": path}
        self._workers: list[subprocess.Popen[bytes]] = []
        self._lists: list[str] = []
        try:
            for bucket in filter(None, buckets):
                handle, listed = tempfile.mkstemp(prefix="streamlock-locks-", suffix=".json")
                self._lists.append(listed)
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    json.dump(bucket, out)
                self._workers.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "reconciler.lockread", listed],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL,
                        env=env,
                    )
                )
        except BaseException:
            self.stop()
            raise

    def rows(self) -> dict[str, Any]:
        """Content hash → compact row, for every lock the workers parsed. A worker that failed
        (killed, out of memory, too slow) only leaves its locks to the caller."""
        found: dict[str, Any] = {}
        try:
            for worker in self._workers:
                try:
                    out, _ = worker.communicate(timeout=WORKER_TIMEOUT)
                except subprocess.TimeoutExpired:
                    continue
                if worker.returncode != 0:
                    continue
                try:
                    found.update(marshal.loads(out))
                except (ValueError, EOFError, TypeError):
                    continue
        finally:
            self.stop()
        return found

    def stop(self) -> None:
        """End every worker still running, close its pipe and remove its list."""
        for worker in self._workers:
            if worker.poll() is None:
                worker.kill()
            worker.communicate()
        for listed in self._lists:
            with contextlib.suppress(OSError):
                os.unlink(listed)


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
    except OSError:
        return None  # no processes (or a worker that died at once): parse here


if __name__ == "__main__":
    sys.stdout.buffer.write(parse_rows(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))))
