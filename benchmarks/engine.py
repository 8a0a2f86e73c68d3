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
from dataclasses import dataclass
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


# Runs the CLI and reports the streamlock process's own peak RSS at exit; os.wait4 gives the
# largest process of the whole tree, git's processes included.
_WRAPPER = (
    "import atexit, resource, sys\n"
    "atexit.register(lambda: print('streamlock-maxrss-kb', "
    "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr))\n"
    "from reconciler.cli import main\n"
    "main(sys.argv[1:])\n"
)


@dataclass(frozen=True)
class PassRun:
    seconds: float
    self_mb: float
    tree_mb: float
    code: int


def run_pass(work: Path, label: str) -> PassRun:
    """Time and peak memory of one ``streamlock reconcile`` process."""
    cmd = [sys.executable, "-c", _WRAPPER, "reconcile", "--repo", str(work), "-o", "json"]
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(f"  {label}: exit {code}\n{stderr[-2000:]}", file=sys.stderr)
    own = [line.split()[1] for line in stderr.splitlines() if line.startswith("streamlock-maxrss")]
    self_mb = int(own[-1]) / 1024 if own else float("nan")
    return PassRun(elapsed, self_mb, usage.ru_maxrss / 1024, code)


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
            cold = run_pass(repo.work, "cold")
            head = _git(repo.work, "rev-parse", "HEAD")
            noop = run_pass(repo.work, "no-op")
            noop_unchanged = _git(repo.work, "rev-parse", "HEAD") == head
            # The same repo with every imported tag scheduled (not a spec change): the no-op
            # pass now confirms each of the 1,000 distinct references with a HEAD.
            for i in range(STREAMS):
                path = repo.work / f"streams/bench/app{i:03d}.yaml"
                path.write_text(stream_yaml(i, server.host, scheduled=True))
            _git(repo.work, "commit", "--quiet", "-am", "schedule every tag")
            _git(repo.work, "push", "--quiet", "origin", "main")
            head = _git(repo.work, "rev-parse", "HEAD")
            scheduled = run_pass(repo.work, "scheduled no-op")
            scheduled_unchanged = _git(repo.work, "rev-parse", "HEAD") == head
            plan_s = plan_only(repo.work)
    verdict = "PASS" if plan_s < PLAN_SECONDS else "MISS"
    return [
        _row("engine cold pass (10,000 tags)", cold, None),
        _row("engine no-op pass", noop, noop_unchanged),
        _row("engine no-op pass, all scheduled (1,000 HEADs)", scheduled, scheduled_unchanged),
        (
            "engine planning only (10,000 tags)",
            f"{plan_s:.3f} s",
            "-",
            f"{verdict} (< {PLAN_SECONDS:.0f} s)",
        ),
    ]


def _row(label: str, run: PassRun, unchanged: bool | None) -> tuple[str, str, str, str]:
    """A table row; no-op passes are held to the targets (and must not commit)."""
    memory = f"{run.self_mb:.0f} MB streamlock, {run.tree_mb:.0f} MB largest process incl. git"
    if unchanged is None:
        return (label, f"{run.seconds:.2f} s", memory, f"exit {run.code} (no target)")
    peak = max(run.self_mb, run.tree_mb)
    ok = run.seconds < NOOP_SECONDS and peak < NOOP_MB and run.code == 0 and unchanged
    verdict = f"{'PASS' if ok else 'MISS'} (< {NOOP_SECONDS:.0f} s, < {NOOP_MB:.0f} MB"
    return (label, f"{run.seconds:.2f} s", memory, f"{verdict}, no commit: {unchanged})")


if __name__ == "__main__":
    for row in main():
        print("\t".join(row))
