"""Engine benchmark: 500 streams × 20 tags (10,000 tags, half aliases), 2,000 earlier commits.

Measures, against a real local registry serving 1,000 distinct images (each its own config blob:
a cold reference costs a manifest GET and a config GET) and a real Git repository:
- the cold pass (every DockerImage tag resolved, every lock written and committed), once;
- the no-op pass (nothing new: no commit), in a fresh clone (no caches in ``.git/streamlock``)
  and warm (the clone that ran the cold pass), alternating rounds, medians;
- the no-op pass with every imported tag scheduled (1,000 HEADs), warm;
- planning alone (no I/O) of all 10,000 tags with every rule running: every tag due, every
  reference at a new digest (history grows, followers follow), once with every stream forced
  (``import-image``: the revert rule is overridden) and once due by schedule (the revert rule
  consulted for every tag, and respected for one reference in ten).

Each pass runs ``streamlock reconcile`` in its own process so its peak RSS is its own.
Targets (the engine issue): no-op pass < 5 s and < 200 MB; planning < 1 s.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import _rounds

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from reconciler.config import Config
    from reconciler.image import Observation
    from reconciler.imagestream import ImageStream
    from reconciler.lockfile import StreamKey, StreamLock

STREAMS = 500
TAGS_PER_STREAM = 20
REFERENCES = 1000  # distinct repo:tag images the DockerImage tags point at
EARLIER_COMMITS = 2000
NOOP_ROUNDS = 3

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
RSS_WRAPPER = (
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
    cmd = [sys.executable, "-c", RSS_WRAPPER, "reconcile", "--repo", str(work), "-o", "json"]
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


@dataclass(frozen=True)
class Planned:
    seconds: float
    actions: dict[str, int]  # tag statuses by action and reason, to show every rule ran


@dataclass(frozen=True)
class PlanInputs:
    """Everything ``planner.plan`` takes, read once; only the call itself is timed."""

    streams: Sequence[ImageStream]
    locks: Mapping[StreamKey, StreamLock]
    bases: Mapping[tuple[str, str], str]
    observations: Mapping[tuple[str, str, str], Observation]
    config: Config
    now: datetime
    forced: frozenset[str]


def plan_inputs(work: Path, *, forced: bool) -> PlanInputs:
    """Every tag due, each reference observed at a new digest (history grows, followers follow).

    ``forced``: every stream forced, as ``import-image`` does (the revert rule is overridden).
    Otherwise every tag is due by schedule (none checked yet) and the revert rule is consulted
    for each; for one reference in ten the trailers say a person moved its tags away from the
    new digest, so the rule keeps the lock.
    """
    from reconciler import planner
    from reconciler.config import load_config
    from reconciler.gitrepo import GitRepo, TrailerIndex
    from reconciler.imagestream import DOCKER_IMAGE, load_streams
    from reconciler.reconcile import load_locks

    config = load_config(work)
    streams = load_streams(work, config).streams
    locks = load_locks(work)
    bases = dict(TrailerIndex(GitRepo.open(work)).bases())
    now = datetime.now(UTC)
    every = frozenset(f"{s.namespace}/{s.name}" for s in streams) if forced else frozenset()
    requests = planner.import_requests(streams, locks, config, now, forced=every)
    observations = {}
    by_reference = {}
    for n, request in enumerate(requests):
        if request.known is None:
            raise RuntimeError(f"{request.reference}: no pin after the cold pass")
        observations[request.key] = replace(request.known, digest=f"sha256:{n + 1:064x}")
        by_reference[request.reference] = observations[request.key].digest
    if not forced:
        for stream in streams:
            for spec in stream.tags:
                reference = spec.source.name
                if spec.source.kind != DOCKER_IMAGE or int(reference.rsplit(":t", 1)[1]) % 10:
                    continue
                key = planner.tag_key(stream.namespace, stream.name, spec.name)
                identity = spec.source.identity(stream.namespace, stream.name)
                bases[(key, identity)] = by_reference[reference]
    return PlanInputs(streams, locks, bases, observations, config, now, every)


def time_plan(inputs: PlanInputs) -> Planned:
    """Seconds for one ``planner.plan`` call over every tag, and what it concluded.

    As in a pass (``reconcile._attempts``): what was loaded is frozen out of the collector's
    reach before planning, and planning runs with the collector on.
    """
    from reconciler import planner
    from reconciler.reconcile import built_in_bulk, release_bulk

    gc.collect()
    gc.freeze()
    try:
        start = time.perf_counter()
        with built_in_bulk(pause=False):
            result = planner.plan(
                inputs.streams,
                inputs.locks,
                inputs.bases,
                inputs.observations,
                inputs.config,
                inputs.now,
                forced=inputs.forced,
            )
        elapsed = time.perf_counter() - start
    finally:
        release_bulk()
    if len(result.statuses) != STREAMS * TAGS_PER_STREAM:
        raise RuntimeError(f"planned {len(result.statuses)} tags")
    actions: dict[str, int] = {}
    for item in result.statuses:
        name = f"{item.action}/{item.reason}"
        actions[name] = actions.get(name, 0) + 1
    return Planned(elapsed, actions)


def main() -> list[tuple[str, str, str, str]]:
    from benchmarks import _seed
    from tests.fixtures.gitremote import make_config_repo
    from tests.fixtures.registry_server import RegistryServer

    with tempfile.TemporaryDirectory(prefix="streamlock-bench-") as tmp:
        root = Path(tmp)
        with RegistryServer(root / "registry") as server:
            _rounds.log(f"engine: seeding {REFERENCES} distinct images")
            names = [("bench/img", f"t{i:04d}") for i in range(REFERENCES)]
            _seed.seed(server.storage_dir, server.url, names)
            files = {
                f"streams/bench/app{i:03d}.yaml": stream_yaml(i, server.host)
                for i in range(STREAMS)
            }
            repo = make_config_repo(root / "repo", files)
            _git(repo.work, "fast-import", "--quiet", stdin=earlier_history(EARLIER_COMMITS))
            _git(repo.work, "reset", "--quiet", "--hard", "main")
            _git(repo.work, "push", "--quiet", "origin", "main")
            commits = int(_git(repo.work, "rev-list", "--count", "HEAD"))
            _rounds.log(f"engine: {STREAMS * TAGS_PER_STREAM} tags, {commits} commits; cold pass")
            cold = run_pass(repo.work, "cold")
            head = _git(repo.work, "rev-parse", "HEAD")
            clones = iter(range(NOOP_ROUNDS))

            def fresh() -> tuple[PassRun, bool]:
                clone = repo.clone(root / f"fresh{next(clones)}")
                run = run_pass(clone, "no-op, fresh clone")
                return run, _git(clone, "rev-parse", "HEAD") == head

            def warm() -> tuple[PassRun, bool]:
                run = run_pass(repo.work, "no-op, warm")
                return run, _git(repo.work, "rev-parse", "HEAD") == head

            noop = _rounds.alternate(
                [("no-op fresh clone", fresh), ("no-op warm", warm)],
                NOOP_ROUNDS,
                show=lambda name, value: f"{name} {value[0].seconds:.2f} s",
            )
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
            forced = plan_inputs(repo.work, forced=True)
            due = plan_inputs(repo.work, forced=False)
            planned = _rounds.alternate(
                [("plan forced", lambda: time_plan(forced)), ("plan due", lambda: time_plan(due))],
                NOOP_ROUNDS,
                show=lambda name, value: f"{name} {value.seconds:.3f} s",
            )
    return [
        _row("engine cold pass, 10,000 tags", cold, None, "one run, 1,000 distinct images"),
        _noop_row("engine no-op pass, fresh clone", noop["no-op fresh clone"], "no caches"),
        _noop_row("engine no-op pass, warm", noop["no-op warm"], "caches of the cold pass"),
        _row(
            "engine no-op pass, all scheduled, warm",
            scheduled,
            scheduled_unchanged,
            "one run; every tag confirmed with a HEAD (1,000 distinct references)",
        ),
        _plan_row(
            "engine planning, every stream forced",
            planned["plan forced"],
            "as import-image does: the revert rule is overridden",
        ),
        _plan_row(
            "engine planning, every tag due",
            planned["plan due"],
            "by schedule, none checked yet: the revert rule consulted for every tag and "
            "respected for one reference in ten (trailers of a person's revert)",
        ),
    ]


def _plan_row(label: str, runs: list[Planned], how: str) -> tuple[str, str, str, str]:
    seconds = [run.seconds for run in runs]
    middle = _rounds.median(seconds)
    actions = ", ".join(f"{n:,} {name}" for name, n in sorted(runs[0].actions.items()))
    verdict = "PASS" if middle < PLAN_SECONDS else "MISS"
    return (
        label,
        f"{middle:.3f} s",
        f"planner.plan alone (no I/O) over 10,000 tags, each of the 1,000 references observed "
        f"at a new digest (history grows, followers follow), {how}; "
        f"{_rounds.listing(seconds, '{:.3f}')} s, alternating forced/due; {actions}",
        f"{verdict} (< {PLAN_SECONDS:.0f} s)",
    )


def _noop_row(label: str, runs: list[tuple[PassRun, bool]], how: str) -> tuple[str, str, str, str]:
    """The median round of a no-op pass, held to the targets; every round must not commit."""
    ordered = sorted(runs, key=lambda item: item[0].seconds)
    middle, _ = ordered[len(ordered) // 2]
    unchanged = all(same for _, same in runs)
    code = max((run.code for run, _ in runs), key=abs)
    worst_mb = max(max(run.self_mb, run.tree_mb) for run, _ in runs)
    summary = PassRun(middle.seconds, middle.self_mb, middle.tree_mb, code)
    seconds = _rounds.listing([run.seconds for run, _ in runs], "{:.2f}")
    how = f"{how}; {seconds} s, alternating fresh clone/warm"
    return _row(label, summary, unchanged, how, worst_mb)


def _row(
    label: str, run: PassRun, unchanged: bool | None, how: str, peak: float | None = None
) -> tuple[str, str, str, str]:
    """A table row; no-op passes are held to the targets (and must not commit)."""
    memory = (
        f"streamlock reconcile in its own process, {how}; {run.self_mb:.0f} MB streamlock, "
        f"{run.tree_mb:.0f} MB largest process incl. git"
    )
    if unchanged is None:
        return (label, f"{run.seconds:.2f} s", memory, f"exit {run.code} (no target)")
    peak = max(run.self_mb, run.tree_mb) if peak is None else peak
    ok = run.seconds < NOOP_SECONDS and peak < NOOP_MB and run.code == 0 and unchanged
    verdict = f"{'PASS' if ok else 'MISS'} (< {NOOP_SECONDS:.0f} s, < {NOOP_MB:.0f} MB"
    return (label, f"{run.seconds:.2f} s", memory, f"{verdict}, no commit: {unchanged})")


if __name__ == "__main__":
    for row in main():
        print("\t".join(row))
