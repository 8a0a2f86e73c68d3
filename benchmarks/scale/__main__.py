"""``python -m benchmarks.scale [--small]``: the scale simulation (``make bench-scale``).

100,000 tags in 5,000 streams (half follow another stream's tag) against the local
``docker-registry``, in a repository with a year of reconciler history (365 daily passes bumping
1% of the tags), written with one ``git fast-import`` stream. Every pass is ``streamlock
reconcile --no-push`` in its own process. Prints one table; which side is which is in each row.
"""

from __future__ import annotations

import argparse
import dataclasses
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

from benchmarks.__main__ import render
from benchmarks.scale import passes, registry, world
from benchmarks.scale.passes import PassRun, git
from benchmarks.scale.world import Scale, World

NOOP_SECONDS = 10.0
NOOP_MB = 500.0
GROWTH_BYTES = 1024.0

Row = tuple[str, str, str, str]


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    parser.add_argument("--small", action="store_true", help="100 streams, 30 days: a quick check")
    parser.add_argument("--streams", type=int, help="streams (default 5000; 20 tags each)")
    parser.add_argument("--days", type=int, help="days of history (default 365)")
    parser.add_argument("--bump-streams", type=int, help="streams bumped per daily pass")
    parser.add_argument(
        "--cold-fraction",
        type=float,
        default=None,
        help="share of the streams the cold pass imports (default 0.1; 1.0 with --small)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the no-op passes")
    parser.add_argument("--short-days", type=int, help="the shorter history (default 30)")
    parser.add_argument("--profile", type=Path, help="write cProfile output of passes here")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    return parser.parse_args(argv)


def _scale(args: argparse.Namespace) -> Scale:
    scale = world.SMALL if args.small else Scale()
    changes = {
        "streams": args.streams,
        "days": args.days,
        "bump_streams": args.bump_streams,
    }
    scale = dataclasses.replace(scale, **{k: v for k, v in changes.items() if v is not None})
    if scale.streams % 2:
        raise SystemExit("--streams must be even (streams follow their partner s ^ 1)")
    return scale


def _say(text: str) -> None:
    print(f"scale: {text}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, root: Path, scale: Scale, args: argparse.Namespace) -> None:
        self.root = root
        self.scale = scale
        self.args = args
        self.rows: list[Row] = []
        self.remote = root / "year.git"

    # --- building -----------------------------------------------------------------------------
    def generate(self, host: str) -> tuple[World, world.HistoryStats]:
        _say(f"{self.scale.tags} tags in {self.scale.streams} streams, {self.scale.days} days")
        started = time.perf_counter()
        pool = world.image_pool(self.scale.images)
        state = World(self.scale, host, pool)
        writer = world.LockWriter()
        stats = world.HistoryStats()
        git(self.root, "init", "--quiet", "--bare", "--initial-branch=main", str(self.remote))
        proc = subprocess.Popen(
            ["git", "fast-import", "--quiet", "--done"],
            cwd=self.remote,
            stdin=subprocess.PIPE,
            env={**passes.os.environ, **passes.GIT_ENV},
        )
        assert proc.stdin is not None
        buffer: list[bytes] = []
        size = 0
        for chunk in world.history(state, writer, stats, "refs/heads/main"):
            buffer.append(chunk)
            size += len(chunk)
            if size > 1 << 22:
                proc.stdin.write(b"".join(buffer))
                buffer, size = [], 0
        proc.stdin.write(b"".join(buffer) + b"done\n")
        proc.stdin.close()
        if proc.wait(timeout=3600) != 0:
            raise RuntimeError("git fast-import failed")
        generated = time.perf_counter() - started
        sample = range(self.scale.streams) if self.args.small else range(0, self.scale.streams, 50)
        world.verify_locks(state, writer, sample)
        self.rows.append(
            (
                "history generated (one git fast-import stream)",
                f"{generated:.0f} s",
                f"{stats.commits} commits, {stats.tag_bumps} tag bumps over {self.scale.days} "
                f"days; locks checked byte for byte against lockfile.dumps on "
                f"{len(sample)} streams",
                "-",
            )
        )
        _say(f"generated in {generated:.0f} s: {stats.commits} commits")
        return state, stats

    def repack(self, stats: world.HistoryStats) -> None:
        started = time.perf_counter()
        git(self.remote, "gc", "--quiet")
        took = time.perf_counter() - started
        total = int(
            next(
                line.split()[1]
                for line in git(self.remote, "count-objects", "-v").splitlines()
                if line.startswith("size-pack")
            )
        )
        first = passes.packed_size(self.remote, "refs/tags/day0")
        per_bump = (total * 1024 - first) / max(stats.tag_bumps, 1)
        per_commit = (total * 1024 - first) / max(stats.commits - stats.marks[0], 1)
        verdict = "PASS" if per_bump < GROWTH_BYTES else "MISS"
        self.rows.append(
            (
                ".git growth per tag bump (packed: git gc)",
                f"{per_bump:.0f} B",
                f"year repo {total / 1024:.1f} MiB packed, first pass alone {first / 2**20:.1f} "
                f"MiB; {per_commit:.0f} B per bump commit; gc took {took:.0f} s",
                f"{verdict} (< {GROWTH_BYTES:.0f} B)",
            )
        )

    # --- passes ------------------------------------------------------------------------------
    def _profile(self, name: str) -> Path | None:
        if self.args.profile is None:
            return None
        self.args.profile.mkdir(parents=True, exist_ok=True)
        return self.args.profile / f"{name}.prof"

    def clone(self, name: str, *args: str) -> tuple[Path, float]:
        dest = self.root / name
        shutil.rmtree(dest, ignore_errors=True)
        seconds = passes.timed_clone(self.remote.as_uri(), dest, *args)
        return dest, seconds

    def noop(
        self, branch: str = "main", label: str | None = None, rounds: int | None = None
    ) -> tuple[PassRun, PassRun]:
        """Fresh clone then warm, alternating, ``rounds`` times: medians."""
        label = label or f"{self.scale.days}-day"
        fresh: list[PassRun] = []
        warm: list[PassRun] = []
        clones: list[float] = []
        for n in range(rounds or self.args.rounds):
            work, seconds = self.clone(f"noop-{branch}", "--branch", branch, "--single-branch")
            clones.append(seconds)
            fresh.append(
                passes.run_pass(
                    work, f"no-op fresh {label} #{n}", self._profile(f"noop-fresh-{label}-{n}")
                )
            )
            warm.append(
                passes.run_pass(
                    work, f"no-op warm {label} #{n}", self._profile(f"noop-warm-{label}-{n}")
                )
            )
        size = passes.dir_bytes(work / ".git" / "streamlock")
        index = work / ".git" / "streamlock" / "trailer-index.json"
        self.rows.append(
            (
                f"clone of the {label} repository (git clone --no-local)",
                f"{passes.median(clones):.2f} s",
                f"median of {len(clones)}; {passes.dir_bytes(work / '.git') / 2**20:.0f} MiB .git",
                "-",
            )
        )
        for kind, runs in (("fresh clone (no caches)", fresh), ("warm (caches)", warm)):
            self.rows.append(self._noop_row(f"no-op pass, {label}, {kind}", runs))
        self.rows.append(
            (
                f"caches after a no-op pass, {label} (.git/streamlock)",
                f"{size / 1024:.0f} KiB",
                f"trailer index {index.stat().st_size if index.exists() else 0} B "
                "(0: a pass with nothing new reads no history)",
                "-",
            )
        )
        return passes.median_run(fresh), passes.median_run(warm)

    def _noop_row(self, label: str, runs: Sequence[PassRun]) -> Row:
        run = passes.median_run(runs)
        worst = max(max(r.self_mb, r.tree_mb) for r in runs)
        ok = (
            run.seconds < NOOP_SECONDS
            and worst < NOOP_MB
            and all(r.code == 0 and r.commits == 0 for r in runs)
        )
        verdict = f"{'PASS' if ok else 'MISS'} (< {NOOP_SECONDS:.0f} s, < {NOOP_MB:.0f} MB)"
        spread = ", ".join(f"{r.seconds:.1f}" for r in runs)
        return (label, f"{run.seconds:.2f} s", f"median of [{spread}] s; {run.detail}", verdict)

    def cold(self, state: World) -> None:
        fraction = self.args.cold_fraction
        if fraction is None:
            fraction = 1.0 if self.args.small else 0.1
        count = max(2, int(self.scale.streams * fraction) // 2 * 2)
        work = self.root / "cold"
        git(self.root, "init", "--quiet", "--initial-branch=main", str(work))
        (work / "streamlock.yaml").write_bytes(state.config_yaml())
        for s in range(count):
            path = work / world.stream_path(s)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(state.stream_yaml(s))
        git(work, "add", "--all")
        git(work, "commit", "--quiet", "-m", "Initial configuration")
        run = passes.run_pass(work, "cold", self._profile("cold"))
        tags = count * self.scale.tags_per_stream
        scaled = (
            f"{run.seconds * self.scale.streams / count:.0f} s"
            if count < self.scale.streams
            else "-"
        )
        self.rows.append(
            (
                f"cold pass, {count} of {self.scale.streams} streams ({tags} tags), no locks",
                f"{run.seconds:.1f} s",
                f"{run.detail}; {count * self.scale.half} references (2 GETs each, "
                f"{self.scale.images} distinct images); linear to all streams: {scaled}",
                "ok"
                if run.code == 0 and run.commits == count and run.failed_tags == 0
                else "FAILED",
            )
        )
        self._check_cold(state, work, count)

    def _check_cold(self, state: World, work: Path, count: int) -> None:
        """The model behind the generated history agrees with what the real pass wrote."""
        from reconciler import lockfile

        fresh = World(
            state.scale, state.host, state.pool, versions=[list(v) for v in state.versions]
        )
        fresh.initial_import(world.START)
        for s in range(0, count, max(1, count // 20)):
            written = lockfile.loads((work / fresh.lock(s).path).read_bytes(), fresh.lock(s).path)
            model = fresh.lock(s)
            if _unstamped(written) != _unstamped(model):
                raise AssertionError(f"cold pass lock of stream {s} differs from the world model")

    def due(
        self,
        label: str,
        work: Path,
        versions: list[list[int]],
        due: int,
        moved: int,
        warm: bool = True,
    ) -> PassRun:
        """Schedule the v tags of ``due`` streams (a person's commit), move ``moved`` of them
        in the registry, run a pass, then put repository and registry back."""
        base = git(work, "rev-parse", "HEAD").strip()
        streams = list(range(0, due * 2, 2))[:due]  # even streams: their partners are not due
        for s in streams:
            (work / world.stream_path(s)).write_bytes(self.state.stream_yaml(s, scheduled=True))
        git(work, "commit", "--quiet", "-am", f"Schedule imports of {due} streams")
        view = World(self.scale, self.state.host, self.state.pool, versions=versions)
        registry.move(self.storage, view, streams[:moved], 1)
        try:
            run = passes.run_pass(work, label, self._profile(label.replace(" ", "-")))
        finally:
            registry.move(self.storage, view, streams[:moved], 0)
            git(work, "reset", "--quiet", "--hard", base)
            if warm:  # the cached trailer index was at a commit the reset dropped
                _warm_index(work)
        return run

    def due_rows(
        self,
        work: Path,
        versions: list[list[int]],
        label: str,
        fresh_clone: Callable[[], Path] | None = None,
    ) -> None:
        per_stream = self.scale.half
        one = max(1, self.scale.streams * self.scale.half // 100 // per_stream)
        ten = max(1, self.scale.streams * self.scale.half // 10 // per_stream)
        cases = [
            ("1% due, none moved", one, 0),
            ("1% due, all moved", one, one),
            ("10% due, none moved", ten, 0),
            ("10% due, 1% moved", ten, one),
        ]
        _warm_index(work)
        for name, due, moved in cases:
            run = self.due(f"{label} {name}", work, versions, due, moved)
            self.rows.append(
                (
                    f"pass, {label}, warm: {name}",
                    f"{run.seconds:.2f} s",
                    f"{due * per_stream} imported tags due ({due * per_stream} HEADs), "
                    f"{moved * per_stream} moved; {run.detail}",
                    "ok" if run.code == 0 and run.failed_tags == 0 else "FAILED",
                )
            )

    def history_rows(self, short_versions: list[list[int]]) -> None:
        """The same 1%-moved pass on a short and the full history, fresh clone and warm."""
        one = max(1, self.scale.streams // 100)
        for label, branch, versions in (
            (f"{self.args.short_days}-day", f"day{self.args.short_days}", short_versions),
            (f"{self.scale.days}-day", "main", self.state.versions),
        ):
            work, _ = self.clone(f"hist-{branch}", "--branch", branch, "--single-branch")
            fresh = self.due(f"{label} fresh 1% moved", work, versions, one, one)
            index = work / ".git" / "streamlock" / "trailer-index.json"
            warm = self.due(f"{label} warm 1% moved", work, versions, one, one)
            for kind, run in (("fresh clone", fresh), ("warm", warm)):
                self.rows.append(
                    (
                        f"pass, {label} history, {kind}: 1% due, all moved",
                        f"{run.seconds:.2f} s",
                        run.detail,
                        "ok" if run.code == 0 and run.failed_tags == 0 else "FAILED",
                    )
                )
            self.rows.append(
                (
                    f"trailer index, {label} history (.git/streamlock/trailer-index.json)",
                    f"{index.stat().st_size / 1024:.0f} KiB" if index.exists() else "absent",
                    f"{passes.dir_bytes(work / '.git' / 'streamlock') / 1024:.0f} KiB all caches",
                    "-",
                )
            )

    # --- the whole run -----------------------------------------------------------------------
    def run(self) -> list[Row]:
        from tests.fixtures.registry_server import RegistryServer

        with RegistryServer(self.root / "registry") as server:
            self.state, stats = self.generate(server.host)
            self.storage = registry.Storage(server.storage_dir)
            started = time.perf_counter()
            seeded = registry.seed(self.storage, self.state)
            checked = registry.verify(server.url, self.state, sample=200)
            self.rows.append(
                (
                    "registry seeded (storage written directly)",
                    f"{time.perf_counter() - started:.1f} s",
                    f"{seeded} tags, {self.scale.images} images; {checked} read back via the API",
                    "-",
                )
            )
            self.repack(stats)
            git(
                self.remote,
                "branch",
                f"day{self.args.short_days}",
                f"refs/tags/day{self.args.short_days}",
            )
            self.cold(self.state)
            self.noop()
            work = self.root / "noop-main"
            self.due_rows(work, self.state.versions, f"{self.scale.days}-day")
            short = _versions_at(self.state, self.args.short_days)
            self.history_rows(short)
            self.noop(f"day{self.args.short_days}", f"{self.args.short_days}-day", rounds=1)
        return self.rows


def _warm_index(work: Path) -> None:
    """Bring the checkout's trailer index to HEAD, as the passes before a warm one would."""
    from reconciler.gitrepo import GitRepo, TrailerIndex

    TrailerIndex(GitRepo.open(work), f"{world.AUTHOR[0]} <{world.AUTHOR[1]}>").refresh()


def _versions_at(state: World, day: int) -> list[list[int]]:
    versions = [[0] * state.scale.half for _ in range(state.scale.streams)]
    for d in range(1, day + 1):
        for s, j in state.bumps(d):
            versions[s][j] += 1
    return versions


def _unstamped(lock: object) -> object:
    from reconciler.lockfile import StreamLock

    assert isinstance(lock, StreamLock)
    tags = {
        tag: dataclasses.replace(
            entry,
            imported_at=None,
            history=tuple(dataclasses.replace(i, imported_at=None) for i in entry.history),
        )
        for tag, entry in lock.tags.items()
    }
    return dataclasses.replace(lock, tags=tags)


def top_lines(profile: Path, count: int = 25) -> str:
    import io

    out = io.StringIO()
    pstats.Stats(str(profile), stream=out).sort_stats("cumulative").print_stats(count)
    return out.getvalue()


def main(argv: Sequence[str]) -> int:
    args = _arguments(argv)
    scale = _scale(args)
    if args.short_days is None:
        args.short_days = 10 if args.small else 30
    args.short_days = min(args.short_days, scale.days)
    started = time.perf_counter()
    load_before = passes.load_average()
    if args.keep is not None:
        shutil.rmtree(args.keep, ignore_errors=True)
        args.keep.mkdir(parents=True)
        rows = Bench(args.keep, scale, args).run()
    else:
        with tempfile.TemporaryDirectory(prefix="streamlock-scale-") as tmp:
            rows = Bench(Path(tmp), scale, args).run()
    took = timedelta(seconds=round(time.perf_counter() - started))
    print(render([tuple(str(c) for c in row) for row in rows]))
    print(
        f"\n{scale.tags} tags, {scale.streams} streams, {scale.days} days; total {took}; "
        f"load average before {load_before}, after {passes.load_average()} (2 cores shared)"
    )
    return (
        1 if any(row[3] == "FAILED" for row in rows) else 0
    )  # a MISS is a figure, as in make bench


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
