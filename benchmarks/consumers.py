"""Consumers benchmark: 1,000 consumer files, 10,000 tags, a pass that moves 100 of them.

Two twin repositories hold the same 500 streams × 20 tags (``reference: true`` digest pins, so no
registry is involved and the numbers are the engine's own); one also holds 1,000 Deployments in
``deploy/``, each following one tag through ``image.openshift.io/triggers``. A commit then moves
100 tags, which 100 of the Deployments follow. Measured with real ``streamlock reconcile``
processes and a real Git repository:

- the pass moving the 100 tags, with and without the consumers (median of three runs, each from
  the same starting commit): the difference is what rewriting 100 consumers costs;
- the no-op pass right after it, and whether it parsed any consumer file again (it must not: scans
  are cached by Git blob id).

Targets (the consumers issue): < 1 s more than the pass without consumers; no re-parse.
"""

from __future__ import annotations

import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STREAMS = 500
TAGS_PER_STREAM = 20
CONSUMERS = 1000
MOVED = 100
ROUNDS = 3
EXTRA_SECONDS = 1.0
HOST = "registry.bench.example"


def _git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True, timeout=600)
    return result.stdout.decode()


def digest(n: int, generation: int = 0) -> str:
    return "sha256:" + hashlib.sha256(f"{n}/{generation}".encode()).hexdigest()


def stream_yaml(index: int, generation: int = 0) -> str:
    lines = [
        "apiVersion: image.openshift.io/v1",
        "kind: ImageStream",
        f"metadata:\n  name: app{index:03d}\n  namespace: bench",
        "spec:\n  tags:",
    ]
    for t in range(TAGS_PER_STREAM):
        moved = generation if t == 0 else 0
        lines.append(
            f"  - name: v{t}\n    reference: true\n    from:\n      kind: DockerImage\n"
            f"      name: {HOST}/bench/img@{digest(index * TAGS_PER_STREAM + t, moved)}"
        )
    return "\n".join(lines) + "\n"


def consumer_yaml(index: int) -> str:
    """Deployment ``index`` follows bench/app<index % 500>:v<index // 500>; the first 100 follow
    v0 of streams 0-99, the tags the measured pass moves."""
    stream, tag = index % STREAMS, index // STREAMS
    return (
        "# a consumer of the benchmark\n"
        "apiVersion: apps/v1\nkind: Deployment\n"
        f"metadata:\n  name: app{index:04d}\n  namespace: bench\n  annotations:\n"
        "    image.openshift.io/triggers: >-\n"
        f'      [{{"from":{{"kind":"ImageStreamTag","name":"app{stream:03d}:v{tag}"}},'
        '"fieldPath":"spec.template.spec.containers[?(@.name==\\"app\\")].image"}]\n'
        "spec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n"
        f"      - name: app\n        image: {HOST}/bench/img:initial   # pinned by streamlock\n"
        "        ports:\n        - containerPort: 8080\n"
        "      - name: proxy\n        image: docker.io/library/nginx:1.27\n"
    )


def reconcile(work: Path) -> float:
    cmd = [sys.executable, "-m", "reconciler", "reconcile", "--no-push", "--repo", str(work)]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"reconcile exited {result.returncode}: {result.stderr[-2000:]}")
    return elapsed


def prepare(root: Path, consumers: bool) -> tuple[Path, str]:
    """A repository after its cold pass plus the commit moving 100 tags; (work, start commit)."""
    from tests.fixtures.gitremote import make_config_repo

    files = {f"streams/bench/app{i:03d}.yaml": stream_yaml(i) for i in range(STREAMS)}
    if consumers:
        files |= {f"deploy/bench/app{i:04d}.yaml": consumer_yaml(i) for i in range(CONSUMERS)}
    repo = make_config_repo(root, files)
    reconcile(repo.work)  # cold: every lock (and consumer) written
    for i in range(MOVED):
        (repo.work / f"streams/bench/app{i:03d}.yaml").write_text(stream_yaml(i, generation=1))
    _git(repo.work, "commit", "--quiet", "-am", f"move {MOVED} tags")
    return repo.work, _git(repo.work, "rev-parse", "HEAD").strip()


def consumer_logic(work: Path, start: str) -> float:
    """Seconds (median of three) of the consumer work alone, in process: find, read and look
    up the 1,000 files in the scan cache, rewrite the 100 and join them to the commits."""
    from datetime import UTC, datetime

    from reconciler import planner
    from reconciler.config import load_config
    from reconciler.consumers import controller, reader
    from reconciler.imagestream import load_streams
    from reconciler.reconcile import load_locks

    head = _git(work, "rev-parse", "HEAD").strip()
    _git(work, "reset", "--quiet", "--hard", start)
    config = load_config(work)
    locks = load_locks(work)
    plan = planner.plan(
        load_streams(work, config).streams, locks, {}, {}, config, datetime.now(UTC)
    )
    runs = []
    for _ in range(ROUNDS):
        cache = reader.ScanCache(work / ".git/streamlock/consumers.json", config.default_namespace)
        started = time.perf_counter()
        consumers, _ = reader.load(work, config, cache)
        following = controller.follow(plan, consumers, locks, config.default_namespace)
        runs.append(time.perf_counter() - started)
        assert len(following.rewritten) == MOVED, following.rewritten
    _git(work, "reset", "--quiet", "--hard", head)
    return statistics.median(runs)


def main() -> list[tuple[str, str, str, str]]:
    from reconciler.config import load_config
    from reconciler.consumers.reader import ScanCache, load

    with tempfile.TemporaryDirectory(prefix="streamlock-bench-consumers-") as tmp:
        root = Path(tmp)
        print(
            f"consumers: {STREAMS * TAGS_PER_STREAM} tags, {CONSUMERS} consumers …", file=sys.stderr
        )
        with_work, with_start = prepare(root / "with", consumers=True)
        bare_work, bare_start = prepare(root / "without", consumers=False)
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(ROUNDS):
            for has, work, start in ((True, with_work, with_start), (False, bare_work, bare_start)):
                _git(work, "reset", "--quiet", "--hard", start)
                times[has].append(reconcile(work))
        logic = consumer_logic(with_work, with_start)
        rewritten = _git(with_work, "diff", "--name-only", f"{with_start}..HEAD", "--", "deploy")
        commits = int(_git(with_work, "rev-list", "--count", f"{with_start}..HEAD"))
        head = _git(with_work, "rev-parse", "HEAD")
        # What the no-op pass will parse: the files whose blob id the cache does not know.
        config = load_config(with_work)
        cache = ScanCache(with_work / ".git/streamlock/consumers.json", config.default_namespace)
        consumers, _ = load(with_work, config, cache)
        reparsed = cache.parsed
        noop = reconcile(with_work)
        unchanged = _git(with_work, "rev-parse", "HEAD") == head
    with_s, without_s = statistics.median(times[True]), statistics.median(times[False])
    extra = with_s - without_s
    count = len(rewritten.split())
    ok = extra < EXTRA_SECONDS and count == MOVED
    return [
        (
            f"consumers pass moving {MOVED} tags, {CONSUMERS} consumers",
            f"{with_s:.2f} s",
            f"{without_s:.2f} s without consumers; {count} rewritten in {commits} commits",
            f"{'PASS' if ok else 'MISS'} (+{extra:.2f} s < {EXTRA_SECONDS:.0f} s)",
        ),
        (
            "consumers: reading 1,000 + rewriting 100 in process",
            f"{logic:.2f} s",
            "the rest of the difference is git writing one more blob per commit",
            "-",
        ),
        (
            "consumers no-op pass",
            f"{noop:.2f} s",
            f"{len(consumers)} consumer files, {reparsed} parsed again",
            f"{'PASS' if reparsed == 0 and unchanged else 'MISS'} "
            f"(0 parsed, no commit: {unchanged})",
        ),
    ]


if __name__ == "__main__":
    for row in main():
        print("\t".join(row))
