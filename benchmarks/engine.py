"""Engine benchmark: 500 streams × 20 tags (10,000 tags, half aliases), 2,000 earlier commits.

Measures, against a real local registry and a real Git repository:
- the cold pass (every DockerImage tag resolved, every lock written and committed),
- the no-op pass right after it (nothing new: no commit),
- planning alone (no I/O) of all 10,000 tags.

Each pass runs ``streamlock reconcile`` in its own process so its peak RSS is its own.
Targets (the engine issue): no-op pass < 5 s and < 200 MB; planning < 1 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

STREAMS = 500
TAGS_PER_STREAM = 20
REFERENCES = 1000  # distinct repo:tag images the DockerImage tags point at
EARLIER_COMMITS = 2000

NOOP_SECONDS = 5.0
NOOP_MB = 200.0
PLAN_SECONDS = 1.0


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, input=stdin, capture_output=True, check=True, timeout=600
    )
    return result.stdout.decode()


def stream_yaml(index: int, host: str, scheduled: bool = False) -> str:
    lines = [
        "apiVersion: image.openshift.io/v1",
        "kind: ImageStream",
        f"metadata:\n  name: app{index:03d}\n  namespace: bench",
        "spec:\n  tags:",
    ]
    half = TAGS_PER_STREAM // 2
    for t in range(half):
        ref = (index * half + t) % REFERENCES
        lines.append(
            f"  - name: v{t}\n    from:\n      kind: DockerImage\n"
            f"      name: {host}/bench/img:t{ref:04d}"
        )
        if scheduled:
            lines.append("    importPolicy:\n      scheduled: true")
    for t in range(half):
        lines.append(f"  - name: alias{t}\n    from:\n      kind: ImageStreamTag\n      name: v{t}")
    return "\n".join(lines) + "\n"


def earlier_history(count: int) -> bytes:
    """A fast-import stream of ``count`` reconciler-style commits with trailers."""
    out = []
    stamp = 1_700_000_000
    for n in range(count):
        stream, tag = n % STREAMS, n % (TAGS_PER_STREAM // 2)
        digest = f"sha256:{n:064x}"
        message = (
            f"bench/app{stream:03d}: v{tag} {n:07x} → {n + 1:07x}\n\n"
            f"v{tag}: DockerImage earlier\n\n"
            f"Streamlock-Tag: bench/app{stream:03d}:v{tag}\n"
            f"Streamlock-From: earlier.example/bench/img:t{n % REFERENCES:04d}\n"
            f"Streamlock-Previous: none\n"
            f"Streamlock-Image: {digest}\n"
        ).encode()
        content = f"{n}\n".encode()
        out.append(b"commit refs/heads/main\n")
        out.append(f"committer bench <bench@example.com> {stamp + n} +0000\n".encode())
        out.append(f"data {len(message)}\n".encode() + message)
        if n == 0:
            out.append(b"from refs/heads/main^0\n")
        out.append(f"M 100644 inline history.txt\ndata {len(content)}\n".encode() + content)
    return b"".join(out)


def run_pass(work: Path, label: str) -> tuple[float, float, int]:
    """(seconds, peak MB, exit code) of one ``streamlock reconcile`` process."""
    cmd = [sys.executable, "-m", "reconciler", "reconcile", "--repo", str(work), "-o", "json"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(f"  {label}: exit {code}\n{stderr[-2000:]}", file=sys.stderr)
    return elapsed, usage.ru_maxrss / 1024, code


def plan_only(work: Path) -> float:
    """Seconds for planner.plan over every tag, with the registry answers already known."""
    from reconciler import planner
    from reconciler.config import load_config
    from reconciler.gitrepo import GitRepo, TrailerIndex
    from reconciler.imagestream import load_streams
    from reconciler.reconcile import load_locks

    config = load_config(work)
    streams = load_streams(work, config).streams
    locks = load_locks(work)
    bases = TrailerIndex(GitRepo.open(work)).bases()
    now = datetime.now(UTC)
    requests = planner.import_requests(streams, locks, config, now, forced={"bench/app000"})
    observations = {r.key: r.known for r in requests if r.known is not None}
    start = time.perf_counter()
    result = planner.plan(streams, locks, bases, observations, config, now)
    elapsed = time.perf_counter() - start
    assert len(result.statuses) == STREAMS * TAGS_PER_STREAM, len(result.statuses)
    return elapsed


def main() -> list[tuple[str, str, str, str]]:
    from tests.fixtures.gitremote import make_config_repo
    from tests.fixtures.images import Seeder
    from tests.fixtures.registry_server import RegistryServer

    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="streamlock-bench-") as tmp:
        root = Path(tmp)
        with RegistryServer(root / "registry") as server:
            print(f"engine: seeding {REFERENCES} images …", file=sys.stderr)
            with Seeder.for_server(server) as seeder:
                seeder.push_tags_bulk("bench/img", [f"t{i:04d}" for i in range(REFERENCES)])
            files = {
                f"streams/bench/app{i:03d}.yaml": stream_yaml(i, server.host)
                for i in range(STREAMS)
            }
            repo = make_config_repo(root / "repo", files)
            _git(repo.work, "fast-import", "--quiet", stdin=earlier_history(EARLIER_COMMITS))
            _git(repo.work, "reset", "--quiet", "--hard", "main")
            _git(repo.work, "push", "--quiet", "origin", "main")
            commits = int(_git(repo.work, "rev-list", "--count", "HEAD"))
            print(
                f"engine: {STREAMS * TAGS_PER_STREAM} tags, {commits} commits; cold pass …",
                file=sys.stderr,
            )
            cold_s, cold_mb, cold_code = run_pass(repo.work, "cold")
            noop_head = _git(repo.work, "rev-parse", "HEAD")
            noop_s, noop_mb, noop_code = run_pass(repo.work, "no-op")
            unchanged = _git(repo.work, "rev-parse", "HEAD") == noop_head
            # The same repo with every imported tag scheduled (not a spec change): the no-op
            # pass now confirms each of the 1,000 distinct references with a HEAD.
            for i in range(STREAMS):
                path = repo.work / f"streams/bench/app{i:03d}.yaml"
                path.write_text(stream_yaml(i, server.host, scheduled=True))
            _git(repo.work, "commit", "--quiet", "-am", "schedule every tag")
            _git(repo.work, "push", "--quiet", "origin", "main")
            head = _git(repo.work, "rev-parse", "HEAD")
            sched_s, sched_mb, sched_code = run_pass(repo.work, "scheduled no-op")
            sched_unchanged = _git(repo.work, "rev-parse", "HEAD") == head
            plan_s = plan_only(repo.work)
    rows.append(
        (
            "engine cold pass (10,000 tags)",
            f"{cold_s:.2f} s",
            f"{cold_mb:.0f} MB",
            "exit 0" if cold_code == 0 else f"exit {cold_code}",
        )
    )
    verdict = (
        "PASS"
        if noop_s < NOOP_SECONDS and noop_mb < NOOP_MB and noop_code == 0 and unchanged
        else "MISS"
    )
    rows.append(
        (
            "engine no-op pass",
            f"{noop_s:.2f} s",
            f"{noop_mb:.0f} MB",
            f"{verdict} (< {NOOP_SECONDS:.0f} s, < {NOOP_MB:.0f} MB, no commit: {unchanged})",
        )
    )
    ok = sched_s < NOOP_SECONDS and sched_mb < NOOP_MB and sched_code == 0 and sched_unchanged
    rows.append(
        (
            "engine no-op pass, all scheduled (1,000 HEADs)",
            f"{sched_s:.2f} s",
            f"{sched_mb:.0f} MB",
            f"{'PASS' if ok else 'MISS'} (< {NOOP_SECONDS:.0f} s, < {NOOP_MB:.0f} MB, "
            f"no commit: {sched_unchanged})",
        )
    )
    verdict = "PASS" if plan_s < PLAN_SECONDS else "MISS"
    rows.append(
        (
            "engine planning only (10,000 tags)",
            f"{plan_s:.3f} s",
            "-",
            f"{verdict} (< {PLAN_SECONDS:.0f} s)",
        )
    )
    return rows


if __name__ == "__main__":
    for row in main():
        print("\t".join(row))
